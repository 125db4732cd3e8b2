import { EntityManager } from '@mikro-orm/postgresql';
import { Injectable, Logger } from '@nestjs/common';
import { AppConfig } from '../../config/app-config';
import { OutboxEvent } from './outbox-event.entity';
import { AUTO_DISABLE_AFTER_FAILURES } from './queues';
import { webhookHeaders } from './signer';
import { SigningSecretsService } from './signing-secrets.service';
import { SsrfGuard, WebhookTargetError } from './ssrf-guard';
import { Webhook } from './webhook.entity';
import { WebhookDelivery } from './webhook-delivery.entity';
import { type SendResult, WebhookSender } from './webhook-sender';

export interface OutgoingMessage {
  deliveryId: string;
  event: string;
  body: string;
  attempt: number;
}

/** Thrown by deliver() so BullMQ schedules the next attempt. */
export class DeliveryFailedError extends Error {
  override name = 'DeliveryFailedError';
}

/** Sends events to endpoints and records every attempt. */
@Injectable()
export class WebhookDeliveryService {
  private readonly logger = new Logger(WebhookDeliveryService.name);

  constructor(
    private readonly em: EntityManager,
    private readonly config: AppConfig,
    private readonly secrets: SigningSecretsService,
    private readonly guard: SsrfGuard,
    private readonly sender: WebhookSender,
  ) {}

  /**
   * One attempt of an outbox event (the worker's job). Idempotent by event id: an event already delivered or given
   * up is skipped, so a second enqueue never sends twice. Throws DeliveryFailedError to be retried.
   */
  async deliver(eventId: string, lastAttempt: boolean): Promise<void> {
    const em = this.em.fork();
    const event = await em.findOne(OutboxEvent, { id: eventId }, { populate: ['webhook'] });
    if (!event || event.deliveredAt || event.failedAt) {
      // Done already, or the endpoint was deleted (its events went with it).
      return;
    }
    if (!event.webhook.enabled) {
      // Turned off (by its owner, or automatically) since the event: stop trying.
      await em.nativeUpdate(OutboxEvent, { id: eventId }, { failedAt: new Date() });
      return;
    }
    const [{ attempts }] = await em
      .getConnection()
      .execute<
        { attempts: number }[]
      >('update outbox_events set attempts = attempts + 1 where id = ? returning attempts', [eventId]);
    const record = await this.attempt(event.webhook, {
      deliveryId: event.id,
      event: event.event,
      body: event.body,
      attempt: attempts,
    });
    if (record.succeeded) {
      await em.nativeUpdate(OutboxEvent, { id: eventId }, { deliveredAt: new Date() });
      return;
    }
    if (lastAttempt) {
      await em.nativeUpdate(OutboxEvent, { id: eventId }, { failedAt: new Date() });
    }
    throw new DeliveryFailedError(record.error ?? 'delivery failed');
  }

  /**
   * Signs and sends one message, then records the attempt and the endpoint's health in one transaction. The
   * target is checked again here, after DNS resolution, and the connection goes to the address that was checked.
   */
  async attempt(hook: Webhook, msg: OutgoingMessage): Promise<WebhookDelivery> {
    const startedAt = new Date();
    const result = await this.send(hook, msg);
    return this.em.fork().transactional(async (em) => {
      const record = em.create(WebhookDelivery, {
        webhook: hook.id,
        deliveryId: msg.deliveryId,
        event: msg.event,
        attempt: msg.attempt,
        statusCode: result.statusCode,
        durationMs: result.durationMs,
        error: result.error,
        succeeded: result.succeeded,
        createdAt: startedAt,
      });
      const conn = em.getConnection();
      const ctx: unknown = em.getTransactionContext();
      if (result.succeeded) {
        await conn.execute(
          'update webhooks set failure_count = 0, last_success_at = ? where id = ?',
          [startedAt, hook.id],
          'run',
          ctx,
        );
      } else {
        // One statement, so concurrent failures count exactly; the 100th consecutive one disables the endpoint.
        await conn.execute(
          `update webhooks set failure_count = failure_count + 1, last_failure_at = ?,
             enabled = enabled and failure_count + 1 < ? where id = ?`,
          [startedAt, AUTO_DISABLE_AFTER_FAILURES, hook.id],
          'run',
          ctx,
        );
      }
      return record;
    });
  }

  private async send(hook: Webhook, msg: OutgoingMessage): Promise<SendResult> {
    const started = Date.now();
    try {
      const url = this.guard.parseUrl(hook.url);
      const target = await this.guard.resolveTarget(url);
      const secret = await this.secrets.reveal(hook.user.id);
      const headers = webhookHeaders({
        event: msg.event,
        deliveryId: msg.deliveryId,
        body: msg.body,
        secret,
      });
      return await this.sender.send({
        url,
        target,
        headers,
        body: msg.body,
        timeoutMs: this.config.webhookTimeoutMs,
      });
    } catch (err) {
      const durationMs = Date.now() - started;
      if (err instanceof WebhookTargetError) {
        return { succeeded: false, statusCode: null, durationMs, error: `Refused: ${err.message}` };
      }
      this.logger.error({ err, webhookId: hook.id }, 'webhook attempt failed before sending');
      return {
        succeeded: false,
        statusCode: null,
        durationMs,
        error: 'Not sent: an internal error occurred.',
      };
    }
  }
}

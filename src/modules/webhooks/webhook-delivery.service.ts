import { EntityManager } from '@mikro-orm/postgresql';
import { Injectable, Logger } from '@nestjs/common';
import { NO_REQUEST } from '../../common/http/request-meta';
import { Clock } from '../../common/time/clock';
import { AppConfig } from '../../config/app-config';
import { AuditService } from '../audit/audit.service';
import { webhookHeaders } from './signer';
import { SigningSecretsService } from './signing-secrets.service';
import { SsrfGuard, WebhookTargetError } from './ssrf-guard';
import type { Webhook } from './webhook.entity';
import { WebhookDelivery } from './webhook-delivery.entity';
import { type SendResult, WebhookSender } from './webhook-sender';

export interface OutgoingMessage {
  deliveryId: string;
  event: string;
  body: string;
  attempt: number;
}

/** The endpoint an attempt goes to, as far as sending and recording need it. */
export interface Target {
  id: string;
  url: string;
  userId: string;
}

/**
 * What one run of a delivery job did: `delivered`; `retry` (this attempt failed, more remain); `given_up` (the last
 * attempt failed); `busy` (another run holds the claim: try again later, no attempt spent); `done` (delivered or
 * given up before); `held` (its endpoint is turned off: it waits for re-enabling); `gone` (the endpoint was deleted).
 */
export type DeliveryOutcome =
  | { kind: 'delivered' | 'given_up' | 'busy' | 'done' | 'held' | 'gone' }
  | { kind: 'retry'; error: string };

/** Thrown by the worker so BullMQ schedules the next attempt. */
export class DeliveryFailedError extends Error {
  override name = 'DeliveryFailedError';
}

/** How long past the send timeout a claim stays taken: DNS, signing and recording fit well inside. */
const CLAIM_MARGIN_S = 30;

interface ClaimedRow {
  attempts: number;
  event: string;
  body: string;
  webhook_id: string;
  url: string;
  user_id: string;
}

interface HealthRow {
  enabled: boolean;
  failure_count: number;
  failing_since: Date | null;
}

/** Sends events to endpoints and records every attempt. */
@Injectable()
export class WebhookDeliveryService {
  private readonly logger = new Logger(WebhookDeliveryService.name);

  constructor(
    private readonly em: EntityManager,
    private readonly config: AppConfig,
    private readonly clock: Clock,
    private readonly secrets: SigningSecretsService,
    private readonly guard: SsrfGuard,
    private readonly sender: WebhookSender,
    private readonly audit: AuditService,
  ) {}

  /**
   * One attempt of an outbox event (the worker's job). The attempt is claimed by one conditional UPDATE … RETURNING
   * (open, not held, no live claim), so two runs of one job — BullMQ stall recovery, a re-enqueue — can't both
   * send: the second finds the claim taken (`busy`) or the event settled (`done`). An endpoint disabled
   * automatically keeps its scheduled retries; one its owner turned off holds the event until re-enabled.
   */
  async deliver(eventId: string): Promise<DeliveryOutcome> {
    const conn = this.em.getConnection();
    const [claimed] = await conn.execute<ClaimedRow[]>(
      `update outbox_events e set attempts = e.attempts + 1,
              claimed_until = now() + make_interval(secs => ?)
         from webhooks w
        where e.id = ? and w.id = e.webhook_id
          and e.delivered_at is null and e.failed_at is null and e.held_at is null
          and (e.claimed_until is null or e.claimed_until < now())
          and (w.enabled or w.disabled_reason = 'failing')
       returning e.attempts, e.event, e.body, w.id as webhook_id, w.url, w.user_id`,
      [this.config.webhookTimeoutMs / 1000 + CLAIM_MARGIN_S, eventId],
    );
    if (!claimed) {
      return this.whyNotClaimed(eventId);
    }
    const last = claimed.attempts >= this.config.webhookMaxAttempts;
    const record = await this.attempt(
      { id: claimed.webhook_id, url: claimed.url, userId: claimed.user_id },
      { deliveryId: eventId, event: claimed.event, body: claimed.body, attempt: claimed.attempts },
      { eventId, last },
    );
    if (!record) {
      return { kind: 'gone' };
    }
    if (record.succeeded) {
      return { kind: 'delivered' };
    }
    return last ? { kind: 'given_up' } : { kind: 'retry', error: record.error ?? 'delivery failed' };
  }

  /**
   * Signs and sends one message, then records the attempt, the endpoint's health and (for an outbox event) the
   * event's state in one transaction. The target is checked again here, after DNS resolution, and the connection
   * goes to the address that was checked. Returns null when the endpoint was deleted meanwhile (nothing recorded).
   * `outbox.claimed: false`: an attempt sent outside the event's claim (a manual redelivery), which only settles the
   * event when it succeeds and leaves any claim as it is.
   */
  async attempt(
    hook: Target,
    msg: OutgoingMessage,
    outbox?: { eventId: string; last: boolean; claimed?: boolean },
  ): Promise<WebhookDelivery | null> {
    const startedAt = new Date(this.clock.now());
    const result = await this.send(hook, msg);
    return this.em.fork().transactional(async (em) => {
      const conn = em.getConnection();
      const ctx: unknown = em.getTransactionContext();
      // The endpoint row is updated first: its lock keeps a concurrent delete waiting until this commits, and no
      // row means it is gone (its events and attempts went with it), so there is nothing to record.
      const health = await conn.execute<HealthRow[]>(
        result.succeeded
          ? `update webhooks set failure_count = 0, failing_since = null, last_success_at = ? where id = ?
              returning enabled, failure_count, failing_since`
          : `update webhooks set failure_count = failure_count + 1, last_failure_at = ?,
                failing_since = coalesce(failing_since, ?) where id = ?
              returning enabled, failure_count, failing_since`,
        result.succeeded ? [startedAt, hook.id] : [startedAt, startedAt, hook.id],
        'all',
        ctx,
      );
      if (health.length === 0) {
        return null;
      }
      if (!result.succeeded) {
        await this.maybeDisable(em, hook, health[0], startedAt);
      }
      if (outbox && outbox.claimed !== false) {
        const settle = result.succeeded ? 'delivered_at = now(),' : outbox.last ? 'failed_at = now(),' : '';
        await conn.execute(
          `update outbox_events set ${settle} claimed_until = null where id = ?`,
          [outbox.eventId],
          'run',
          ctx,
        );
      } else if (outbox && result.succeeded) {
        // An attempt outside the claim (a manual redelivery): it settles the event, and leaves a scheduled run's claim.
        await conn.execute(
          `update outbox_events set delivered_at = now() where id = ? and delivered_at is null and failed_at is null`,
          [outbox.eventId],
          'run',
          ctx,
        );
      }
      return em.create(WebhookDelivery, {
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
    });
  }

  /**
   * Auto-disable judges the endpoint, not a burst: it goes off only when it has had no success for
   * WEBHOOK_DISABLE_AFTER_DAYS and at least WEBHOOK_DISABLE_MIN_FAILURES failed attempts since. Its owner is told by
   * the webhook's disabled_reason/disabled_at and a `webhook.disabled` audit entry.
   */
  private async maybeDisable(em: EntityManager, hook: Target, h: HealthRow, now: Date): Promise<void> {
    const days = this.config.webhookDisableAfterDays;
    if (!h.enabled || days === 0 || h.failure_count < this.config.webhookDisableMinFailures) {
      return;
    }
    const since = h.failing_since ? new Date(h.failing_since) : now;
    if (now.getTime() - since.getTime() < days * 24 * 3600 * 1000) {
      return;
    }
    await em
      .getConnection()
      .execute(
        `update webhooks set enabled = false, disabled_reason = 'failing', disabled_at = ? where id = ?`,
        [now, hook.id],
        'run',
        em.getTransactionContext(),
      );
    await this.audit.record(
      {
        action: 'webhook.disabled',
        meta: NO_REQUEST,
        targetType: 'webhook',
        targetId: hook.id,
        metadata: {
          owner_id: hook.userId,
          origin: new URL(hook.url).origin,
          reason: 'failing',
          failing_since: since.toISOString(),
          failure_count: h.failure_count,
        },
      },
      em,
    );
    this.logger.warn(
      { webhookId: hook.id, failingSince: since },
      'webhook endpoint disabled: no success for days',
    );
  }

  /** The claim found nothing to do: say why, and hold the event if its owner turned the endpoint off. */
  private async whyNotClaimed(eventId: string): Promise<DeliveryOutcome> {
    const conn = this.em.getConnection();
    const [row] = await conn.execute<
      {
        settled: boolean;
        held: boolean;
        paused: boolean;
      }[]
    >(
      `select (e.delivered_at is not null or e.failed_at is not null) as settled, e.held_at is not null as held,
              (not w.enabled and w.disabled_reason is distinct from 'failing') as paused
         from outbox_events e join webhooks w on w.id = e.webhook_id where e.id = ?`,
      [eventId],
    );
    if (!row) {
      return { kind: 'gone' };
    }
    if (row.settled) {
      return { kind: 'done' };
    }
    if (row.held) {
      return { kind: 'held' };
    }
    if (row.paused) {
      // Held rather than given up: re-enabling the endpoint relays it again (relayed_at cleared).
      await conn.execute(
        `update outbox_events set held_at = now(), relayed_at = null
          where id = ? and delivered_at is null and failed_at is null and held_at is null
            and (claimed_until is null or claimed_until < now())`,
        [eventId],
      );
      return { kind: 'held' };
    }
    return { kind: 'busy' };
  }

  private async send(hook: Target, msg: OutgoingMessage): Promise<SendResult> {
    const started = Date.now();
    try {
      const url = this.guard.parseUrl(hook.url);
      const target = await this.guard.resolveTarget(url);
      const secret = await this.secrets.reveal(hook.userId);
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

/** The endpoint as attempt() needs it. */
export function toTarget(hook: Webhook): Target {
  return { id: hook.id, url: hook.url, userId: hook.user.id };
}

import { EntityManager } from '@mikro-orm/postgresql';
import { Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { AppError } from '../../common/errors/app-error';
import { keysetFilter, keysetPage } from '../../common/http/cursor';
import type { RequestMeta } from '../../common/http/request-meta';
import { AppConfig } from '../../config/app-config';
import { AuditService } from '../audit/audit.service';
import type {
  DeletedWebhookResponse,
  DeliveryResponse,
  ListDeliveriesResponse,
  SigningSecretResponse,
  TestDeliveryResponse,
  UpdateWebhookDto,
  WebhookEnvelope,
  WebhookResponse,
} from './dto/webhook.dto';
import { OutboxRelay } from './outbox-relay.processor';
import { MAX_WEBHOOKS_PER_ACCOUNT } from './queues';
import { SigningSecretsService } from './signing-secrets.service';
import { SsrfGuard, WebhookTargetError } from './ssrf-guard';
import { WEBHOOK_EVENTS, Webhook, type WebhookEventType } from './webhook.entity';
import { WebhookDelivery } from './webhook-delivery.entity';
import { toTarget, WebhookDeliveryService } from './webhook-delivery.service';

/** The owner's side of webhooks (API.md Part 2, "Webhooks (session)"); every query is scoped to the owner. */
@Injectable()
export class WebhooksService {
  constructor(
    private readonly em: EntityManager,
    private readonly config: AppConfig,
    private readonly secrets: SigningSecretsService,
    private readonly guard: SsrfGuard,
    private readonly deliveries: WebhookDeliveryService,
    private readonly audit: AuditService,
    private readonly relay: OutboxRelay,
  ) {}

  async secret(userId: string): Promise<SigningSecretResponse> {
    return { ok: true, signing_secret: await this.secrets.reveal(userId) };
  }

  async rotateSecret(userId: string, meta: RequestMeta): Promise<SigningSecretResponse> {
    const secret = await this.em.fork().transactional(async (em) => {
      const fresh = await this.secrets.rotate(userId, em);
      await this.audit.record(
        { action: 'webhook.secret_rotated', meta, targetType: 'user', targetId: userId },
        em,
      );
      return fresh;
    });
    return { ok: true, signing_secret: secret };
  }

  async create(
    userId: string,
    url: string,
    enabled: boolean | undefined,
    meta: RequestMeta,
    events: WebhookEventType[] = ['upload.created'],
  ): Promise<WebhookEnvelope> {
    const checked = await this.checkUrl(url);
    // The first delivery needs a secret: make it now rather than in the worker.
    await this.secrets.reveal(userId);
    const hook = await this.em.fork().transactional(async (em) => {
      // Serialise creation per account so two parallel requests can't both pass the limit.
      await em
        .getConnection()
        .execute(
          'select pg_advisory_xact_lock(hashtext(?))',
          [`webhooks:${userId}`],
          'all',
          em.getTransactionContext(),
        );
      if ((await em.count(Webhook, { user: userId })) >= MAX_WEBHOOKS_PER_ACCOUNT) {
        throw new AppError(
          'conflict',
          `You already have ${MAX_WEBHOOKS_PER_ACCOUNT} webhooks; delete one first.`,
        );
      }
      const on = enabled ?? true;
      const created = em.create(Webhook, {
        user: userId,
        url: checked,
        enabled: on,
        events: canonicalEvents(events),
        disabledReason: on ? null : 'owner',
        disabledAt: on ? null : new Date(),
      });
      await this.audit.record(
        {
          action: 'webhook.created',
          meta,
          targetType: 'webhook',
          targetId: created.id,
          // The origin only: webhook URLs often carry a secret in their path or query.
          metadata: { origin: new URL(checked).origin, enabled: created.enabled, events: created.events },
        },
        em,
      );
      return created;
    });
    return { ok: true, webhook: toWebhookResponse(hook) };
  }

  async list(userId: string): Promise<WebhookResponse[]> {
    const hooks = await this.em
      .fork()
      .find(Webhook, { user: userId }, { orderBy: { createdAt: 'asc', id: 'asc' } });
    return hooks.map(toWebhookResponse);
  }

  async update(userId: string, id: string, dto: UpdateWebhookDto): Promise<WebhookEnvelope> {
    const url = dto.url === undefined ? undefined : await this.checkUrl(dto.url);
    let released = 0;
    const hook = await this.em.fork().transactional(async (em) => {
      const found = await this.findOwned(em, userId, id);
      if (url !== undefined) {
        found.url = url;
      }
      if (dto.events !== undefined) {
        found.events = canonicalEvents(dto.events);
      }
      if (dto.enabled === true && !found.enabled) {
        // A fresh start: the failure streak is forgotten, and the events held meanwhile go out now.
        Object.assign(found, { enabled: true, disabledReason: null, disabledAt: null });
        Object.assign(found, { failureCount: 0, failingSince: null });
        const res = await em.getConnection().execute<{ affectedRows?: number }>(
          `update outbox_events set held_at = null, relayed_at = null
            where webhook_id = ? and held_at is not null and delivered_at is null and failed_at is null`,
          [found.id],
          'run',
          em.getTransactionContext(),
        );
        released = res.affectedRows ?? 0;
      } else if (dto.enabled === false && found.disabledReason !== 'owner') {
        // Turned off by its owner: nothing new is recorded, and scheduled retries wait (held) for re-enabling.
        Object.assign(found, { enabled: false, disabledReason: 'owner', disabledAt: new Date() });
      }
      return found;
    });
    if (released > 0) {
      this.relay.kick();
    }
    return { ok: true, webhook: toWebhookResponse(hook) };
  }

  async remove(userId: string, id: string, meta: RequestMeta): Promise<DeletedWebhookResponse> {
    return this.em.fork().transactional(async (em) => {
      const hook = await this.findOwned(em, userId, id);
      // Its pending events and recorded attempts go with it (on delete cascade); queued jobs then find nothing.
      await em.nativeDelete(Webhook, { id: hook.id, user: userId });
      await this.audit.record(
        {
          action: 'webhook.deleted',
          meta,
          targetType: 'webhook',
          targetId: hook.id,
          metadata: { origin: new URL(hook.url).origin },
        },
        em,
      );
      return { ok: true as const, deleted: hook.id };
    });
  }

  /** Keyset paging on (created_at desc, id desc), like the uploads listing: ties never skip or repeat. */
  async listDeliveries(
    userId: string,
    id: string,
    opts: { limit?: number; before?: string },
  ): Promise<ListDeliveriesResponse> {
    const em = this.em.fork();
    const hook = await this.findOwned(em, userId, id);
    const limit = opts.limit ?? 50;
    const rows = await em.find(
      WebhookDelivery,
      { webhook: hook.id, ...keysetFilter(opts.before) },
      { orderBy: { createdAt: 'desc', id: 'desc' }, limit: limit + 1 },
    );
    const { page, next_before } = keysetPage(rows, limit);
    return {
      ok: true,
      count: page.length,
      next_before,
      deliveries: page.map(toDeliveryResponse),
    };
  }

  /** POST /:id/test: a signed `ping`, sent now (also to a disabled endpoint), recorded like any attempt. */
  async ping(userId: string, id: string): Promise<TestDeliveryResponse> {
    const hook = await this.findOwned(this.em.fork(), userId, id);
    const body = JSON.stringify({
      event: 'ping',
      webhook: { id: hook.id, url: hook.url },
      timestamp: new Date().toISOString(),
    });
    const record = await this.deliveries.attempt(toTarget(hook), {
      deliveryId: randomUUID(),
      event: 'ping',
      body,
      attempt: 1,
    });
    if (!record) {
      // Deleted while the ping was in flight.
      throw new AppError('not_found', 'No such webhook.');
    }
    return { ok: true, delivery: toDeliveryResponse(record) };
  }

  /**
   * POST /:id/deliveries/:delivery_id/redeliver: that event again, now, with the same delivery id (webhook-id), the
   * same body and a fresh timestamp and signature; recorded as one more attempt of the event (its number, and one of
   * its WEBHOOK_MAX_ATTEMPTS). If it succeeds while the event is still being retried, the event is delivered and its
   * next scheduled attempt sends nothing. A ping is sent again as a new ping body under the same id (its body was
   * never kept).
   */
  async redeliver(userId: string, id: string, deliveryId: string): Promise<TestDeliveryResponse> {
    const em = this.em.fork();
    const hook = await this.findOwned(em, userId, id);
    // An event's attempt number is taken from its row, as the scheduled attempts take theirs, so no two attempts
    // share a number; the scheduled retries therefore have one attempt fewer left, as after any failed attempt.
    const [event] = await em
      .getConnection()
      .execute<{ event: string; body: string; attempts: number; open: boolean }[]>(
        `update outbox_events e
          set attempts = greatest(e.attempts, coalesce((select max(d.attempt) from webhook_deliveries d
                                                         where d.webhook_id = e.webhook_id and d.delivery_id = e.id), 0)) + 1
        where e.id = ? and e.webhook_id = ?
        returning e.event, e.body, e.attempts, (e.delivered_at is null and e.failed_at is null) as open`,
        [deliveryId, hook.id],
      );
    const [past] = event
      ? []
      : await em
          .getConnection()
          .execute<
            { event: string; attempts: number }[]
          >('select max(event) as event, max(attempt)::int as attempts from webhook_deliveries where webhook_id = ? and delivery_id = ?', [hook.id, deliveryId]);
    if (!event && past?.event !== 'ping') {
      throw new AppError('not_found', 'No such delivery for this webhook.');
    }
    const body =
      event?.body ??
      JSON.stringify({
        event: 'ping',
        webhook: { id: hook.id, url: hook.url },
        timestamp: new Date().toISOString(),
      });
    const record = await this.deliveries.attempt(
      toTarget(hook),
      {
        deliveryId,
        event: event?.event ?? 'ping',
        body,
        attempt: event ? event.attempts : (past?.attempts ?? 0) + 1,
      },
      // Delivered now: an event still being retried is settled, and its next scheduled attempt sends nothing.
      event?.open ? { eventId: deliveryId, last: false, claimed: false } : undefined,
    );
    if (!record) {
      throw new AppError('not_found', 'No such webhook.');
    }
    return { ok: true, delivery: toDeliveryResponse(record) };
  }

  /** The URL as stored (normalised), after the SSRF rules; a refusal is 400 bad_request with the reason. */
  private async checkUrl(raw: string): Promise<string> {
    try {
      const url = this.guard.parseUrl(raw.trim());
      if (!this.config.allowPrivateWebhooks) {
        await this.guard.resolveTarget(url);
      }
      return url.toString();
    } catch (err) {
      if (err instanceof WebhookTargetError) {
        throw new AppError('bad_request', err.message);
      }
      throw err;
    }
  }

  private async findOwned(em: EntityManager, userId: string, id: string): Promise<Webhook> {
    const hook = await em.findOne(Webhook, { id, user: userId });
    if (!hook) {
      throw new AppError('not_found', 'No such webhook.');
    }
    return hook;
  }
}

export function toWebhookResponse(hook: Webhook): WebhookResponse {
  return {
    id: hook.id,
    url: hook.url,
    enabled: hook.enabled,
    events: canonicalEvents(hook.events),
    created_at: hook.createdAt.toISOString(),
    last_success_at: hook.lastSuccessAt?.toISOString() ?? null,
    last_failure_at: hook.lastFailureAt?.toISOString() ?? null,
    failure_count: hook.failureCount,
    disabled_reason: hook.disabledReason ?? null,
    disabled_at: hook.disabledAt?.toISOString() ?? null,
  };
}

export function toDeliveryResponse(d: WebhookDelivery): DeliveryResponse {
  return {
    id: d.id,
    delivery_id: d.deliveryId,
    event: d.event,
    attempt: d.attempt,
    status_code: d.statusCode ?? null,
    duration_ms: d.durationMs,
    error: d.error ?? null,
    succeeded: d.succeeded,
    created_at: d.createdAt.toISOString(),
  };
}

/** The event types in their documented order, without repeats. */
function canonicalEvents(events: readonly string[]): WebhookEventType[] {
  return WEBHOOK_EVENTS.filter((e) => events.includes(e));
}

import { EntityManager } from '@mikro-orm/postgresql';
import { Injectable, Logger, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { DomainEvents } from '../../common/events/domain-events';
import { OutboxEvent } from './outbox-event.entity';
import { OutboxRelay } from './outbox-relay.processor';
import { Webhook, type WebhookEventType } from './webhook.entity';

/** What the uploads module hands over when an upload is recorded (API.md: the upload.created payload). */
export interface UploadCreatedEvent {
  ownerId: string;
  upload: {
    filename: string;
    url: string;
    size: number;
    mime: string;
    width: number;
    height: number;
    hash_sha256: string;
  };
  /** The upload's creation time: the event's `timestamp`. */
  createdAt: Date;
}

/** Why an upload went (API.md Part 3: upload.deleted's `reason`). */
export type UploadDeletedReason = 'owner' | 'delete_link' | 'admin' | 'expired';

/** What the api-keys module hands over when a key is made or revoked (never its token or hash). */
export interface ApiKeyEventData {
  id: string;
  prefix: string;
  label: string;
  scopes: string[];
}

function uploadCreatedPayload(e: UploadCreatedEvent): Record<string, unknown> {
  const { filename, url, size, mime, width, height, hash_sha256 } = e.upload;
  return {
    upload: { filename, url, size, mime, width, height, hash_sha256 },
    timestamp: e.createdAt.toISOString(),
  };
}

/** Writes webhook events into the outbox, inside the caller's transaction. */
@Injectable()
export class OutboxService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(OutboxService.name);
  private unsubscribe?: () => void;

  constructor(
    private readonly relay: OutboxRelay,
    private readonly em: EntityManager,
    private readonly events: DomainEvents,
  ) {}

  onModuleInit(): void {
    // A rejected upload stores nothing, so its event has a transaction of its own (like its audit entry).
    this.unsubscribe = this.events.on('upload.rejected', (e) => {
      void this.em
        .fork()
        .transactional((em) =>
          this.recordUploadRejected(em, {
            ownerId: e.userId,
            sha256: e.sha256,
            reason: 'nsfw',
            at: new Date(),
          }),
        )
        .catch((err: unknown) =>
          this.logger.error({ err, requestId: e.requestId }, 'Could not record the upload.rejected event'),
        );
    });
  }

  onModuleDestroy(): void {
    this.unsubscribe?.();
  }

  /**
   * Call inside the transaction that records the upload (em is that transaction's EntityManager): one outbox row per
   * endpoint of the owner enabled now, committed or rolled back with the upload. An endpoint disabled automatically
   * (it kept failing) still gets its row, held until it is enabled again; one its owner turned off gets none.
   * Returns how many were written.
   */
  async recordUploadCreated(em: EntityManager, e: UploadCreatedEvent): Promise<number> {
    return this.record(em, e.ownerId, 'upload.created', uploadCreatedPayload(e));
  }

  /**
   * The rows recordUploadCreated would write, as SQL for a data-modifying CTE of the statement that inserts the upload
   * (UploadPipelineService's one-statement record): one row per endpoint of the owner subscribed to upload.created,
   * held while the endpoint is auto-disabled, as record() decides. `ins` names the CTE that inserted the upload. It
   * takes two `?` parameters, in this order: the body (uploadCreatedBody) and the owner's id. The caller kicks the
   * relay (kickRelay) once the statement has committed.
   */
  static uploadCreatedInsert(ins: string): string {
    return `insert into outbox_events (id, webhook_id, event, body, created_at, attempts, held_at)
      select gen_random_uuid(), w.id, 'upload.created', ?, now(), 0, case when w.enabled then null else now() end
        from webhooks w, ${ins}
       where w.user_id = ? and w.events @> array['upload.created']::text[]
         and (w.enabled or w.disabled_reason = 'failing')
      returning 1`;
  }

  /** The upload.created body, as recordUploadCreated writes it. */
  static uploadCreatedBody(e: UploadCreatedEvent): string {
    return JSON.stringify({ event: 'upload.created', ...uploadCreatedPayload(e) });
  }

  /** Relays what a committed statement wrote into the outbox. */
  kickRelay(): void {
    this.relay.kick();
  }

  /** upload.deleted, in the transaction that marks the upload deleted. */
  recordUploadDeleted(
    em: EntityManager,
    e: {
      ownerId: string;
      upload: UploadCreatedEvent['upload'];
      reason: UploadDeletedReason;
      deletedAt: Date;
    },
  ): Promise<number> {
    return this.record(em, e.ownerId, 'upload.deleted', {
      upload: e.upload,
      reason: e.reason,
      timestamp: e.deletedAt.toISOString(),
    });
  }

  /** upload.rejected (NSFW): nothing was stored, so it is its own transaction. */
  recordUploadRejected(
    em: EntityManager,
    e: { ownerId: string; sha256: string; reason: 'nsfw'; at: Date },
  ): Promise<number> {
    return this.record(em, e.ownerId, 'upload.rejected', {
      upload: { hash_sha256: e.sha256 },
      reason: e.reason,
      timestamp: e.at.toISOString(),
    });
  }

  /** api_key.created / api_key.revoked, in the key's transaction. */
  recordApiKeyEvent(
    em: EntityManager,
    event: 'api_key.created' | 'api_key.revoked',
    e: { ownerId: string; key: ApiKeyEventData; at: Date },
  ): Promise<number> {
    const { id, prefix, label, scopes } = e.key;
    return this.record(em, e.ownerId, event, {
      api_key: { id, prefix, label, scopes },
      timestamp: e.at.toISOString(),
    });
  }

  /** One outbox row per endpoint of the owner subscribed to `event` (see recordUploadCreated for which endpoints). */
  private async record(
    em: EntityManager,
    ownerId: string,
    event: WebhookEventType,
    payload: Record<string, unknown>,
  ): Promise<number> {
    const hooks = await em.find(Webhook, {
      user: ownerId,
      events: { $contains: [event] },
      $or: [{ enabled: true }, { disabledReason: 'failing' }],
    });
    if (hooks.length === 0) {
      return 0;
    }
    const body = JSON.stringify({ event, ...payload });
    const now = new Date();
    for (const hook of hooks) {
      em.create(OutboxEvent, { webhook: hook, event, body, heldAt: hook.enabled ? null : now });
    }
    await em.flush();
    this.kickAfterCommit(em);
    return hooks.length;
  }

  /** Relay as soon as the transaction commits; if it never does, the rows don't exist and the relay finds nothing. */
  private kickAfterCommit(em: EntityManager): void {
    const trx = em.getTransactionContext<{ executionPromise?: Promise<unknown> } & object>();
    if (trx?.executionPromise) {
      void trx.executionPromise.then(
        () => this.relay.kick(),
        () => undefined,
      );
    } else {
      this.relay.kick();
    }
  }
}

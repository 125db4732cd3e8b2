import { EntityManager } from '@mikro-orm/postgresql';
import { Injectable } from '@nestjs/common';
import type { SqlPart } from '../../common/database/sql-part';
import { OutboxEvent } from './outbox-event.entity';
import { OutboxRelay } from './outbox-relay.processor';
import { Webhook } from './webhook.entity';

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

/** Writes webhook events into the outbox, inside the caller's transaction. */
@Injectable()
export class OutboxService {
  constructor(private readonly relay: OutboxRelay) {}

  /**
   * Call inside the transaction that records the upload (em is that transaction's EntityManager): one outbox row per
   * endpoint of the owner enabled now, committed or rolled back with the upload. An endpoint disabled automatically
   * (it kept failing) still gets its row, held until it is enabled again; one its owner turned off gets none.
   * Returns how many were written.
   */
  async recordUploadCreated(em: EntityManager, e: UploadCreatedEvent): Promise<number> {
    const hooks = await em.find(Webhook, {
      user: e.ownerId,
      $or: [{ enabled: true }, { disabledReason: 'failing' }],
    });
    if (hooks.length === 0) {
      return 0;
    }
    const { filename, url, size, mime, width, height, hash_sha256 } = e.upload;
    const body = JSON.stringify({
      event: 'upload.created',
      upload: { filename, url, size, mime, width, height, hash_sha256 },
      timestamp: e.createdAt.toISOString(),
    });
    const now = new Date();
    for (const hook of hooks) {
      em.create(OutboxEvent, {
        webhook: hook,
        event: 'upload.created',
        body,
        heldAt: hook.enabled ? null : now,
      });
    }
    await em.flush();
    this.kickAfterCommit(em);
    return hooks.length;
  }

  /**
   * recordUploadCreated as a part of one statement (a CTE body) that also records the upload: one outbox row per
   * endpoint of the owner enabled now (or held, for one disabled automatically), written only if the CTE named
   * `recordedCte` yields a row, so the events commit or roll back with the upload. Returns the ids it wrote; call
   * uploadCreatedRecorded with their count once the statement has committed.
   */
  uploadCreatedPart(e: UploadCreatedEvent, recordedCte: string): SqlPart {
    if (!/^[a-z_]+$/.test(recordedCte)) {
      throw new Error(`Not a CTE name: ${recordedCte}`);
    }
    const { filename, url, size, mime, width, height, hash_sha256 } = e.upload;
    const body = JSON.stringify({
      event: 'upload.created',
      upload: { filename, url, size, mime, width, height, hash_sha256 },
      timestamp: e.createdAt.toISOString(),
    });
    const now = new Date();
    return {
      sql:
        `insert into outbox_events (id, webhook_id, event, body, created_at, held_at) ` +
        `select gen_random_uuid(), w.id, 'upload.created', ?, cast(? as timestamptz), ` +
        `case when w.enabled then null else cast(? as timestamptz) end ` +
        `from webhooks w where w.user_id = ? and (w.enabled or w.disabled_reason = 'failing') ` +
        `and exists (select 1 from ${recordedCte}) returning id`,
      params: [body, now, now, e.ownerId],
    };
  }

  /** After the statement with uploadCreatedPart committed: relay the rows it wrote now. */
  uploadCreatedRecorded(written: number): void {
    if (written > 0) {
      this.relay.kick();
    }
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

import { EntityManager } from '@mikro-orm/postgresql';
import {
  type BeforeApplicationShutdown,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { withTimeout } from '../../common/time/timeout';
import { ProcessRoleService } from '../../common/jobs/process-role.service';
import { WebhookQueue } from './webhook-queue';

const POLL_INTERVAL_MS = 1000;
const BATCH_SIZE = 100;
const ENQUEUE_TIMEOUT_MS = 5000;
const SHUTDOWN_WAIT_MS = 10_000;

/**
 * Moves committed outbox rows to the delivery queue. It polls (so rows committed while Redis was down, or just
 * before a crash, are picked up once it can enqueue) and is kicked right after an upload commits. Rows are claimed
 * and marked relayed in one short statement (FOR UPDATE SKIP LOCKED inside it, so any number of instances can relay
 * at once), and no lock is held across the Redis round trip: a failed enqueue un-marks them, and a crash in between
 * leaves them to the reconciler, which re-enqueues relayed open events whose job Redis doesn't have. The job id is
 * the row id, so enqueueing twice is harmless. Runs in the roles that start 'relay' (all but cli).
 */
@Injectable()
export class OutboxRelay implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(OutboxRelay.name);
  private loop: Promise<void> | null = null;
  private stopped = false;
  private kicked = false;
  private wake: (() => void) | null = null;
  private failing = false;

  constructor(
    private readonly em: EntityManager,
    private readonly queue: WebhookQueue,
    private readonly roles: ProcessRoleService,
  ) {}

  onApplicationBootstrap(): void {
    if (!this.roles.starts('relay')) {
      return;
    }
    this.loop = this.run();
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    // A batch in flight finishes (or rolls back: its rows stay for the next start); a wedged database can't hold
    // the shutdown hostage.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.loop,
      new Promise((resolve) => (timer = setTimeout(resolve, SHUTDOWN_WAIT_MS))),
    ]);
    clearTimeout(timer);
  }

  /** Relay now rather than at the next poll (after a commit that wrote outbox rows). */
  kick(): void {
    this.kicked = true;
    this.wake?.();
  }

  /** One batch: claim and mark unrelayed rows, then enqueue them. Returns how many were relayed. */
  async relayOnce(): Promise<number> {
    const conn = this.em.getConnection();
    const marked = new Date();
    const rows = await conn.execute<{ id: string }[]>(
      `update outbox_events set relayed_at = ?
        where id in (select id from outbox_events where relayed_at is null and held_at is null
                      order by created_at limit ? for update skip locked)
        returning id`,
      [marked, BATCH_SIZE],
    );
    if (rows.length === 0) {
      return 0;
    }
    const ids = rows.map((r) => r.id);
    try {
      await withTimeout(
        this.queue.addBulk(ids),
        ENQUEUE_TIMEOUT_MS,
        () => new Error(`enqueue timed out after ${ENQUEUE_TIMEOUT_MS} ms`),
      );
    } catch (err) {
      // Redis down: hand them back for the next poll (only the ones still carrying this pass's mark).
      await conn
        .execute('update outbox_events set relayed_at = null where id in (?) and relayed_at = ?', [
          ids,
          marked,
        ])
        .catch(() => undefined);
      throw err;
    }
    return rows.length;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      this.kicked = false;
      try {
        while (!this.stopped && (await this.relayOnce()) === BATCH_SIZE) {
          // A full batch: there may be more.
        }
        if (this.failing) {
          this.failing = false;
          this.logger.log('outbox relay recovered');
        }
      } catch (err) {
        if (!this.failing) {
          this.failing = true;
          this.logger.warn({ err }, 'outbox relay failed; retrying every second');
        }
      }
      if (!this.kicked && !this.stopped) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, POLL_INTERVAL_MS);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.wake = null;
      }
    }
  }
}

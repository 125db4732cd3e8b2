import { EntityManager } from '@mikro-orm/postgresql';
import {
  type BeforeApplicationShutdown,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { Queue, Worker } from 'bullmq';
import Redis from 'ioredis';
import { AppConfig } from '../../config/app-config';
import { bullPrefix, closeRedis, redisReachable, settleWithin, WEBHOOK_MAINTENANCE_QUEUE } from './queues';
import { WebhookQueue } from './webhook-queue';

const SCHEDULER_ID = 'webhook-reconcile';
const BATCH_SIZE = 500;
const READY_WAIT_MS = 2000;

/**
 * Re-enqueues what Redis lost. An event marked relayed but still open (not delivered, given up or held) after
 * WEBHOOK_RECONCILE_AFTER_MS whose job Redis no longer has — Redis restarted empty or was flushed, or the relay died
 * between marking and enqueueing — is enqueued again under its own id (delivery is idempotent by event id).
 *
 * It runs as a BullMQ job scheduler on the maintenance queue, so one run per WEBHOOK_RECONCILE_EVERY_MS across all
 * worker instances (never in APP_ROLE=api). Since a flushed Redis also forgets the scheduler, every worker instance
 * upserts it again each period: an upsert of an unchanged scheduler keeps its next run, so that costs nothing.
 */
@Injectable()
export class WebhookReconciler implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(WebhookReconciler.name);
  private connection: Redis | null = null;
  private queue: Queue | null = null;
  private worker: Worker | null = null;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly em: EntityManager,
    private readonly config: AppConfig,
    private readonly deliveries: WebhookQueue,
  ) {}

  onApplicationBootstrap(): void {
    if (this.config.appRole === 'api') {
      return;
    }
    this.connection = new Redis(this.config.redisUrl, { maxRetriesPerRequest: null });
    this.connection.on('error', () => undefined);
    const opts = { connection: this.connection, prefix: bullPrefix(this.config) };
    this.queue = new Queue(WEBHOOK_MAINTENANCE_QUEUE, opts);
    this.queue.on('error', () => undefined);
    this.worker = new Worker(WEBHOOK_MAINTENANCE_QUEUE, () => this.reconcile().then(() => undefined), {
      ...opts,
      concurrency: 1,
    });
    this.worker.on('error', (err) => this.logger.warn({ err }, 'webhook maintenance worker error'));
    this.worker.on('failed', (_job, err) => this.logger.warn({ err }, 'webhook reconcile failed'));
    const schedule = (): void => void this.schedule();
    schedule();
    this.timer = setInterval(schedule, this.config.webhookReconcileEveryMs);
    this.timer.unref();
  }

  /** Re-enqueues the lost events of one pass; returns how many. */
  async reconcile(): Promise<number> {
    const cutoff = new Date(Date.now() - this.config.webhookReconcileAfterMs);
    let requeued = 0;
    // Keyset on (relayed_at, id): one relay pass marks a whole batch with the same time.
    let after: [Date, string] = [new Date(0), '00000000-0000-0000-0000-000000000000'];
    for (;;) {
      const rows = await this.em.getConnection().execute<{ id: string; relayed_at: Date }[]>(
        `select id, relayed_at from outbox_events
          where delivered_at is null and failed_at is null and relayed_at is not null
            and (relayed_at, id) > (?, ?) and relayed_at < ? and held_at is null
          order by relayed_at, id limit ?`,
        [...after, cutoff, BATCH_SIZE],
      );
      if (rows.length === 0) {
        break;
      }
      const lost = await this.deliveries.lost(rows.map((r) => r.id));
      if (lost.length > 0) {
        await this.deliveries.addBulk(lost);
        requeued += lost.length;
      }
      if (rows.length < BATCH_SIZE) {
        break;
      }
      const last = rows[rows.length - 1];
      after = [new Date(last.relayed_at), last.id];
    }
    if (requeued > 0) {
      this.logger.warn({ requeued }, 'webhook events re-enqueued: their jobs were missing from Redis');
    }
    return requeued;
  }

  private async schedule(): Promise<void> {
    try {
      await this.queue?.upsertJobScheduler(
        SCHEDULER_ID,
        { every: this.config.webhookReconcileEveryMs },
        { name: 'reconcile', opts: { removeOnComplete: true, removeOnFail: true } },
      );
    } catch (err) {
      // Redis down: the next period tries again.
      this.logger.debug?.({ err }, 'webhook reconcile scheduler not set');
    }
  }

  async beforeApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    if (this.connection && redisReachable(this.connection)) {
      await settleWithin(
        Promise.all([this.worker?.waitUntilReady(), this.queue?.waitUntilReady()]),
        READY_WAIT_MS,
      );
    }
    // Closing against a Redis that went away must not fail the shutdown.
    await this.worker?.close().catch(() => undefined);
    await this.queue?.close().catch(() => undefined);
    if (this.connection) {
      await closeRedis(this.connection);
    }
  }
}

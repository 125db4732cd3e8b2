import { EntityManager } from '@mikro-orm/postgresql';
import {
  type BeforeApplicationShutdown,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { Queue, Worker } from 'bullmq';
import Redis from 'ioredis';
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { AppConfig } from '../../config/app-config';
import { bullPrefix, closeRedis, JANITOR_QUEUE, redisReachable, settleWithin } from '../webhooks/queues';
import { StorageDriver } from '../storage/storage-driver';
import { Upload } from './upload.entity';

/** A file younger than this may belong to an upload whose row is still being committed. */
export const GRACE_MS = 15 * 60 * 1000;
const SCHEDULER_ID = 'janitor-sweep';
/** One sweep after each start; the fixed id makes instances that start together share it. */
const STARTUP_JOB_ID = 'janitor-startup';
const READY_WAIT_MS = 2000;

export interface SweepResult {
  /** Stored files no live upload points to, removed. */
  orphans: number;
  /** Temp files removed: interrupted streams in DATA_DIR/tmp and the storage driver's interrupted writes. */
  temps: number;
  /** Database look-ups made, one per JANITOR_BATCH_SIZE stored keys. */
  batches: number;
}

/**
 * The other half of "file before row": removes stored files that no live upload points to (a crash between the
 * file write and the commit, a failed delete) and temp files left by a crash mid-stream or mid-write, once older
 * than the 15-minute grace period. Outside APP_ROLE=api each instance runs a BullMQ worker on the janitor queue:
 * a job scheduler sweeps every JANITOR_INTERVAL_MINUTES and one job sweeps JANITOR_START_DELAY_SECONDS after each
 * start; the queue's global concurrency of 1 keeps it to one sweep at a time across the deployment.
 */
@Injectable()
export class JanitorService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(JanitorService.name);
  private connection: Redis | null = null;
  private queue: Queue | null = null;
  private worker: Worker | null = null;

  constructor(
    private readonly em: EntityManager,
    private readonly storage: StorageDriver,
    private readonly config: AppConfig,
  ) {}

  onApplicationBootstrap(): void {
    if (this.config.appRole === 'api') {
      return;
    }
    // Workers block on Redis: BullMQ requires maxRetriesPerRequest null on their connection.
    this.connection = new Redis(this.config.redisUrl, { maxRetriesPerRequest: null });
    this.connection.on('error', () => undefined);
    const options = { connection: this.connection, prefix: bullPrefix(this.config) };
    this.queue = new Queue(JANITOR_QUEUE, options);
    this.queue.on('error', () => undefined);
    this.worker = new Worker(JANITOR_QUEUE, () => this.sweep(), { ...options, concurrency: 1 });
    this.worker.on('error', (err) => this.logger.warn({ err }, 'janitor worker error'));
    this.worker.on('failed', (_job, err) => this.logger.warn({ err }, 'janitor sweep failed'));
    this.schedule(this.queue).catch((err: unknown) =>
      this.logger.warn({ err }, 'could not schedule the janitor; next start tries again'),
    );
  }

  private async schedule(queue: Queue): Promise<void> {
    const { intervalMs, startDelayMs } = this.config.janitor;
    await queue.setGlobalConcurrency(1);
    await queue.upsertJobScheduler(
      SCHEDULER_ID,
      { every: intervalMs },
      { name: 'sweep', opts: { removeOnComplete: 100, removeOnFail: 100 } },
    );
    await queue.add(
      'sweep',
      {},
      { jobId: STARTUP_JOB_ID, delay: startDelayMs, removeOnComplete: true, removeOnFail: true },
    );
  }

  async beforeApplicationShutdown(): Promise<void> {
    if (this.connection && redisReachable(this.connection)) {
      await settleWithin(
        Promise.all([this.worker?.waitUntilReady(), this.queue?.waitUntilReady()]),
        READY_WAIT_MS,
      );
    }
    // Waits for a sweep in progress, so it never runs against a closed database connection.
    await this.worker?.close();
    await this.queue?.close().catch(() => undefined);
    if (this.connection) {
      await closeRedis(this.connection);
    }
  }

  /**
   * One sweep; `now` is injectable for tests. Stored keys are paged through JANITOR_BATCH_SIZE at a time, so memory
   * stays flat however many files there are.
   */
  async sweep(now = Date.now()): Promise<SweepResult> {
    const cutoff = now - GRACE_MS;
    const { batchSize } = this.config.janitor;
    const result: SweepResult = { orphans: 0, temps: 0, batches: 0 };
    let batch: string[] = [];
    for await (const object of this.storage.list()) {
      if (object.modifiedAt.getTime() < cutoff) {
        batch.push(object.key);
        if (batch.length >= batchSize) {
          result.orphans += await this.removeOrphans(batch);
          result.batches++;
          batch = [];
        }
      }
    }
    if (batch.length > 0) {
      result.orphans += await this.removeOrphans(batch);
      result.batches++;
    }
    result.temps += await this.storage.removeTempsBefore(new Date(cutoff));
    result.temps += await this.removeStreamTemps(cutoff);
    if (result.orphans > 0 || result.temps > 0) {
      this.logger.log(`removed ${result.orphans} orphaned files and ${result.temps} temp files`);
    }
    return result;
  }

  private async removeOrphans(keys: string[]): Promise<number> {
    const live = await this.em
      .fork()
      .find(Upload, { filename: { $in: keys }, deletedAt: null }, { fields: ['filename'] });
    const keep = new Set(live.map((r) => r.filename));
    let removed = 0;
    for (const key of keys) {
      if (!keep.has(key)) {
        await this.storage.delete(key);
        removed++;
      }
    }
    return removed;
  }

  /** Partial multipart bodies in DATA_DIR/tmp (one directory, files named by the reader). */
  private async removeStreamTemps(cutoff: number): Promise<number> {
    const tmp = join(this.config.dataDir, 'tmp');
    const dir = await readdir(tmp).catch(() => [] as string[]);
    let removed = 0;
    for (const name of dir) {
      const info = await stat(join(tmp, name)).catch(() => null);
      if (info && info.mtimeMs < cutoff) {
        await rm(join(tmp, name), { force: true });
        removed++;
      }
    }
    return removed;
  }
}

import type { Logger } from '@nestjs/common';
import { Queue, Worker } from 'bullmq';
import type Redis from 'ioredis';
import type { AppConfig } from '../../config/app-config';
import { bullConnection, bullPrefix, closeBull, closeRedis, QUIT_WAIT_MS, redisAnswers } from './bull';

/** How long shutdown waits for a run in progress; past it the run is left to fail against the closing database. */
const RUN_WAIT_MS = 30_000;

export interface PeriodicJobSpec {
  /** The BullMQ queue (one per job: its global concurrency of 1 keeps the job to one run at a time). */
  queue: string;
  /** The job scheduler's id: the same on every instance, so N instances share one scheduler. */
  schedulerId: string;
  /** The job name. */
  name: string;
  everyMs: number;
  run: () => Promise<unknown>;
  /** Also one run this long after each start; the fixed job id makes instances that start together share it. */
  startup?: { jobId: string; delayMs: number };
  /** Finished jobs kept for inspection (default: none). */
  keep?: number;
}

/**
 * One periodic job as a BullMQ job scheduler, run once per period across every instance sharing Redis: each
 * instance upserts the same scheduler (an upsert of an unchanged one keeps its next run) and runs a worker with
 * concurrency 1 on a queue whose global concurrency is 1. Every instance upserts it again each period, since a
 * flushed Redis also forgets the scheduler. Start it only in roles that run periodic work (ProcessRoleService).
 */
export class PeriodicJob {
  private readonly connection: Redis;
  readonly queue: Queue;
  private readonly worker: Worker;
  private readonly timer: NodeJS.Timeout;

  private constructor(
    config: AppConfig,
    private readonly spec: PeriodicJobSpec,
    private readonly logger: Logger,
  ) {
    // Workers block on Redis: BullMQ requires maxRetriesPerRequest null on their connection.
    this.connection = bullConnection(config.redisUrl, { maxRetriesPerRequest: null }, logger, spec.name);
    const options = { connection: this.connection, prefix: bullPrefix(config) };
    this.queue = new Queue(spec.queue, options);
    this.queue.on('error', () => undefined);
    this.worker = new Worker(spec.queue, () => spec.run(), { ...options, concurrency: 1 });
    this.worker.on('error', (err) => logger.warn({ err }, `${spec.name} worker error`));
    this.worker.on('failed', (_job, err) => logger.warn({ err }, `${spec.name} failed`));
    void this.schedule(true);
    this.timer = setInterval(() => void this.schedule(false), spec.everyMs);
    this.timer.unref();
  }

  static start(config: AppConfig, spec: PeriodicJobSpec, logger: Logger): PeriodicJob {
    return new PeriodicJob(config, spec, logger);
  }

  private async schedule(first: boolean): Promise<void> {
    const { spec } = this;
    const keep = spec.keep ?? 0;
    const removal =
      keep > 0
        ? { removeOnComplete: keep, removeOnFail: keep }
        : { removeOnComplete: true, removeOnFail: true };
    try {
      await this.queue.setGlobalConcurrency(1);
      await this.queue.upsertJobScheduler(
        spec.schedulerId,
        { every: spec.everyMs },
        { name: spec.name, opts: removal },
      );
      if (first && spec.startup) {
        await this.queue.add(
          spec.name,
          {},
          {
            jobId: spec.startup.jobId,
            delay: spec.startup.delayMs,
            removeOnComplete: true,
            removeOnFail: true,
          },
        );
      }
    } catch (err) {
      // Redis down: the next period tries again.
      this.logger.warn({ err }, `could not schedule ${spec.name}; the next period tries again`);
    }
  }

  /**
   * Waits for a run in progress (so it never runs against a closed database connection), at most RUN_WAIT_MS and
   * not at all while Redis does not answer, then disconnects.
   */
  async close(): Promise<void> {
    clearInterval(this.timer);
    const answering = await redisAnswers(this.connection);
    if (!(await closeBull(this.worker, answering, RUN_WAIT_MS))) {
      this.logger.warn(
        `${this.spec.name}: worker closed without waiting (Redis not answering, or a long run)`,
      );
    }
    await closeBull(this.queue, answering, QUIT_WAIT_MS);
    await closeRedis(this.connection);
  }
}

import { EntityManager } from '@mikro-orm/postgresql';
import {
  type BeforeApplicationShutdown,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { AppConfig } from '../../config/app-config';
import { PeriodicJob } from '../../common/jobs/periodic-job';
import { ProcessRoleService } from '../../common/jobs/process-role.service';
import { JANITOR_QUEUE } from '../webhooks/queues';
import { StorageDriver } from '../storage/storage-driver';
import { originalOfStorageKey, VARIANT_SEPARATOR } from '../storage/variant-keys';
import { FILENAME_PATTERN } from './filenames';
import { Upload } from './upload.entity';

/** A file younger than this may belong to an upload whose row is still being committed. */
export const GRACE_MS = 15 * 60 * 1000;
const SCHEDULER_ID = 'janitor-sweep';
/** One sweep after each start; the fixed id makes instances that start together share it. */
const STARTUP_JOB_ID = 'janitor-startup';

/** A variant's part of a storage key (variantKey in media/variant-params.ts), e.g. `w320_h0_inside_webp`. */
const VARIANT_KEY = /^w\d{1,5}_h\d{1,5}_(inside|cover)_[a-z0-9]{1,8}$/;

/**
 * Whether the service wrote this key: an upload's filename, alone or followed by a variant key (variantStorageKey).
 * Nothing else is ever the janitor's: another application's objects in a shared bucket or prefix, or a file an
 * operator left in the storage directory, are never listed as orphans, however old.
 */
export function isOwnStorageKey(key: string): boolean {
  const original = originalOfStorageKey(key);
  return (
    FILENAME_PATTERN.test(original) &&
    (original === key || VARIANT_KEY.test(key.slice(original.length + VARIANT_SEPARATOR.length)))
  );
}

export interface SweepResult {
  /** Stored files no live upload points to, removed. */
  orphans: number;
  /** Temp files removed: interrupted streams in DATA_DIR/tmp and the storage driver's interrupted writes. */
  temps: number;
  /** Database look-ups made, one per JANITOR_BATCH_SIZE stored keys. */
  batches: number;
}

/**
 * The other half of "file before row": removes stored files (only keys the service writes, isOwnStorageKey) that no
 * live upload points to (a crash between the file write and the commit, a failed delete) and temp files left by a
 * crash mid-stream or mid-write, once older than the 15-minute grace period. In the roles that run periodic work
 * (common/jobs/process-role.ts) a job scheduler sweeps every JANITOR_INTERVAL_MINUTES and one job sweeps
 * JANITOR_START_DELAY_SECONDS after each start, once per period across the deployment (common/jobs/periodic-job.ts).
 */
@Injectable()
export class JanitorService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(JanitorService.name);
  private job: PeriodicJob | null = null;

  constructor(
    private readonly em: EntityManager,
    private readonly storage: StorageDriver,
    private readonly config: AppConfig,
    private readonly roles: ProcessRoleService,
  ) {}

  onApplicationBootstrap(): void {
    if (!this.roles.starts('periodic')) {
      return;
    }
    const { intervalMs, startDelayMs } = this.config.janitor;
    this.job = PeriodicJob.start(
      this.config,
      {
        queue: JANITOR_QUEUE,
        schedulerId: SCHEDULER_ID,
        name: 'sweep',
        everyMs: intervalMs,
        run: () => this.sweep(),
        startup: { jobId: STARTUP_JOB_ID, delayMs: startDelayMs },
        keep: 100,
      },
      this.logger,
    );
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.job?.close();
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
      if (object.modifiedAt.getTime() < cutoff && isOwnStorageKey(object.key)) {
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
      .find(
        Upload,
        { filename: { $in: [...new Set(keys.map(originalOfStorageKey))] }, deletedAt: null },
        { fields: ['filename'] },
      );
    const keep = new Set(live.map((r) => r.filename));
    let removed = 0;
    for (const key of keys) {
      // A variant lives as long as its original's upload.
      if (!keep.has(originalOfStorageKey(key))) {
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

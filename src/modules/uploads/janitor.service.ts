import { EntityManager } from '@mikro-orm/postgresql';
import { Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { AppConfig } from '../../config/app-config';
import { StorageDriver } from './storage/storage-driver';
import { Upload } from './upload.entity';

const RUN_EVERY_MS = 60 * 60 * 1000;
/** A file younger than this may belong to an upload whose row is still being committed. */
const GRACE_MS = 15 * 60 * 1000;

/**
 * The other half of "file before row": removes stored files that no live upload points to (a crash between the
 * file write and the commit, a failed delete) and temp files left by a crash mid-stream. Runs hourly per instance.
 */
@Injectable()
export class JanitorService implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(JanitorService.name);
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly em: EntityManager,
    private readonly storage: StorageDriver,
    private readonly config: AppConfig,
  ) {}

  onModuleInit(): void {
    if (this.config.appRole === 'api') {
      return;
    }
    this.timer = setInterval(() => {
      this.sweep().catch((err: unknown) => this.logger.warn({ err }, 'janitor sweep failed'));
    }, RUN_EVERY_MS);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
  }

  /** One sweep; returns what was removed. `now` is injectable for tests. */
  async sweep(now = Date.now()): Promise<{ orphans: string[]; temps: number }> {
    const cutoff = now - GRACE_MS;
    const candidates: string[] = [];
    for await (const object of this.storage.list()) {
      if (object.modifiedAt.getTime() < cutoff) {
        candidates.push(object.key);
      }
    }
    const orphans: string[] = [];
    const em = this.em.fork();
    for (let i = 0; i < candidates.length; i += 500) {
      const batch = candidates.slice(i, i + 500);
      const live = await em.find(
        Upload,
        { filename: { $in: batch }, deletedAt: null },
        { fields: ['filename'] },
      );
      const keep = new Set(live.map((r) => r.filename));
      for (const key of batch.filter((k) => !keep.has(k))) {
        await this.storage.delete(key);
        orphans.push(key);
      }
    }
    let temps = 0;
    const tmp = join(this.config.dataDir, 'tmp');
    for (const name of await readdir(tmp).catch(() => [] as string[])) {
      const info = await stat(join(tmp, name)).catch(() => null);
      if (info && info.mtimeMs < cutoff) {
        await rm(join(tmp, name), { force: true });
        temps++;
      }
    }
    if (orphans.length > 0 || temps > 0) {
      this.logger.log(`removed ${orphans.length} orphaned files and ${temps} temp files`);
    }
    return { orphans, temps };
  }
}

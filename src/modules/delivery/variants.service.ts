import { EntityManager } from '@mikro-orm/postgresql';
import { Injectable, Logger, Optional } from '@nestjs/common';
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { AppError } from '../../common/errors/app-error';
import { Metrics } from '../../common/metrics/metrics.service';
import { RedisService } from '../../common/redis/redis.module';
import { withRedisTimeout } from '../../common/redis/redis-timeout';
import { AppConfig } from '../../config/app-config';
import { MediaError } from '../media/media-error';
import { renderVariant } from '../media/render-variant';
import type { SourceMime, VariantMime, VariantSpec } from '../media/variant-params';
import { StorageDriver } from '../storage/storage-driver';
import { variantStorageKey } from '../storage/variant-keys';
import type { ServableUpload } from '../uploads/uploads.service';

/** A stored variant: where its bytes are, and what sendImage needs to answer for them. */
export interface StoredVariant {
  storageKey: string;
  size: number;
  sha256: string;
  mime: string;
  createdAt: Date;
  /** The bytes, when this request rendered them: answered from memory instead of read back from storage. */
  data?: Buffer;
}

/** What to make: the canonical key and the spec resolveVariant settled. */
export interface VariantRequest {
  key: string;
  spec: VariantSpec;
  mime: VariantMime;
}

/** Deletes the lock only if it still holds our token (another renderer may own it after our lease ran out). */
const RELEASE_LOCK = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;

const POLL_MS = 100;

/**
 * How long the lease may wait for Redis. Past it (or at once when Redis refuses) a cold variant answers 503
 * `unavailable` with Retry-After through the error filter: without the lease nothing keeps a burst to one render
 * across instances. A stored variant needs no lease and keeps serving while Redis is down.
 */
const LEASE_REDIS_TIMEOUT_MS = 2000;

interface VariantRow {
  storage_key: string;
  size: number;
  sha256: string;
  mime: string;
  created_at: Date;
}

/**
 * Variants on the direct link (API.md Part 3): made once on first request, stored beside the original, served like
 * it. One renderer per (upload, key) across instances (a Redis lease, SET NX PX with a token); the others poll for
 * the row. Renders run at most `variantRenderConcurrency` at once per instance with at most `variantQueueLimit`
 * waiting; past that the answer is 503 `unavailable` with Retry-After.
 */
@Injectable()
export class VariantsService {
  private readonly logger = new Logger(VariantsService.name);
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  /** Renders this instance completed (for tests and metrics: concurrent first requests must render once). */
  renders = 0;

  constructor(
    private readonly em: EntityManager,
    private readonly storage: StorageDriver,
    private readonly redis: RedisService,
    private readonly config: AppConfig,
    @Optional() private readonly metrics?: Metrics,
  ) {}

  /** The stored variant, rendered and stored first if nobody has made it yet. */
  async ensure(upload: ServableUpload, variant: VariantRequest): Promise<StoredVariant> {
    const existing = await this.find(upload.id, variant.key);
    if (existing) {
      return existing;
    }
    const lockKey = `variant-lock:${upload.id}:${variant.key}`;
    const token = randomBytes(16).toString('hex');
    // The lease outlives a render (sharp's own timeout) plus the read and the write around it.
    const leaseMs = (this.config.images.timeoutSeconds + 30) * 1000;
    const deadline = Date.now() + leaseMs;
    for (;;) {
      const won = await withRedisTimeout(
        this.redis.client.set(lockKey, token, 'PX', leaseMs, 'NX'),
        LEASE_REDIS_TIMEOUT_MS,
        'variant lease',
      );
      if (won === 'OK') {
        try {
          // Someone may have finished between our first look and our lock.
          return (await this.find(upload.id, variant.key)) ?? (await this.make(upload, variant));
        } finally {
          // Awaited: a release still queued in the Redis client when Redis stops answering kept the app's shutdown
          // waiting for its reply. A Redis gone meanwhile keeps the lease until it expires; the variant is stored.
          await withRedisTimeout(
            this.redis.client.eval(RELEASE_LOCK, 1, lockKey, token),
            LEASE_REDIS_TIMEOUT_MS,
            'variant lease release',
          ).catch(() => undefined);
        }
      }
      await sleep(POLL_MS);
      const made = await this.find(upload.id, variant.key);
      if (made) {
        return made;
      }
      if (Date.now() > deadline) {
        throw new AppError('unavailable', 'This variant is still being made; try again shortly.', {
          headers: { 'Retry-After': '2' },
        });
      }
    }
  }

  /** The storage keys of an upload's variants (for delete). */
  async storageKeysOf(uploadId: string): Promise<string[]> {
    const rows = await this.em
      .fork()
      .getConnection()
      .execute<
        { storage_key: string }[]
      >('select storage_key from upload_variants where upload_id = ?', [uploadId]);
    return rows.map((r) => r.storage_key);
  }

  private async find(uploadId: string, key: string): Promise<StoredVariant | null> {
    const rows = await this.em
      .fork()
      .getConnection()
      .execute<
        VariantRow[]
      >('select storage_key, size, sha256, mime, created_at from upload_variants where upload_id = ? and key = ?', [uploadId, key]);
    const row = rows[0];
    if (!row) {
      return null;
    }
    return {
      storageKey: row.storage_key,
      size: Number(row.size),
      sha256: row.sha256,
      mime: row.mime,
      createdAt: new Date(row.created_at),
    };
  }

  private async make(upload: ServableUpload, variant: VariantRequest): Promise<StoredVariant> {
    const release = await this.slot();
    const timer = this.metrics?.variantRenderDuration.startTimer();
    let data: Buffer;
    try {
      const original = await this.readOriginal(upload.filename);
      const rendered = await renderVariant(original, upload.mime as SourceMime, variant.spec, {
        maxInputPixels: 100_000_000,
        maxOutputPixels: 100_000_000,
        timeoutSeconds: this.config.images.timeoutSeconds,
      });
      data = rendered.data;
      this.renders++;
      this.metrics?.variantRenders.inc({ outcome: 'ok' });
      timer?.({ outcome: 'ok' });
    } catch (error) {
      const failed = toAppError(error);
      this.metrics?.variantRenders.inc({ outcome: failed.code });
      timer?.({ outcome: failed.code });
      throw failed;
    } finally {
      release();
    }
    const storageKey = variantStorageKey(upload.filename, variant.key);
    const sha256 = createHash('sha256').update(data).digest('hex');
    // File before row: a crash in between leaves a file the janitor removes once its upload is gone, or one the
    // next render overwrites.
    await this.storage.put(storageKey, data);
    const createdAt = new Date();
    const inserted = await this.em.fork().transactional(async (em) => {
      const conn = em.getConnection();
      const ctx: unknown = em.getTransactionContext();
      // A variant row is a cache entry: lost in a database crash, the next request makes the variant again under the
      // same storage key. So its commit does not wait for the WAL flush, which was most of the insert's time.
      await conn.execute('set local synchronous_commit to off', [], 'run', ctx);
      return conn.execute<{ created_at: Date }[]>(
        `insert into upload_variants (upload_id, key, storage_key, size, sha256, mime, created_at)
         values (?, ?, ?, ?, ?, ?, ?) on conflict do nothing returning created_at`,
        [upload.id, variant.key, storageKey, data.length, sha256, variant.mime, createdAt],
        'all',
        ctx,
      );
    });
    if (inserted.length === 0) {
      // Stored by another renderer meanwhile (its lease ran out): answer what its row says.
      const theirs = await this.find(upload.id, variant.key);
      if (theirs) {
        return theirs;
      }
    }
    return { storageKey, size: data.length, sha256, mime: variant.mime, createdAt, data };
  }

  private async readOriginal(filename: string): Promise<Buffer> {
    const file = this.storage.localFile(filename);
    if (file) {
      // On local storage, one read of the whole file instead of a stream of 64 KB chunks.
      try {
        return await readFile(file.path);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
          throw new AppError('not_found', 'No such image.');
        }
        throw error;
      }
    }
    const stream = await this.storage.get(filename);
    if (!stream) {
      throw new AppError('not_found', 'No such image.');
    }
    const chunks: Buffer[] = [];
    for await (const chunk of stream) {
      chunks.push(chunk as Buffer);
    }
    return Buffer.concat(chunks);
  }

  /**
   * A render slot (call the returned function to give it back); throws 503 at once when the queue is full instead
   * of piling requests up. Public so a test can hold the slots and see the queue refuse.
   */
  async slot(): Promise<() => void> {
    if (this.active >= this.config.variantRenderConcurrency) {
      if (this.waiting.length >= this.config.variantQueueLimit) {
        throw new AppError('unavailable', 'Too many variants are being made right now; try again shortly.', {
          headers: { 'Retry-After': '1' },
        });
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.active++;
    }
    let released = false;
    return () => {
      if (released) {
        return;
      }
      released = true;
      const next = this.waiting.shift();
      if (next) {
        next(); // the slot passes on; `active` stays the same
      } else {
        this.active--;
      }
    };
  }
}

/** MediaError onto the contract's AppError, same code; anything else is a failed render. */
export function toAppError(error: unknown): AppError {
  if (error instanceof AppError) {
    return error;
  }
  if (error instanceof MediaError) {
    return new AppError(error.code, error.message, {
      cause: error,
      headers: error.code === 'unavailable' ? { 'Retry-After': '5' } : undefined,
    });
  }
  return new AppError('processing_failed', 'This variant could not be made.', { cause: error });
}

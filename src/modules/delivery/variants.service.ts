import { EntityManager } from '@mikro-orm/postgresql';
import { type BeforeApplicationShutdown, Injectable, Logger, Optional } from '@nestjs/common';
import { createHash, randomBytes } from 'node:crypto';
import { access } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { leanQuery } from '../../database/lean-query';
import { AppError } from '../../common/errors/app-error';
import { Metrics } from '../../common/metrics/metrics.service';
import { RedisService } from '../../common/redis/redis.module';
import { withRedisTimeout } from '../../common/redis/redis-timeout';
import { settleWithin } from '../../common/time/timeout';
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
  /** The bytes, when this instance just rendered them: answered from memory instead of read back from storage. */
  data?: Buffer;
  /**
   * With `data`: settles once the variant is stored (file, then row), true when it was. The answer does not wait
   * for it; what may read the variant back from storage (the delivery cache) waits for it. Never rejects.
   */
  saved?: Promise<boolean>;
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

/** Originals up to this size are read while the variant is looked up (see obtain). */
const SPECULATIVE_READ_BYTES = 8 * 1024 * 1024;

/** How long shutdown waits for variants still being stored (each is a put and one insert). */
const SAVE_WAIT_MS = 10_000;

/**
 * The row of a variant just stored, in one statement: only while its upload is live (FOR SHARE: a delete waits for
 * this commit, or this insert sees the delete and adds nothing, and the caller removes the file), and replacing a
 * row another renderer wrote for the same key (its lease ran out; the file is ours now, so the row must say so).
 * A variant row is a cache entry, lost in a database crash the next request makes the variant again under the same
 * storage key, so its commit does not wait for the WAL flush (set_config(..., true) is this statement's own).
 */
const INSERT_VARIANT_SQL = `
with durability as (select set_config('synchronous_commit', 'off', true)),
     live as (select id from uploads where id = ? and deleted_at is null for share)
insert into upload_variants (upload_id, key, storage_key, size, sha256, mime, created_at)
select live.id, ?, ?, ?, ?, ?, ? from live, durability
on conflict (upload_id, key) do update
  set storage_key = excluded.storage_key, size = excluded.size, sha256 = excluded.sha256, mime = excluded.mime,
      created_at = excluded.created_at
returning created_at`;

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
 * it. One renderer per (upload, key) across instances (a Redis lease, SET NX PX with a token); requests on the same
 * instance share its render (and its bytes), requests on other instances poll for the row. The renderer answers
 * from the rendered bytes at once and stores them after (file, then row, then the lease goes), so storing is not
 * on the first request's path; a store that fails costs a render on a later request, never a wrong answer.
 * Renders run at most `variantRenderConcurrency` at once per instance with at most `variantQueueLimit` waiting;
 * past that the answer is 503 `unavailable` with Retry-After.
 */
@Injectable()
export class VariantsService implements BeforeApplicationShutdown {
  private readonly logger = new Logger(VariantsService.name);
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  /** Renders in progress here, by `${uploadId}:${key}`, until their variant is stored. */
  private readonly inflight = new Map<string, Promise<StoredVariant>>();
  /** Stores and lease releases in progress after their answer (idle() and shutdown wait for them). */
  private readonly saving = new Set<Promise<unknown>>();
  /** Renders this instance completed (for tests and metrics: concurrent first requests must render once). */
  renders = 0;

  constructor(
    private readonly em: EntityManager,
    private readonly storage: StorageDriver,
    private readonly redis: RedisService,
    private readonly config: AppConfig,
    @Optional() private readonly metrics?: Metrics,
  ) {}

  /**
   * The variant: stored already (no `data`: read it from storage), or rendered now by this instance (`data`, and
   * `saved` settling once it is stored).
   */
  async ensure(upload: ServableUpload, variant: VariantRequest): Promise<StoredVariant> {
    const id = `${upload.id}:${variant.key}`;
    // Requests here for the same variant share one look (and one render).
    const pending = this.inflight.get(id);
    if (pending) {
      return pending;
    }
    const made = this.obtain(upload, variant);
    this.inflight.set(id, made);
    const forget = (): void => {
      if (this.inflight.get(id) === made) {
        this.inflight.delete(id);
      }
    };
    made.then((v) => void (v.saved ?? Promise.resolve()).finally(forget), forget);
    return made;
  }

  /** Settles once every variant rendered here so far is stored (or failed to be), and its lease given back. */
  async idle(): Promise<void> {
    await Promise.all(this.saving);
  }

  /** Waits (bounded) for variants still being stored, so none is cut off halfway by the database closing. */
  async beforeApplicationShutdown(): Promise<void> {
    await settleWithin(this.idle(), SAVE_WAIT_MS);
  }

  /**
   * The stored variant, else a render of it under the lease; or the one another instance stores meanwhile. The
   * first look and the lease go out together (one round trip's wait instead of two): a variant already stored
   * gives its lease back, and one stored without Redis keeps serving while Redis is down.
   *
   * A variant the upload's row says was not stored when it was read (`storedVariants`, up to DELIVERY_CACHE_SECONDS
   * old) is not looked for: the render starts once the lease is won. One another instance stored since is then
   * rendered again and stored over the first (the same bytes, the row replaced), at most once per instance and
   * cache window; every cold variant saves the look's round trip.
   */
  private async obtain(upload: ServableUpload, variant: VariantRequest): Promise<StoredVariant> {
    const lockKey = `variant-lock:${upload.id}:${variant.key}`;
    const token = randomBytes(16).toString('hex');
    // The lease outlives a render (sharp's own timeout) plus the read and the write around it.
    const leaseMs = (this.config.images.timeoutSeconds + 30) * 1000;
    const deadline = Date.now() + leaseMs;
    const lease = (): Promise<string | null> =>
      withRedisTimeout(
        this.redis.client.set(lockKey, token, 'PX', leaseMs, 'NX'),
        LEASE_REDIS_TIMEOUT_MS,
        'variant lease',
      );
    // Awaited where it runs: a release still queued in the Redis client when Redis stops answering kept the app's
    // shutdown waiting for its reply. A Redis gone meanwhile keeps the lease until it expires.
    const release = (): Promise<unknown> =>
      withRedisTimeout(
        this.redis.client.eval(RELEASE_LOCK, 1, lockKey, token),
        LEASE_REDIS_TIMEOUT_MS,
        'variant lease release',
      ).catch(() => undefined);

    // A small original in a remote store is read alongside (a variant is mostly asked for once, and answered at once
    // from storage when it exists): its read is then off the path of the render. A local file is rendered from
    // the file itself, with nothing to read first.
    let original =
      upload.size <= SPECULATIVE_READ_BYTES && !this.storage.localFile(upload.filename)
        ? this.readOriginal(upload.filename)
        : undefined;
    original?.catch(() => undefined);
    // The look (none for a variant the row says is not stored) goes out first: it takes longer than the lease, and
    // the render waits for both.
    const unstored = upload.storedVariants !== undefined && !upload.storedVariants.has(variant.key);
    const looked = unstored ? Promise.resolve(null) : this.find(upload.id, variant.key);
    const first = lease();
    const stored = await looked.catch(async (error: unknown) => {
      if ((await first.catch(() => null)) === 'OK') {
        await release();
      }
      throw error;
    });
    if (stored) {
      upload.storedVariants?.add(variant.key);
      this.track(first.then((won) => won === 'OK' && release()).catch(() => undefined));
      return stored;
    }
    let won = await first;
    for (;;) {
      if (won === 'OK') {
        // Released once the variant is stored (or at once when nothing was rendered).
        let made: StoredVariant;
        try {
          made = await this.make(upload, variant, original);
        } catch (error) {
          await release();
          throw error;
        }
        if (!made.saved) {
          await release();
          return made;
        }
        const saved = made.saved.finally(release);
        this.track(saved);
        return { ...made, saved };
      }
      // Another renderer has it: no need to keep the bytes while we wait.
      original = undefined;
      await sleep(POLL_MS);
      const made = await this.find(upload.id, variant.key);
      if (made) {
        upload.storedVariants?.add(variant.key);
        return made;
      }
      if (Date.now() > deadline) {
        throw new AppError('unavailable', 'This variant is still being made; try again shortly.', {
          headers: { 'Retry-After': '2' },
        });
      }
      won = await lease();
    }
  }

  /** Work that follows an answer (a store, a lease given back): idle() and shutdown wait for it. */
  private track(work: Promise<unknown>): void {
    this.saving.add(work);
    void work.finally(() => this.saving.delete(work));
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

  /**
   * Drops the row of a stored variant whose file is gone from storage (removed behind the service's back): the next
   * ensure() finds no row and makes the variant again under its lease, as one never made. Only the row as it was
   * read (its sha256 and created_at): one stored again since by any renderer stays. A look in flight here may have
   * read the row before it went: ensure() no longer shares it (its callers get the stale row and come here too).
   */
  async forgetMissing(
    uploadId: string,
    key: string,
    stale: { sha256: string; createdAt: Date },
  ): Promise<void> {
    this.logger.warn({ uploadId, key }, 'stored variant missing from storage; making it again');
    await this.em
      .fork()
      .getConnection()
      .execute(
        'delete from upload_variants where upload_id = ? and key = ? and sha256 = ? and created_at = ?',
        [uploadId, key, stale.sha256, stale.createdAt],
      );
    this.inflight.delete(`${uploadId}:${key}`);
  }

  private async find(uploadId: string, key: string): Promise<StoredVariant | null> {
    const rows = await leanQuery<VariantRow>(
      this.em,
      'select storage_key, size, sha256, mime, created_at from upload_variants where upload_id = $1 and key = $2',
      [uploadId, key],
    );
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

  /**
   * Under the lease: a render of the variant (its bytes, with `saved` for the store that follows). No second look
   * for a row: one stored between our look and our lease (its renderer committed and released in the instant
   * between our two requests, which went out together) only costs a second render, stored over it unchanged.
   */
  private async make(
    upload: ServableUpload,
    variant: VariantRequest,
    original: Promise<Buffer> | undefined,
  ): Promise<StoredVariant> {
    const release = await this.slot();
    const timer = this.metrics?.variantRenderDuration.startTimer();
    const file = original ? null : this.storage.localFile(upload.filename);
    let data: Buffer;
    try {
      const rendered = await renderVariant(
        file ? { path: file.path } : await (original ?? this.readOriginal(upload.filename)),
        upload.mime as SourceMime,
        variant.spec,
        {
          maxInputPixels: 100_000_000,
          maxOutputPixels: 100_000_000,
          timeoutSeconds: this.config.images.timeoutSeconds,
        },
        upload.pages === null ? undefined : { frames: upload.pages },
      );
      data = rendered.data;
      this.renders++;
      this.metrics?.variantRenders.inc({ outcome: 'ok' });
      timer?.({ outcome: 'ok' });
    } catch (error) {
      // A file deleted since the lookup (its upload with it) is gone, not broken.
      const failed =
        file &&
        !(await access(file.path).then(
          () => true,
          () => false,
        ))
          ? new AppError('not_found', 'No such image.', { cause: error })
          : toAppError(error);
      this.metrics?.variantRenders.inc({ outcome: failed.code });
      timer?.({ outcome: failed.code });
      throw failed;
    } finally {
      release();
    }
    const stored: StoredVariant = {
      storageKey: variantStorageKey(upload.filename, variant.key),
      size: data.length,
      sha256: createHash('sha256').update(data).digest('hex'),
      mime: variant.mime,
      createdAt: new Date(),
      data,
    };
    // The store starts once this turn of the event loop is over: the answer goes out first.
    const saved = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => this.save(upload, variant.key, stored, data))
      .then((ok) => {
        if (ok) {
          upload.storedVariants?.add(variant.key);
        }
        return ok;
      });
    return { ...stored, saved };
  }

  /**
   * Stores a rendered variant: file before row, so a row never names a missing file (a crash in between leaves a
   * file the janitor removes once its upload is gone, or one the next render overwrites). False when it was not
   * stored (logged; the next request renders it again) or its upload was deleted meanwhile (the file goes again).
   */
  private async save(
    upload: ServableUpload,
    key: string,
    stored: StoredVariant,
    data: Buffer,
  ): Promise<boolean> {
    const uploadId = upload.id;
    try {
      await this.storage.put(stored.storageKey, data, { expiresAt: upload.expiresAt });
      const rows = await this.em
        .fork()
        .getConnection()
        .execute<
          { created_at: Date }[]
        >(INSERT_VARIANT_SQL, [uploadId, key, stored.storageKey, stored.size, stored.sha256, stored.mime, stored.createdAt]);
      if (rows.length === 0) {
        await this.storage.delete(stored.storageKey).catch(() => undefined);
        return false;
      }
      return true;
    } catch (err) {
      this.logger.warn(
        { err, key: stored.storageKey },
        'variant not stored; the next request renders it again',
      );
      return false;
    }
  }

  private async readOriginal(filename: string): Promise<Buffer> {
    const data = await this.storage.read(filename);
    if (!data) {
      throw new AppError('not_found', 'No such image.');
    }
    return data;
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

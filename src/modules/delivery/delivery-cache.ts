import { Injectable } from '@nestjs/common';
import { INVALIDATE_ALL, InvalidationBus } from '../../common/redis/invalidation-bus';
import { AppConfig } from '../../config/app-config';
import { type ServableUpload, UploadsService } from '../uploads/uploads.service';
import type { ImageRepresentation } from './image-response';

/** Entries per map: far more than the hot set of any one instance, small enough to stay a few MB. */
const MAX_ENTRIES = 20_000;
/** Files above this are streamed, never held in memory. */
export const MAX_CACHED_FILE_BYTES = 1024 * 1024;

interface UploadEntry {
  upload: ServableUpload;
  expires: number;
  /** From then on a hit has the row read again (upload()), once: `Infinity` once asked or never. */
  refreshAt: number;
}

/**
 * How long before its expiry a hit asks for an entry's row again: a quarter of the TTL, at most 2 s. Read in the
 * background while hits go on, the row is there again before the entry expires, so a hot image's requests never all
 * reach Express and the database at once (every request in flight for it did, each expiry).
 */
const REFRESH_AHEAD_MAX_MS = 2000;

interface VariantEntry {
  image: ImageRepresentation;
  ownerId: string;
  filename: string;
  expires: number;
}

/** A local file's bytes (checked against its mtime on every use), or a remote object's (by ETag, for the TTL). */
type BytesEntry = { data: Buffer; mtimeMs: number } | { data: Buffer; etag: string; expires: number };

/**
 * What direct links may reuse without the database, per instance (issue 14): an upload's servable row (after the ban
 * rule) and its stored variants' rows, for DELIVERY_CACHE_SECONDS; plus the bytes of small files, checked against
 * the file's size and mtime on every use (local storage) or kept for DELIVERY_CACHE_SECONDS by ETag (S3).
 *
 * A delete or a ban drops entries on every instance at once through the InvalidationBus. The cache answers only
 * while this instance's subscription is confirmed (`enabled`): without Redis every request asks the database, as
 * before. What fills the cache was read after `mark()`; `remember*` refuses it if an invalidation arrived meanwhile
 * (a row read just before a delete committed must not outlive the delete's message).
 */
@Injectable()
export class DeliveryCache {
  private epoch = 0;
  private readonly ttlMs: number;
  private readonly refreshAheadMs: number;
  private readonly uploads = new Map<string, UploadEntry>();
  private readonly variants = new Map<string, VariantEntry>();
  private readonly bytes = new Map<string, BytesEntry>();
  private bytesTotal = 0;

  constructor(
    private readonly config: AppConfig,
    private readonly bus: InvalidationBus,
    private readonly rows: UploadsService,
  ) {
    this.ttlMs = config.deliveryCacheSeconds * 1000;
    this.refreshAheadMs = Math.min(this.ttlMs / 4, REFRESH_AHEAD_MAX_MS);
    if (this.ttlMs > 0) {
      bus.listen((what) => this.invalidate(what));
    }
  }

  get enabled(): boolean {
    return this.ttlMs > 0 && this.bus.ready;
  }

  /** Take before reading what you will remember. */
  mark(): number {
    return this.epoch;
  }

  /**
   * The held row, if any. A hit in the last quarter of its entry's life (at most its last 2 s) has the row read again
   * in the background (once), so the entry starts a new life before it expires (refreshed()).
   */
  upload(filename: string): ServableUpload | undefined {
    const entry = this.uploads.get(filename);
    if (!entry) {
      return undefined;
    }
    const now = Date.now();
    if (entry.expires <= now || !this.enabled) {
      this.uploads.delete(filename);
      return undefined;
    }
    if (now >= entry.refreshAt) {
      entry.refreshAt = Infinity;
      this.refresh(entry.upload.filename);
    }
    return entry.upload;
  }

  rememberUpload(upload: ServableUpload, mark: number): void {
    if (mark !== this.epoch || !this.enabled) {
      return;
    }
    bounded(this.uploads).set(upload.filename, this.uploadEntry(upload));
  }

  /** Reads the row as the full path does; a failed read (the database down) leaves the entry to expire. */
  private refresh(filename: string): void {
    const mark = this.epoch;
    this.rows.findServable(filename).then(
      (upload) => this.refreshed(filename, upload, mark),
      () => undefined,
    );
  }

  /**
   * The row refresh() read after `mark`: the entry starts a new life, and so do its variants' entries
   * that the row still lists as stored (a variant's row never changes; one deleted goes from the row's list). Null
   * (gone, expired or its owner banned): the upload's entries go, as a delete's message would take them. An
   * invalidation that arrived meanwhile wins, as for any remember; a failed read leaves the entry to expire.
   */
  private refreshed(filename: string, upload: ServableUpload | null, mark: number): void {
    if (mark !== this.epoch || !this.enabled) {
      return;
    }
    if (!upload) {
      this.dropUpload(filename);
      return;
    }
    const entry = this.uploadEntry(upload);
    this.uploads.delete(filename); // re-inserted at the end: it is the newest again
    bounded(this.uploads).set(filename, entry);
    for (const key of upload.storedVariants ?? []) {
      const variant = this.variants.get(`${filename}/${key}`);
      if (variant) {
        variant.expires = entry.expires;
      }
    }
  }

  private uploadEntry(upload: ServableUpload): UploadEntry {
    const expires = entryExpiry(upload, this.ttlMs);
    const refreshes = upload.expiresAt === null || expires < upload.expiresAt.getTime();
    return { upload, expires, refreshAt: refreshes ? expires - this.refreshAheadMs : Infinity };
  }

  variant(filename: string, key: string): ImageRepresentation | undefined {
    const id = `${filename}/${key}`;
    const entry = this.variants.get(id);
    if (!entry) {
      return undefined;
    }
    if (entry.expires <= Date.now() || !this.enabled) {
      this.variants.delete(id);
      return undefined;
    }
    return entry.image;
  }

  rememberVariant(upload: ServableUpload, key: string, image: ImageRepresentation, mark: number): void {
    if (mark !== this.epoch || !this.enabled) {
      return;
    }
    bounded(this.variants).set(`${upload.filename}/${key}`, {
      image,
      ownerId: upload.ownerId,
      filename: upload.filename,
      expires: entryExpiry(upload, this.ttlMs),
    });
  }

  /**
   * Drops one variant's entry and its bytes: its file is gone from storage though its row was there (the variant is
   * being made again). What other requests read before this must not be remembered after it: the epoch moves.
   */
  forgetVariant(filename: string, key: string): void {
    this.epoch++;
    const id = `${filename}/${key}`;
    const entry = this.variants.get(id);
    if (entry) {
      this.variants.delete(id);
      this.dropBytes(entry.image.key);
    }
  }

  /** The bytes of a stored file, if held and still the file's (same size and mtime). */
  bytesOf(storageKey: string, size: number, mtimeMs: number): Buffer | undefined {
    const entry = this.bytes.get(storageKey);
    if (!entry) {
      return undefined;
    }
    if (!('mtimeMs' in entry) || entry.data.length !== size || entry.mtimeMs !== mtimeMs) {
      this.dropBytes(storageKey);
      return undefined;
    }
    return entry.data;
  }

  /** Whether bytes of this size are worth reading whole to keep. */
  keepsBytes(size: number): boolean {
    return size <= MAX_CACHED_FILE_BYTES && size <= this.config.deliveryCacheBytes;
  }

  rememberBytes(storageKey: string, data: Buffer, mtimeMs: number, mark: number): void {
    this.keep(storageKey, { data, mtimeMs }, mark);
  }

  /**
   * The bytes of an object in a remote store (S3), if held: the object under a key never changes (a variant made
   * again is the same bytes), so they are kept by ETag for DELIVERY_CACHE_SECONDS, like the rows; a delete drops them
   * at once through the bus, and an object removed from the bucket behind the service's back is served at most that
   * much longer. No stat to check them against, unlike a local file.
   */
  objectBytes(storageKey: string, etag: string): Buffer | undefined {
    const entry = this.bytes.get(storageKey);
    if (!entry || !('etag' in entry)) {
      return undefined;
    }
    if (entry.etag !== etag || entry.expires <= Date.now() || !this.enabled) {
      this.dropBytes(storageKey);
      return undefined;
    }
    return entry.data;
  }

  rememberObjectBytes(storageKey: string, etag: string, data: Buffer, mark: number): void {
    if (this.enabled) {
      this.keep(storageKey, { data, etag, expires: Date.now() + this.ttlMs }, mark);
    }
  }

  private keep(storageKey: string, entry: BytesEntry, mark: number): void {
    if (mark !== this.epoch || !this.keepsBytes(entry.data.length)) {
      return;
    }
    this.dropBytes(storageKey);
    while (this.bytesTotal + entry.data.length > this.config.deliveryCacheBytes && this.bytes.size > 0) {
      this.dropBytes(this.bytes.keys().next().value as string);
    }
    this.bytes.set(storageKey, entry);
    this.bytesTotal += entry.data.length;
  }

  /** `upload:<filename>`, `owner:<user id>` or INVALIDATE_ALL (InvalidationBus). */
  invalidate(what: string): void {
    this.epoch++;
    if (what === INVALIDATE_ALL) {
      this.uploads.clear();
      this.variants.clear();
      this.bytes.clear();
      this.bytesTotal = 0;
      return;
    }
    if (what.startsWith('upload:')) {
      this.dropUpload(what.slice('upload:'.length));
      return;
    }
    if (what.startsWith('owner:')) {
      const ownerId = what.slice('owner:'.length);
      for (const [filename, entry] of this.uploads) {
        if (entry.upload.ownerId === ownerId) {
          this.uploads.delete(filename);
        }
      }
      for (const [id, entry] of this.variants) {
        if (entry.ownerId === ownerId) {
          this.variants.delete(id);
        }
      }
    }
  }

  /** An upload's entries, its variants' and their bytes. */
  private dropUpload(filename: string): void {
    this.uploads.delete(filename);
    this.dropBytes(filename);
    for (const [id, entry] of this.variants) {
      if (entry.filename === filename) {
        this.variants.delete(id);
        this.dropBytes(entry.image.key);
      }
    }
  }

  private dropBytes(storageKey: string): void {
    const entry = this.bytes.get(storageKey);
    if (entry) {
      this.bytes.delete(storageKey);
      this.bytesTotal -= entry.data.length;
    }
  }
}

/** The map with room for one more (the oldest entry goes first). */
function bounded<V>(map: Map<string, V>): Map<string, V> {
  if (map.size >= MAX_ENTRIES) {
    map.delete(map.keys().next().value as string);
  }
  return map;
}

/** An entry lives its TTL, but never past its upload's expires_at: from then on a direct link answers 404. */
function entryExpiry(upload: ServableUpload, ttlMs: number): number {
  const until = Date.now() + ttlMs;
  return upload.expiresAt ? Math.min(until, upload.expiresAt.getTime()) : until;
}

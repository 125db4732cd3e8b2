import type { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';

/** What a write may say about the object, for what serves it without the service (a CDN, a public bucket). */
export interface PutOptions {
  /** Its upload's expiry (absent or null: never). */
  expiresAt?: Date | null;
}

/**
 * Where image bytes live. Keys are opaque names (the public filename); nothing here assumes a filesystem,
 * so an S3-compatible driver can implement it. Drivers throw AppError('storage_failed') on write failures.
 */
export abstract class StorageDriver {
  /** Writes the object atomically: a reader sees the whole object or none of it. */
  abstract put(key: string, data: Buffer, options?: PutOptions): Promise<void>;
  /** Streams the object (or the inclusive byte range); null when it does not exist. */
  abstract get(key: string, range?: { start: number; end: number }): Promise<Readable | null>;
  abstract delete(key: string): Promise<void>;

  /** The whole object in memory; null when it does not exist. For objects small enough to hold (an original). */
  async read(key: string): Promise<Buffer | null> {
    const stream = await this.get(key);
    return stream && buffer(stream);
  }

  /** Lists objects with their last write time (for the janitor that removes files no row points to). */
  abstract list(): AsyncIterable<{ key: string; modifiedAt: Date }>;
  /** Removes the driver's own temp objects (writes a crash interrupted) last modified before `cutoff`; returns how many. */
  abstract removeTempsBefore(cutoff: Date): Promise<number>;
  /** Can we write? For /readyz. */
  abstract healthy(): Promise<boolean>;

  /** Why healthy() is false, in a few words for an operator (null when it is true): e.g. the store's error code. */
  async unhealthyBecause(): Promise<string | null> {
    return (await this.healthy()) ? null : 'it cannot be written';
  }

  /**
   * The object's file on this machine, for drivers that keep one: the direct-link fast path stats and reads it, and
   * nginx serves it by `X-Accel-Redirect` (`relative` is its path under the storage root). Null for remote storage.
   */
  localFile(key: string): { path: string; relative: string } | null {
    void key;
    return null;
  }

  /**
   * The size and write time of the object's local file (drivers that keep one), null when it is missing, for the
   * direct-link fast path, which must not answer for a file that is gone or is not the one its row describes.
   * Synchronous and cheap: a driver may answer from a stat it made a moment ago (see LocalStorageDriver).
   */
  localFileStats(key: string): { size: number; mtimeMs: number } | null {
    void key;
    return null;
  }
}

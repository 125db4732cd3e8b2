import { Injectable } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { createReadStream, statSync } from 'node:fs';
import {
  access,
  constants,
  type FileHandle,
  mkdir,
  open,
  opendir,
  readFile,
  rename,
  rm,
  stat,
  unlink,
} from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { AppError } from '../../common/errors/app-error';
import { AppConfig } from '../../config/app-config';
import { StorageDriver } from './storage-driver';

const SAFE_KEY = /^[A-Za-z0-9._-]{1,128}$/;
const TEMP_NAME = /^\.[A-Za-z0-9._-]+\.[0-9a-f]{12}\.tmp$/;

/**
 * How long a stat of a stored file is trusted by localFileStats(). A stat per answer was the largest single cost of
 * a 304 or HEAD on the fast path (about a quarter of its throughput); writes and deletes through this driver
 * forget the key's stat at once, and a delete through the API also drops the image from every instance's delivery
 * cache, so only a file removed behind the service's back may still get a 304 or HEAD for up to this long.
 */
export const STAT_TRUST_MS = 1000;
/** Stats kept at most (the oldest goes first). */
const STAT_ENTRIES = 10_000;
/** Paths kept by localFile() at most (the oldest goes first). */
const FILE_ENTRIES = 10_000;
/** Shard directories remembered at most: every one two characters of a key can name (65 × 65). */
const MAX_DIRS = 65 * 65;

/** Files under STORAGE_DIR, sharded by two characters of the key. Written to a temp name, fsynced, renamed. */
@Injectable()
export class LocalStorageDriver extends StorageDriver {
  private readonly root: string;
  private readonly stats = new Map<string, { size: number; mtimeMs: number; at: number }>();
  /** Paths of keys asked for by localFile() (a key's path never changes): joining one was 2 % of a 304's CPU. */
  private readonly files = new Map<string, { readonly path: string; readonly relative: string }>();
  /** The shard directories known to exist (create()). */
  private readonly dirs = new Set<string>();

  constructor(config: AppConfig) {
    super();
    this.root = config.storageDir;
  }

  async put(key: string, data: Buffer): Promise<void> {
    const final = this.path(key);
    this.stats.delete(key);
    const dir = join(final, '..');
    const temp = join(dir, `.${key}.${randomBytes(6).toString('hex')}.tmp`);
    try {
      const handle = await this.create(dir, temp);
      try {
        await handle.writeFile(data);
        await handle.sync();
      } finally {
        await handle.close();
      }
      // rename() is atomic within a filesystem: the final name never points at a partial file.
      await rename(temp, final);
    } catch (err) {
      await rm(temp, { force: true }).catch(() => undefined);
      throw new AppError('storage_failed', undefined, { cause: err });
    }
  }

  /**
   * Opens a new file in a shard directory, made on the first write to it. Each step of a write is a trip through
   * libuv's threadpool, and while a review fills both cores such a trip took 1-2 ms: the shards this driver has made
   * are remembered, so a write is open, write, sync, close and rename. One removed behind the service's back is made
   * again.
   */
  private async create(dir: string, file: string): Promise<FileHandle> {
    if (this.dirs.has(dir)) {
      try {
        return await open(file, 'wx', 0o644);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
          throw err;
        }
        this.dirs.delete(dir);
      }
    }
    await mkdir(dir, { recursive: true });
    const handle = await open(file, 'wx', 0o644);
    if (this.dirs.size < MAX_DIRS) {
      this.dirs.add(dir);
    }
    return handle;
  }

  async get(key: string, range?: { start: number; end: number }): Promise<Readable | null> {
    const path = this.path(key);
    try {
      await access(path, constants.R_OK);
    } catch {
      return null;
    }
    return createReadStream(path, range ? { start: range.start, end: range.end } : {});
  }

  /** One read of the whole file instead of a stream of 64 KB chunks. */
  override async read(key: string): Promise<Buffer | null> {
    try {
      return await readFile(this.path(key));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        return null;
      }
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    this.stats.delete(key);
    await unlink(this.path(key)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') {
        throw new AppError('storage_failed', undefined, { cause: err });
      }
    });
  }

  async *list(): AsyncIterable<{ key: string; modifiedAt: Date }> {
    await mkdir(this.root, { recursive: true });
    for await (const shard of await opendir(this.root)) {
      if (!shard.isDirectory()) {
        continue;
      }
      for await (const file of await opendir(join(this.root, shard.name))) {
        if (file.isFile() && !file.name.startsWith('.')) {
          const info = await stat(join(this.root, shard.name, file.name)).catch(() => null);
          if (info) {
            yield { key: file.name, modifiedAt: info.mtime };
          }
        }
      }
    }
  }

  /** The `.<key>.<random>.tmp` files put() writes before its rename, which list() skips. */
  async removeTempsBefore(cutoff: Date): Promise<number> {
    await mkdir(this.root, { recursive: true });
    let removed = 0;
    for await (const shard of await opendir(this.root)) {
      if (!shard.isDirectory()) {
        continue;
      }
      for await (const file of await opendir(join(this.root, shard.name))) {
        if (file.isFile() && TEMP_NAME.test(file.name)) {
          const path = join(this.root, shard.name, file.name);
          const info = await stat(path).catch(() => null);
          if (info && info.mtime < cutoff) {
            await rm(path, { force: true });
            removed++;
          }
        }
      }
    }
    return removed;
  }

  async healthy(): Promise<boolean> {
    try {
      await mkdir(this.root, { recursive: true });
      await access(this.root, constants.W_OK);
      return true;
    } catch {
      return false;
    }
  }

  override localFile(key: string): { path: string; relative: string } {
    let file = this.files.get(key);
    if (!file) {
      const relative = relativePath(key);
      file = { path: join(this.root, relative), relative };
      if (this.files.size >= FILE_ENTRIES) {
        this.files.delete(this.files.keys().next().value!);
      }
      this.files.set(key, file);
    }
    return file;
  }

  override localFileStats(key: string): { size: number; mtimeMs: number } | null {
    const now = Date.now();
    const seen = this.stats.get(key);
    if (seen && now - seen.at < STAT_TRUST_MS) {
      return seen;
    }
    let found;
    try {
      found = statSync(this.path(key), { throwIfNoEntry: false });
    } catch {
      found = undefined;
    }
    if (!found) {
      this.stats.delete(key);
      return null;
    }
    const entry = { size: found.size, mtimeMs: found.mtimeMs, at: now };
    // Re-inserted at the end: the first key is the oldest.
    this.stats.delete(key);
    if (this.stats.size >= STAT_ENTRIES) {
      this.stats.delete(this.stats.keys().next().value!);
    }
    this.stats.set(key, entry);
    return entry;
  }

  private path(key: string): string {
    return join(this.root, relativePath(key));
  }
}

function relativePath(key: string): string {
  if (!SAFE_KEY.test(key) || key.startsWith('.')) {
    throw new AppError('storage_failed', 'Invalid storage key.');
  }
  // Shard by the random part of the name, so no directory grows without bound.
  const shard = key.length > 10 ? key.slice(8, 10) : '__';
  return `${shard}/${key}`;
}

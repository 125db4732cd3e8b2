import { createHash } from 'node:crypto';
import { Client } from 'pg';
import { type AppConfig, ConfigError } from './config/app-config';
import type { StorageDriver } from './modules/storage/storage-driver';
import { createStorageDriver } from './modules/storage/storage.module';
import { storeErrorName } from './modules/storage/s3.driver';

export type DriverName = 'local' | 's3';

export interface StorageMigrateOptions {
  from: DriverName;
  to: DriverName;
  /** A progress line every this many objects. */
  progressEvery: number;
  out: (line: string) => void;
}

export interface StorageMigrateResult {
  total: number;
  copied: number;
  alreadyThere: number;
  failed: { key: string; reason: string }[];
}

/** Objects read from the database at a time (keyset paging: memory stays flat however many there are). */
const PAGE = 500;

/**
 * Every live original and variant, in key order, with the SHA-256 of its stored bytes. Both live in the uploads and
 * upload_variants tables; this command reads them directly (like `migrate`, it runs outside the modules).
 */
const LIVE_OBJECTS = `
  select key, sha256, expires_at from (
    select filename as key, stored_sha256 as sha256, expires_at from uploads where deleted_at is null
    union all
    select v.storage_key as key, v.sha256, u.expires_at from upload_variants v join uploads u on u.id = v.upload_id
    where u.deleted_at is null
  ) o where key > $1 order by key limit $2`;

const COUNT_LIVE = `
  select (select count(*) from uploads where deleted_at is null)
       + (select count(*) from upload_variants v join uploads u on u.id = v.upload_id where u.deleted_at is null)
       as n`;

/**
 * `storage:migrate --from A --to B`: copies every live object from driver A to driver B and reads each copy back to
 * check its SHA-256 against the database. An object already at B with the right SHA-256 is skipped, so a run that
 * crashed or was killed is resumed by running the command again; nothing is ever deleted from either side.
 */
export async function migrateStorage(
  config: AppConfig,
  options: StorageMigrateOptions,
): Promise<StorageMigrateResult> {
  const { from, to, out } = options;
  if (from === to) {
    throw new ConfigError('--from and --to must differ (local or s3).');
  }
  if (!config.s3.bucket) {
    throw new ConfigError(
      'storage:migrate needs the S3 settings (S3_BUCKET, S3_ENDPOINT, keys) for the s3 side.',
    );
  }
  const source = await createStorageDriver(config, from);
  const target = await createStorageDriver(config, to);
  // Both stores are checked once before anything is copied: a wrong bucket, key pair or endpoint is one sentence,
  // not the same "unavailable" for each object after waiting out its deadline.
  for (const [side, name, driver] of [
    ['source', from, source],
    ['destination', to, target],
  ] as const) {
    const why = await driver.unhealthyBecause();
    if (why !== null) {
      for (const d of [source, target]) {
        (d as { onModuleDestroy?: () => void }).onModuleDestroy?.();
      }
      throw new ConfigError(
        `storage:migrate: the ${side} (${name === 's3' ? `S3 bucket ${config.s3.bucket}` : `directory ${config.storageDir}`}) cannot be used (${why}): ${name === 's3' ? 'check S3_ENDPOINT, S3_BUCKET and the key pair' : 'check STORAGE_DIR and its permissions'}. Nothing was copied.`,
      );
    }
  }
  const db = new Client({ connectionString: config.databaseUrl });
  await db.connect();
  const result: StorageMigrateResult = { total: 0, copied: 0, alreadyThere: 0, failed: [] };
  try {
    result.total = Number((await db.query<{ n: string }>(COUNT_LIVE)).rows[0].n);
    out(`storage:migrate: ${result.total} live objects (originals and variants) from ${from} to ${to}`);
    let done = 0;
    let after = '';
    for (;;) {
      const { rows } = await db.query<{ key: string; sha256: string; expires_at: Date | null }>(
        LIVE_OBJECTS,
        [after, PAGE],
      );
      for (const { key, sha256, expires_at } of rows) {
        const outcome = await copyOne(source, target, key, sha256, expires_at);
        if (outcome === 'copied') {
          result.copied++;
        } else if (outcome === 'there') {
          result.alreadyThere++;
        } else {
          result.failed.push({ key, reason: outcome.failed });
        }
        done++;
        if (done % options.progressEvery === 0 || done === result.total) {
          out(progressLine(done, result));
        }
      }
      if (rows.length < PAGE) {
        break;
      }
      after = rows[rows.length - 1].key;
    }
    for (const { key, reason } of result.failed) {
      out(`failed: ${key}: ${reason}`);
    }
    out(
      `storage:migrate: done: ${result.copied} copied, ${result.alreadyThere} already there, ${result.failed.length} failed${result.copied > 0 ? ' (every copy read back and its SHA-256 checked)' : ''}.`,
    );
    return result;
  } finally {
    await db.end();
    for (const driver of [source, target]) {
      (driver as { onModuleDestroy?: () => void }).onModuleDestroy?.();
    }
  }
}

function progressLine(done: number, r: StorageMigrateResult): string {
  const percent = r.total > 0 ? Math.floor((done * 100) / r.total) : 100;
  return `storage:migrate: ${done}/${r.total} (${percent}%): ${r.copied} copied, ${r.alreadyThere} already there, ${r.failed.length} failed`;
}

async function copyOne(
  source: StorageDriver,
  target: StorageDriver,
  key: string,
  sha256: string,
  expiresAt: Date | null,
): Promise<'copied' | 'there' | { failed: string }> {
  try {
    if ((await shaOf(target, key)) === sha256) {
      return 'there';
    }
    const data = await source.read(key);
    if (!data) {
      return { failed: 'missing at the source' };
    }
    if (sha256Hex(data) !== sha256) {
      return { failed: 'the source bytes do not match the recorded SHA-256 (not copied)' };
    }
    await target.put(key, data, { expiresAt });
    const copied = await shaOf(target, key);
    if (copied !== sha256) {
      return { failed: `the copy reads back as ${copied ?? 'missing'}` };
    }
    return 'copied';
  } catch (err) {
    // The driver's sentence, and the store's own reason behind it (NoSuchKey, SlowDown, ECONNRESET…).
    const cause = (err as { cause?: unknown }).cause;
    return { failed: `${(err as Error).message}${cause ? ` (${storeErrorName(cause)})` : ''}` };
  }
}

async function shaOf(driver: StorageDriver, key: string): Promise<string | null> {
  const data = await driver.read(key);
  return data ? sha256Hex(data) : null;
}

function sha256Hex(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

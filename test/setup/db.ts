import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
import { s3StoredKeys } from './s3-server';
import type { TestApp } from './test-app';

/** One SQL statement against the test app's own database (to look behind the API, or to break it on purpose). */
export async function sql<T = Record<string, any>>(
  t: TestApp,
  text: string,
  params: unknown[] = [],
): Promise<T[]> {
  const c = new Client({ connectionString: t.databaseUrl });
  await c.connect();
  try {
    return (await c.query(text, params)).rows as T[];
  } finally {
    await c.end();
  }
}

/** The multipart reader's temp files (DATA_DIR/tmp); none when the directory was never made. */
export function tempFiles(t: TestApp): string[] {
  const dir = join(t.config.dataDir, 'tmp');
  return existsSync(dir) ? readdirSync(dir) : [];
}

/** The objects the app's storage holds: files of the local driver (sharded one directory deep), or S3 objects. */
export function storedFiles(t: TestApp): string[] {
  if (t.config.storageDriver === 's3') {
    const { endpoint, bucket, prefix } = t.config.s3;
    return s3StoredKeys(endpoint ?? '', bucket, prefix);
  }
  const root = t.config.storageDir;
  if (!existsSync(root)) {
    return [];
  }
  return readdirSync(root, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .flatMap((d) => readdirSync(join(root, d.name)));
}

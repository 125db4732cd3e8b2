import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
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

/** The files the local storage driver holds (it shards them one directory deep). */
export function storedFiles(t: TestApp): string[] {
  const root = t.config.storageDir;
  if (!existsSync(root)) {
    return [];
  }
  return readdirSync(root, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .flatMap((d) => readdirSync(join(root, d.name)));
}

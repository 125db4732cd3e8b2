import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readInfra } from './infra';
import { createTestDatabase, dropRedisKeys } from './test-app';

/**
 * What a jest file needs to start the service as `npm start` does (src/main.ts in a child process): its own data
 * dir, database and Redis prefix, made before the file's tests and removed after them, every child it `track`ed
 * killed first. Registers the file's beforeAll/afterAll; call it in the describe.
 */
export function spawnedDeployment(name: string): {
  /** DATA_DIR, DATABASE_URL, REDIS_URL and REDIS_PREFIX for the service. */
  env: () => Record<string, string>;
  databaseUrl: () => string;
  /** A started child, killed after the file if it is still running. */
  track: (child: ChildProcess) => void;
} {
  let dataDir = '';
  let db: { url: string; drop: () => Promise<void> } | undefined;
  const prefix = `fxf-test:${name}-${process.pid}:`;
  const started: ChildProcess[] = [];

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), `fxf-${name}-`));
    db = await createTestDatabase();
  });
  afterAll(async () => {
    for (const child of started) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
      }
    }
    await db?.drop();
    await dropRedisKeys(readInfra().redisUrl, prefix);
    rmSync(dataDir, { recursive: true, force: true });
  });

  const databaseUrl = (): string => {
    if (!db) {
      throw new Error('spawnedDeployment: the database is made in beforeAll');
    }
    return db.url;
  };
  return {
    env: () => ({
      DATA_DIR: dataDir,
      DATABASE_URL: databaseUrl(),
      REDIS_URL: readInfra().redisUrl,
      REDIS_PREFIX: prefix,
    }),
    databaseUrl,
    track: (child) => started.push(child),
  };
}

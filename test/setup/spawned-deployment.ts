import { type ChildProcessByStdio, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { readInfra } from './infra';
import { createTestDatabase, dropRedisKeys } from './test-app';

const ROOT = join(__dirname, '..', '..');

/**
 * What a jest file needs to start the service as `npm start` does (src/main.ts in a child process): its own data
 * dir, database and Redis prefix, made before the file's tests and removed after them, every child it `start`ed
 * killed first. Registers the file's beforeAll/afterAll; call it in the describe.
 */
export function spawnedDeployment(name: string): {
  /** DATA_DIR, DATABASE_URL, REDIS_URL and REDIS_PREFIX for the service. */
  env: () => Record<string, string>;
  databaseUrl: () => string;
  /**
   * Starts src/main.ts with this deployment's settings (moderation off) and `env` over them; its stdout and stderr are
   * piped for the caller to read. Killed after the file if it is still running. `main`: a built entry to run with
   * node instead (`<app>/dist/src/main.js`), from its app's folder.
   */
  start: (env: Record<string, string>, main?: string) => ChildProcessByStdio<null, Readable, Readable>;
} {
  let dataDir = '';
  let db: { url: string; drop: () => Promise<void> } | undefined;
  const prefix = `fxf-test:${name}-${process.pid}:`;
  const started: ChildProcessByStdio<null, Readable, Readable>[] = [];

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
  const env = (): Record<string, string> => ({
    DATA_DIR: dataDir,
    DATABASE_URL: databaseUrl(),
    REDIS_URL: readInfra().redisUrl,
    REDIS_PREFIX: prefix,
  });
  return {
    env,
    databaseUrl,
    start: (overrides, main) => {
      const args = main ? [main] : ['-r', 'ts-node/register/transpile-only', 'src/main.ts'];
      const child = spawn(process.execPath, args, {
        cwd: main ? join(main, '..', '..', '..') : ROOT,
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          ...env(),
          MODERATION_ENABLED: 'false',
          ...overrides,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      started.push(child);
      return child;
    },
  };
}

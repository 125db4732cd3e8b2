import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { promisify } from 'node:util';
import type { AppConfig } from '../../src/config/app-config';
import { VariantsService } from '../../src/modules/delivery/variants.service';
import { LocalStorageDriver } from '../../src/modules/storage/local.driver';
import { S3StorageDriver } from '../../src/modules/storage/s3.driver';
import type { StorageDriver } from '../../src/modules/storage/storage-driver';
import { png } from '../fixtures/sample-images';
import { sql } from '../setup/db';
import { bearer, makeKey } from '../setup/factories';
import { S3FaultProxy, s3StoredKeys, TestS3 } from '../setup/s3-server';
import { createTestApp, dropRedisKeys, type TestApp } from '../setup/test-app';
import { readInfra } from '../setup/infra';

const run = promisify(execFile);
const ROOT = join(__dirname, '..', '..');
const UPLOADS = 16;

async function sha(driver: StorageDriver, key: string): Promise<string | null> {
  const stream: Readable | null = await driver.get(key);
  if (!stream) {
    return null;
  }
  const hash = createHash('sha256');
  for await (const chunk of stream) {
    hash.update(chunk as Buffer);
  }
  return hash.digest('hex');
}

/**
 * `npm run cli -- storage:migrate` as an operator runs it: a real process, killed with SIGKILL in the middle of the
 * copy, run again, and every live original and variant is at the destination once, with its recorded SHA-256.
 */
describe('storage:migrate (cli)', () => {
  let s3: TestS3;
  let proxy: S3FaultProxy;
  let t: TestApp;
  let prefix: string;
  let expected: Map<string, string>;
  let expiring: string;
  let lasting: string;
  let env: NodeJS.ProcessEnv;
  const redisPrefix = `fxf-test:migrate-${process.pid}:`;

  beforeAll(async () => {
    s3 = await TestS3.start();
    proxy = await S3FaultProxy.start(s3);
    // The images start on the local driver.
    t = await createTestApp({
      env: { UPLOADS_IN_FLIGHT_PER_KEY: '8', RATE_LIMIT_UPLOADS_PER_MINUTE: '1000' },
    });
    const key = await makeKey(t);
    const names: string[] = [];
    for (let i = 0; i < UPLOADS; i += 4) {
      const batch = await Promise.all(
        [0, 1, 2, 3].map(async (j) =>
          t.http
            .post('/api/v1/upload')
            .set(...bearer(key.token))
            .attach('file', await png(100 + i + j), 'a.png'),
        ),
      );
      names.push(...batch.map((r) => (r.body as { filename: string }).filename));
    }
    // Two variants, and one deleted upload whose file must not be copied.
    await t.http.get(`/images/${names[0]}?w=64`).expect(200);
    await t.http.get(`/images/${names[1]}?w=64&format=webp`).expect(200);
    await t.app.get(VariantsService).idle(); // stored after the answer
    await t.http
      .delete(`/api/v1/uploads/${names[2]}`)
      .set(...bearer(key.token))
      .expect(200);
    const rows = await sql<{ key: string; sha256: string }>(
      t,
      `select filename as key, stored_sha256 as sha256 from uploads where deleted_at is null
       union all select v.storage_key, v.sha256 from upload_variants v join uploads u on u.id = v.upload_id`,
    );
    expected = new Map(rows.map((r) => [r.key, r.sha256]));
    // One upload expires (its object must be written as the service writes an expiring one), one never does.
    [expiring, lasting] = [names[3], names[4]];
    await sql(t, "update uploads set expires_at = now() + interval '1 day' where filename = $1", [expiring]);
    expect(expected.size).toBe(UPLOADS - 1 + 2);
    prefix = TestS3.freshPrefix();
    env = {
      ...process.env,
      DATABASE_URL: t.databaseUrl,
      REDIS_URL: readInfra().redisUrl,
      REDIS_PREFIX: redisPrefix,
      DATA_DIR: t.config.dataDir,
      MODERATION_ENABLED: 'false',
      LOG_LEVEL: 'silent',
      ...s3.env({ prefix }),
      STORAGE_DRIVER: 'local',
    };
  });
  afterAll(async () => {
    await t?.close();
    await dropRedisKeys(readInfra().redisUrl, redisPrefix);
    await proxy.close();
    await s3.close();
  });

  const cli = (args: string[], extra: NodeJS.ProcessEnv = {}) =>
    run(process.execPath, ['-r', 'ts-node/register/transpile-only', 'src/cli.ts', ...args], {
      cwd: ROOT,
      env: { ...env, ...extra },
    });

  it('should copy local → s3 resumably: killed midway, run again, everything there once and verified', async () => {
    // First run through a slow store (each request waits), so the kill lands in the middle of the copy.
    proxy.delayMs = 150;
    const child: ChildProcess = spawn(
      process.execPath,
      [
        '-r',
        'ts-node/register/transpile-only',
        'src/cli.ts',
        'storage:migrate',
        '--from',
        'local',
        '--to',
        's3',
        '--progress',
        '1',
      ],
      { cwd: ROOT, env: { ...env, S3_ENDPOINT: proxy.endpoint }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    const killed = new Promise<void>((resolve, reject) => {
      child.stdout?.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        // Some objects are copied, most are not: kill -9, no chance to clean up.
        if (/storage:migrate: 5\/\d+/.test(out) && child.exitCode === null) {
          child.kill('SIGKILL');
        }
      });
      child.on('exit', (code, signal) =>
        signal === 'SIGKILL' ? resolve() : reject(new Error(`exited ${code}: ${out}`)),
      );
    });
    await killed;
    proxy.delayMs = 0;
    const partial = s3StoredKeys(s3.endpoint, s3.bucket, prefix);
    expect(partial.length).toBeGreaterThanOrEqual(4);
    expect(partial.length).toBeLessThan(expected.size);

    const again = await cli(['storage:migrate', '--from', 'local', '--to', 's3', '--progress', '5']);
    expect(again.stdout).toMatch(new RegExp(`storage:migrate: ${expected.size} live objects`));
    expect(again.stdout).toMatch(new RegExp(`storage:migrate: 5/${expected.size} \\(\\d+%\\)`));
    const done = /done: (\d+) copied, (\d+) already there, 0 failed/.exec(again.stdout);
    expect(done).not.toBeNull();
    expect(Number(done?.[1]) + Number(done?.[2])).toBe(expected.size);
    expect(Number(done?.[2])).toBeGreaterThanOrEqual(partial.length - 1);

    // Exactly the live objects, once each, each with its recorded SHA-256.
    expect(s3StoredKeys(s3.endpoint, s3.bucket, prefix).sort()).toEqual([...expected.keys()].sort());
    const store = new S3StorageDriver(s3.config({ prefix }));
    for (const [key, digest] of expected) {
      expect(await sha(store, key)).toBe(digest);
    }
    store.onModuleDestroy();
    const cacheControl = async (key: string) =>
      (await fetch(`${s3.endpoint}/${s3.bucket}/${prefix}${key}`)).headers.get('cache-control');
    expect(await cacheControl(expiring)).toBe('public, no-cache');
    expect(await cacheControl(lasting)).toBe('public, max-age=86400');

    // A third run finds everything there; it needs no Redis (it never touches it).
    const third = await cli(['storage:migrate', '--from', 'local', '--to', 's3'], {
      REDIS_URL: 'redis://127.0.0.1:1',
    });
    expect(third.stdout).toContain(`done: 0 copied, ${expected.size} already there, 0 failed`);
  }, 300_000);

  it('should copy s3 → local into an empty storage directory, verified', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fxf-migrate-back-'));
    try {
      const back = await cli(['storage:migrate', '--from', 's3', '--to', 'local'], { STORAGE_DIR: dir });
      expect(back.stdout).toContain(`done: ${expected.size} copied, 0 already there, 0 failed`);
      const local = new LocalStorageDriver({ storageDir: dir } as AppConfig);
      for (const [key, digest] of expected) {
        expect(await sha(local, key)).toBe(digest);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 180_000);

  it('should refuse bad arguments with a usage line, and report a missing source object as failed (exit 1)', async () => {
    await expect(cli(['storage:migrate', '--from', 'local', '--to', 'local'])).rejects.toMatchObject({
      stderr: expect.stringContaining('--from and --to must be local and s3'),
    });
    await expect(cli(['storage:migrate', '--from', 'local'])).rejects.toMatchObject({
      stderr: expect.stringContaining('--to is required'),
    });
    // A bucket that does not exist, a wrong key pair, a store that is down: one sentence with the store's reason,
    // before anything is tried (each object used to fail alone, after its deadline, as "unavailable").
    const stores: [Record<string, string>, RegExp][] = [
      [{ S3_BUCKET: 'no-such-bucket' }, /\(NotFound, HTTP 404\)|\(NoSuchBucket, HTTP 404\)|\(HTTP 404\)/],
      [{ S3_ENDPOINT: 'http://127.0.0.1:9' }, /\(ECONNREFUSED\)/],
    ];
    for (const [extra, reason] of stores) {
      const refused = await cli(['storage:migrate', '--from', 'local', '--to', 's3'], extra).catch(
        (e: { code: number; stdout: string; stderr: string }) => e,
      );
      expect(refused).toMatchObject({ code: 1, stdout: '' });
      const line = (refused as { stderr: string }).stderr;
      expect(line).toMatch(/^storage:migrate: the destination \(S3 bucket \S+\) cannot be used /);
      expect(line).toMatch(reason);
      expect(line).toMatch(/check S3_ENDPOINT, S3_BUCKET and the key pair\. Nothing was copied\.\n$/);
    }
    // The local side is checked too: a storage directory that is a file cannot be written.
    const notADir = join(mkdtempSync(join(tmpdir(), 'fxf-migrate-file-')), 'file');
    writeFileSync(notADir, 'not a directory');
    try {
      const refused = await cli(['storage:migrate', '--from', 's3', '--to', 'local'], {
        STORAGE_DIR: notADir,
      }).catch((e: { code: number; stdout: string; stderr: string }) => e);
      expect(refused).toMatchObject({ code: 1, stdout: '' });
      expect((refused as { stderr: string }).stderr).toBe(
        `storage:migrate: the destination (directory ${notADir}) cannot be used (it cannot be written): check STORAGE_DIR and its permissions. Nothing was copied.\n`,
      );
    } finally {
      rmSync(dirname(notADir), { recursive: true, force: true });
    }

    // A store that fails one object: its line names the store's reason.
    const into = mkdtempSync(join(tmpdir(), 'fxf-migrate-failing-'));
    proxy.on(['GET'], 'fail');
    try {
      const failing = await cli(['storage:migrate', '--from', 's3', '--to', 'local'], {
        S3_ENDPOINT: proxy.endpoint,
        STORAGE_DIR: into,
      }).catch((e: { code: number; stdout: string }) => e);
      expect(failing).toMatchObject({ code: 1 });
      expect((failing as { stdout: string }).stdout).toMatch(
        /failed: FIXITFY-\S+: The image store is unavailable\. Retry with backoff\. \(InternalError, HTTP 500\)/,
      );
      expect((failing as { stdout: string }).stdout).toMatch(
        /done: 0 copied, 0 already there, \d+ failed\.\n$/,
      );
    } finally {
      proxy.restore();
      rmSync(into, { recursive: true, force: true });
    }

    // An empty destination and an empty source: every object is missing at the source.
    const empty = mkdtempSync(join(tmpdir(), 'fxf-migrate-empty-'));
    try {
      const failed = cli(['storage:migrate', '--from', 'local', '--to', 's3'], {
        STORAGE_DIR: empty,
        S3_PREFIX: TestS3.freshPrefix(),
      });
      await expect(failed).rejects.toMatchObject({
        code: 1,
        stdout: expect.stringMatching(
          new RegExp(`failed: FIXITFY-\\S+: missing at the source[\\s\\S]*${expected.size} failed`),
        ),
      });
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  }, 180_000);
});

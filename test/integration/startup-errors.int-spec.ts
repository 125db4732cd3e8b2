import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { checkDatabase } from '../../src/database/database-check';
import { startEmbeddedPostgres } from '../../src/database/embedded-postgres';
import { databaseUrl, readInfra, withAdminClient } from '../setup/infra';
import { createTestDatabase, dropRedisKeys } from '../setup/test-app';

const ROOT = join(__dirname, '..', '..');
const NOBODY = 65534;

interface Outcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The service as an operator starts it (src/main.ts), with a bad setting; what it printed and how it ended. */
function start(env: Record<string, string>, as?: { uid: number; gid: number }): Promise<Outcome> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      ['-r', 'ts-node/register/transpile-only', 'src/main.ts'],
      { cwd: ROOT, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LOG_LEVEL: 'silent', ...env }, ...as },
      (err, stdout, stderr) => resolve({ code: child.exitCode, stdout, stderr }),
    );
  });
}

/** One line that names the setting, nothing on stdout, no stack, a failing exit code. */
function expectOneSentence(out: Outcome, ...mustSay: RegExp[]): void {
  expect(out.code).not.toBe(0);
  expect(out.code).not.toBeNull();
  expect(out.stdout).toBe('');
  const lines = out.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(out.stderr).not.toMatch(/\n\s+at /);
  for (const re of mustSay) {
    expect(lines[0]).toMatch(re);
  }
}

async function listeningServer(): Promise<{ server: Server; port: number }> {
  const server = createServer((s) => s.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as { port: number }).port };
}

/** Issue 10, item 2: every start-up failure is one sentence with the fix, never a stack. */
describe('start-up failures', () => {
  let work: string;
  let dataDir: string;
  let redisUrl: string;
  let db: { url: string; drop: () => Promise<void> };
  const prefix = `fxf-test:startup-${process.pid}:`;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'fxf-startup-'));
    chmodSync(work, 0o755);
    dataDir = join(work, 'data');
    redisUrl = readInfra().redisUrl;
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db.drop();
    await dropRedisKeys(redisUrl, prefix);
    rmSync(work, { recursive: true, force: true });
  });

  const base = (): Record<string, string> => ({
    DATA_DIR: dataDir,
    DATABASE_URL: db.url,
    REDIS_URL: redisUrl,
    REDIS_PREFIX: prefix,
    MODERATION_ENABLED: 'false',
  });

  it('should say one true thing about PORT=abc', async () => {
    const out = await start({ ...base(), PORT: 'abc' });
    expectOneSentence(
      out,
      /^Invalid environment variables: PORT must be a whole number from 0 to 65535 \(got "abc"\)/,
    );
    expect(out.stderr.match(/PORT/g)).toHaveLength(1);
  }, 60000);

  it('should refuse a DATABASE_URL that is not postgres://, without echoing its password', async () => {
    const out = await start({ ...base(), DATABASE_URL: 'mysql://root:hunter2@localhost/app' });
    expectOneSentence(
      out,
      /DATABASE_URL must be a postgres:\/\/ URL/,
      /mysql:\/\/root:\*\*\*@localhost\/app/,
    );
    expect(out.stderr).not.toContain('hunter2');
  }, 60000);

  it('should refuse STORAGE_DRIVER=s3 without S3_BUCKET, and half a key pair without echoing the secret', async () => {
    const noBucket = await start({ ...base(), STORAGE_DRIVER: 's3', S3_ENDPOINT: 'http://127.0.0.1:9' });
    expectOneSentence(noBucket, /STORAGE_DRIVER=s3 needs S3_BUCKET/);
    const halfKey = await start({
      ...base(),
      STORAGE_DRIVER: 's3',
      S3_BUCKET: 'images',
      S3_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI-very-secret',
    });
    expectOneSentence(halfKey, /S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY must be set together/);
    expect(halfKey.stderr).not.toContain('very-secret');
    const badDriver = await start({ ...base(), STORAGE_DRIVER: 'gcs' });
    expectOneSentence(badDriver, /STORAGE_DRIVER must be local or s3 \(got "gcs"\)/);
  }, 90000);

  it('should refuse a REDIS_URL that is not a URL', async () => {
    const out = await start({ ...base(), REDIS_URL: 'localhost:6379' });
    expectOneSentence(out, /REDIS_URL must be a redis:\/\/ or rediss:\/\/ URL/);
  }, 60000);

  it('should fail at once on DATA_DIR=/proc/x, a file, or a directory it cannot write', async () => {
    const file = join(work, 'a-file');
    writeFileSync(file, 'x');
    const locked = join(work, 'locked');
    mkdirSync(locked);
    const asRoot = process.getuid?.() === 0;
    // As root, the Docker bind-mount case: the directory is root's, the service runs as another uid.
    chmodSync(locked, asRoot ? 0o755 : 0o555);
    const [proc, isFile, notWritable] = await Promise.all([
      start({ ...base(), DATA_DIR: '/proc/x' }),
      start({ ...base(), DATA_DIR: file }),
      start({ ...base(), DATA_DIR: locked }, asRoot ? { uid: NOBODY, gid: NOBODY } : undefined),
    ]);
    expectOneSentence(proc, /^DATA_DIR=\/proc\/x can't be created \(ENOENT\): point DATA_DIR at a directory/);
    expectOneSentence(isFile, /^DATA_DIR=.*a-file is a file, not a directory/);
    if (asRoot) {
      expectOneSentence(
        notWritable,
        /^DATA_DIR=.*locked belongs to uid 0, and this process \(uid 65534\) can't write there \(EACCES\): chown -R 65534 /,
      );
    } else {
      expectOneSentence(notWritable, /^DATA_DIR=.*locked is not writable \(EACCES\)/);
    }
  }, 60000);

  it('should say when no PostgreSQL answers, when a role does not exist, and when the database does not', async () => {
    const { server, port: silent } = await listeningServer();
    server.close();
    const admin = new URL(readInfra().adminUrl);
    const noRole = new URL(db.url);
    noRole.username = 'no_such_role';
    const noDb = databaseUrl(readInfra().adminUrl, `fxf_typo_${process.pid}`);
    const [down, role, missing] = await Promise.all([
      start({ ...base(), DATABASE_URL: `postgres://app:secret@127.0.0.1:${silent}/app` }),
      start({ ...base(), DATABASE_URL: noRole.toString() }),
      start({ ...base(), DATABASE_URL: noDb }),
    ]);
    expectOneSentence(
      down,
      /^No PostgreSQL answers at postgres:\/\/app:\*\*\*@127\.0\.0\.1:\d+\/app \(ECONNREFUSED\): start it, or fix/,
    );
    expect(down.stderr).not.toContain('secret');
    expectOneSentence(
      role,
      new RegExp(
        `^PostgreSQL at ${admin.hostname}:\\d+ refused user "no_such_role" \\(.*no_such_role.*\\): fix the user`,
      ),
    );
    expectOneSentence(
      missing,
      /^Database "fxf_typo_\d+" does not exist on .*: create it .*, or set DATABASE_CREATE=true/,
    );
    // And it was not created behind our back.
    const exists = await withAdminClient(readInfra().adminUrl, (c) =>
      c.query('select 1 from pg_database where datname = $1', [`fxf_typo_${process.pid}`]),
    );
    expect(exists.rowCount).toBe(0);
  }, 90000);

  it('should create a missing database only with DATABASE_CREATE=true', async () => {
    const name = `fxf_create_${process.pid}`;
    const url = databaseUrl(readInfra().adminUrl, name);
    await expect(checkDatabase(url, { create: false })).rejects.toThrow(/does not exist/);
    await checkDatabase(url, { create: true });
    try {
      const c = new Client({ connectionString: url });
      await c.connect();
      expect((await c.query('select current_database() as db')).rows[0].db).toBe(name);
      await c.end();
    } finally {
      await withAdminClient(readInfra().adminUrl, (c) => c.query(`drop database if exists ${name}`));
    }
  }, 60000);

  it('should say so when PostgreSQL refuses the password', async () => {
    // The embedded cluster checks passwords (scram-sha-256); the shared test server trusts everyone.
    const pgDir = mkdtempSync(join(tmpdir(), 'fxf-startup-pg-'));
    const { server, port } = await listeningServer();
    server.close();
    const pg = await startEmbeddedPostgres(join(pgDir, 'data'), port);
    try {
      const out = await start({
        ...base(),
        DATABASE_URL: `postgres://fixitfy:wrong@127.0.0.1:${port}/fixitfy`,
      });
      expectOneSentence(
        out,
        /^PostgreSQL at 127\.0\.0\.1:\d+ refused the password of user "fixitfy": fix the password in DATABASE_URL\.$/,
      );
    } finally {
      await pg.stop();
      const link = join(pgDir, 'data', 'postgres');
      rmSync(realpathSync(link).replace(/\/postgres$/, ''), { recursive: true, force: true });
      rmSync(pgDir, { recursive: true, force: true });
    }
  }, 120000);

  it('should say which port is taken when PORT is in use', async () => {
    const { server, port } = await listeningServer();
    try {
      const out = await start({ ...base(), PORT: String(port) });
      expectOneSentence(
        out,
        new RegExp(`^PORT ${port} is in use: stop what listens there or set PORT to a free port\\.$`),
      );
    } finally {
      server.close();
    }
  }, 120000);

  it('should say so when ADMIN_EMAIL is not an email, and make no account', async () => {
    const out = await start({
      ...base(),
      WEB_CONCURRENCY: '1',
      ADMIN_EMAIL: 'root',
      ADMIN_PASSWORD: 'a long password',
    });
    expectOneSentence(
      out,
      /^ADMIN_EMAIL \/ ADMIN_PASSWORD cannot make an admin: email must be an email address\.$/,
    );
    const c = new Client({ connectionString: db.url });
    await c.connect();
    try {
      expect((await c.query("select 1 from users where email = 'root'")).rows).toEqual([]);
    } finally {
      await c.end();
    }
  }, 120000);
});

import { execFile, spawn } from 'node:child_process';
import {
  chownSync,
  existsSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
} from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'pg';
import { readInfra } from '../setup/infra';
import { dropRedisKeys } from '../setup/test-app';
import { waitFor } from '../setup/wait';
import { startEmbeddedPostgres } from '../../src/database/embedded-postgres';

const run = promisify(execFile);
const ROOT = join(__dirname, '..', '..');
const IS_ROOT = process.getuid?.() === 0;
/** An unprivileged account every Linux has; the "normal user" of these tests when they run as root. */
const NOBODY = 65534;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A clone-like place: a directory only its owner may enter (mode 0700, like /root), DATA_DIR inside it. */
function privateDir(owner?: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'fxf-embedded-'));
  if (owner !== undefined) {
    chownSync(dir, owner, owner);
  }
  return dir;
}

function removeTree(dataDir: string): void {
  const link = join(dataDir, 'postgres');
  if (existsSync(link) && lstatSync(link).isSymbolicLink()) {
    // root's fallback: the cluster and its copied binaries live outside DATA_DIR.
    rmSync(dirname(realpathSync(link)), { recursive: true, force: true });
  }
  rmSync(dirname(dataDir), { recursive: true, force: true });
}

/**
 * The service as `npm start` runs it (src/main.ts) with no DATABASE_URL: its own embedded cluster in `dataDir`. What
 * it printed is read from `seen`; `exited` resolves with its exit code.
 */
function startService(opts: {
  dataDir: string;
  pgPort: number;
  port: number;
  redisPrefix: string;
  processes: number;
}) {
  const child = spawn(process.execPath, ['-r', 'ts-node/register/transpile-only', 'src/main.ts'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      DATA_DIR: opts.dataDir,
      EMBEDDED_POSTGRES_PORT: String(opts.pgPort),
      PORT: String(opts.port),
      WEB_CONCURRENCY: String(opts.processes),
      REDIS_URL: readInfra().redisUrl,
      REDIS_PREFIX: opts.redisPrefix,
      MODERATION_ENABLED: 'false',
      LOG_LEVEL: 'silent',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const seen = { out: '', err: '' };
  child.stdout.on('data', (d: Buffer) => (seen.out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (seen.err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const listening = () =>
    waitFor('the listening line', () => seen.out.includes('listening') || child.exitCode !== null, 150_000);
  return { child, seen, exited, listening };
}

/** The embedded PostgreSQL through the real code path, from a 0700 directory (issue 10, item 1). */
describe('embedded PostgreSQL', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) {
      await c();
    }
  });

  it('should start, keep its socket in the cluster, serve SQL, and stop — as the user running the tests', async () => {
    const dataDir = join(privateDir(), 'data');
    cleanups.push(() => removeTree(dataDir));
    const port = await freePort();
    const pg = await startEmbeddedPostgres(dataDir, port);
    try {
      const c = new Client({ connectionString: pg.url });
      await c.connect();
      const { rows } = await c.query<{ db: string; user: string }>(
        'select current_database() as db, current_user as user',
      );
      const socketDirs = await c.query<{ setting: string }>(
        "select setting from pg_settings where name = 'unix_socket_directories'",
      );
      await c.end();
      expect(rows[0]).toEqual({ db: 'fixitfy', user: 'fixitfy' });
      expect(socketDirs.rows[0].setting).toBe('.');
      expect(readdirSync(pg.clusterDir)).toContain(`.s.PGSQL.${port}`);
      if (IS_ROOT) {
        // root can't run PostgreSQL; the postgres user can't enter the 0700 parent: the cluster moved, DATA_DIR links it.
        expect(lstatSync(join(dataDir, 'postgres')).isSymbolicLink()).toBe(true);
        expect(pg.clusterDir.startsWith('/var/lib/fixitfy-upload/')).toBe(true);
        expect(lstatSync(pg.clusterDir).uid).not.toBe(0);
      } else {
        expect(pg.clusterDir).toBe(join(dataDir, 'postgres'));
      }
    } finally {
      await pg.stop();
    }
    expect(existsSync(join(pg.clusterDir, 'postmaster.pid'))).toBe(false);

    // A restart reuses the cluster (no second initdb) and its data.
    const again = await startEmbeddedPostgres(dataDir, port);
    expect(again.clusterDir).toBe(pg.clusterDir);
    await again.stop();
  }, 120000);

  it("should pass PostgreSQL's own words through when its port is taken, and when the cluster is already running", async () => {
    const dataDir = join(privateDir(), 'data');
    cleanups.push(() => removeTree(dataDir));
    const port = await freePort();
    const blocker: Server = createServer();
    await new Promise<void>((resolve) => blocker.listen(port, '127.0.0.1', resolve));
    try {
      await expect(startEmbeddedPostgres(dataDir, port)).rejects.toThrow(
        /^EMBEDDED_POSTGRES_PORT \d+ is in use \(PostgreSQL said: .*(could not bind|could not create any TCP\/IP sockets).*\): .*free port\.$/,
      );
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
    const pg = await startEmbeddedPostgres(dataDir, port);
    try {
      const other = await freePort();
      await expect(startEmbeddedPostgres(dataDir, other)).rejects.toThrow(
        /Another PostgreSQL already runs on .*FATAL: lock file "postmaster.pid" already exists HINT: Is another postmaster \(PID \d+\) running/,
      );
    } finally {
      await pg.stop();
    }
  }, 120000);

  // As root, the same from an unprivileged account (nobody), whose own clone sits in its own 0700 directory.
  it('should start in a child process of a normal user from a 0700 directory (nobody, when the tests run as root)', async () => {
    const user = IS_ROOT ? NOBODY : process.getuid!();
    const home = privateDir(IS_ROOT ? NOBODY : undefined);
    const dataDir = join(home, 'data');
    cleanups.push(() => removeTree(dataDir));
    const port = await freePort();
    const script = `
        const { startEmbeddedPostgres } = require('./src/database/embedded-postgres');
        const { Client } = require('pg');
        startEmbeddedPostgres(${JSON.stringify(dataDir)}, ${port}).then(async (pg) => {
          const c = new Client({ connectionString: pg.url });
          await c.connect();
          const { rows } = await c.query('select 1 + 1 as two');
          await c.end();
          await pg.stop();
          process.stdout.write(JSON.stringify({ two: rows[0].two, clusterDir: pg.clusterDir, uid: process.getuid() }));
        }, (err) => { process.stderr.write(err.message); process.exit(1); });`;
    const { stdout } = await run(process.execPath, ['-r', 'ts-node/register/transpile-only', '-e', script], {
      cwd: ROOT,
      ...(IS_ROOT ? { uid: NOBODY, gid: NOBODY } : {}),
      env: { PATH: '/usr/bin:/bin', HOME: home },
    });
    expect(JSON.parse(stdout)).toEqual({ two: 2, clusterDir: join(dataDir, 'postgres'), uid: user });
    expect(lstatSync(join(dataDir, 'postgres')).uid).toBe(user);
  }, 120000);

  it('should run `npm run migrate` and `npm run cli` with no DATABASE_URL, on the embedded cluster', async () => {
    const dataDir = join(privateDir(), 'data');
    cleanups.push(() => removeTree(dataDir));
    const port = await freePort();
    const redisUrl = readInfra().redisUrl;
    const prefix = `fxf-test:embedded-${process.pid}:`;
    cleanups.push(() => dropRedisKeys(redisUrl, prefix));
    const env = {
      PATH: process.env.PATH,
      DATA_DIR: dataDir,
      EMBEDDED_POSTGRES_PORT: String(port),
      REDIS_URL: redisUrl,
      REDIS_PREFIX: prefix,
      MODERATION_ENABLED: 'false',
      LOG_LEVEL: 'silent',
    };
    const cli = (...args: string[]) =>
      run(process.execPath, ['-r', 'ts-node/register/transpile-only', 'src/cli.ts', ...args], {
        cwd: ROOT,
        env,
      });
    expect((await cli('migrate')).stdout).toBe('Migrations are up to date.\n');
    expect(
      (await cli('user:create', '--email', 'root@example.com', '--password', 'a long password', '--admin'))
        .stdout,
    ).toMatch(/^Created admin root@example.com/);
    // The cluster was stopped with the CLI: nothing holds its lock.
    expect(existsSync(join(realpathSync(join(dataDir, 'postgres')), 'postmaster.pid'))).toBe(false);
  }, 180000);

  it("should serve `npm start`'s default, a process per core, on the embedded cluster, and stop it on SIGTERM", async () => {
    const dataDir = join(privateDir(), 'data');
    cleanups.push(() => removeTree(dataDir));
    const [pgPort, port] = [await freePort(), await freePort()];
    const redisUrl = readInfra().redisUrl;
    const prefix = `fxf-test:embedded-start-${process.pid}:`;
    cleanups.push(() => dropRedisKeys(redisUrl, prefix));
    const { child, seen, exited, listening } = startService({
      dataDir,
      pgPort,
      port,
      redisPrefix: prefix,
      processes: 2,
    });
    cleanups.push(() => void (child.exitCode === null && child.kill('SIGKILL')));
    await listening();
    expect(seen.err).toBe('');
    expect(seen.out).toBe(
      `Fixitfy Upload listening on http://localhost:${port} (port ${port}, 2 processes)\n`,
    );

    // The workers learnt the embedded cluster's URL from their primary (it is in no environment variable): each of
    // six connections of their own, handed to the workers in turn, reaches the database.
    const answers = await Promise.all(
      Array.from({ length: 6 }, () =>
        fetch(`http://127.0.0.1:${port}/readyz`, { headers: { connection: 'close' } }).then(async (r) => ({
          status: r.status,
          body: (await r.json()) as { checks: { database: boolean } },
        })),
      ),
    );
    expect(answers.map((a) => [a.status, a.body.checks.database])).toEqual(Array(6).fill([200, true]));

    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    // The primary stopped the cluster it started, after its workers.
    expect(existsSync(join(realpathSync(join(dataDir, 'postgres')), 'postmaster.pid'))).toBe(false);
  }, 240000);

  it('should start again after the service was killed with SIGKILL, stopping the PostgreSQL it left behind, data kept', async () => {
    const dataDir = join(privateDir(), 'data');
    cleanups.push(() => removeTree(dataDir));
    const [pgPort, port] = [await freePort(), await freePort()];
    const redisUrl = readInfra().redisUrl;
    const prefix = `fxf-test:embedded-kill-${process.pid}:`;
    cleanups.push(() => dropRedisKeys(redisUrl, prefix));
    const start = () => {
      const service = startService({ dataDir, pgPort, port, redisPrefix: prefix, processes: 1 });
      cleanups.push(() => void (service.child.exitCode === null && service.child.kill('SIGKILL')));
      return service;
    };
    const postmaster = (): number => {
      const lock = join(realpathSync(join(dataDir, 'postgres')), 'postmaster.pid');
      return Number(readFileSync(lock, 'utf8').split('\n')[0]);
    };
    const alive = (pid: number): boolean => existsSync(`/proc/${pid}`);
    const account = { email: 'kept@example.com', password: 'a long password' };

    const first = start();
    await first.listening();
    expect(first.seen.err).toBe('');
    const registered = await fetch(`http://127.0.0.1:${port}/api/v1/auth/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(account),
    });
    expect(registered.status).toBe(201);
    const orphan = postmaster();
    // No exit handler runs: the PostgreSQL it started is left running, adopted by init (or a subreaper).
    first.child.kill('SIGKILL');
    await first.exited;
    expect(alive(orphan)).toBe(true);

    const second = start();
    await second.listening();
    expect(second.seen.err).toBe('');
    expect(second.seen.out).toBe(`Fixitfy Upload listening on http://localhost:${port} (port ${port})\n`);
    expect(alive(orphan)).toBe(false);
    expect(postmaster()).not.toBe(orphan);
    const signedIn = await fetch(`http://127.0.0.1:${port}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(account),
    });
    expect(signedIn.status).toBe(200);

    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
    expect(existsSync(join(realpathSync(join(dataDir, 'postgres')), 'postmaster.pid'))).toBe(false);
  }, 300000);
});

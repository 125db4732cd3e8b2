/**
 * The built service (`npm run build` first: dist/src/main.js) as an operator runs it, for suites that measure it
 * over HTTP: its own database on the PostgreSQL of BENCH_DATABASE_URL (an admin URL; default the loopback one) and
 * its own Redis prefix on BENCH_REDIS_URL, both removed afterwards, on a port the OS reports free.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Redis from 'ioredis';
import { freePort } from '../../test/setup/private-servers';
import { Client } from 'pg';

const ROOT = join(__dirname, '..', '..');

/**
 * The built service of a checkout (`npm run build` makes it), as `npm start` runs it. Every launcher runs this, not
 * `src/main.ts` through ts-node: ts-node loads node:repl, and with it node:domain, which replaces every
 * EventEmitter's emit with a slower one (10 % of the service's CPU in a profile of the lookup), and installs
 * source-map-support's hooks; production has neither.
 */
export function builtMain(appDir = ROOT): string {
  const main = join(appDir, 'dist', 'src', 'main.js');
  if (!existsSync(main)) {
    throw new Error(`bench: ${main} is missing; run \`npm run build\` there first`);
  }
  return main;
}

/** The PostgreSQL (an admin URL) and the Redis the benches run against. */
export const ADMIN_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';

/**
 * The environment `npm start` gives the process (package.json's start script sets allocator variables such as
 * GLIBC_TUNABLES and MALLOC_ARENA_MAX before node starts): read from the script so the bench never drifts from
 * it. Every launcher of the service (this file's, lib/service.ts, lib/app.ts) starts it with these.
 */
export function startScriptEnv(appDir = ROOT): Record<string, string> {
  const pkg = JSON.parse(readFileSync(join(appDir, 'package.json'), 'utf8')) as {
    scripts: { start: string };
  };
  const env: Record<string, string> = {};
  for (const [, name, value] of pkg.scripts.start.matchAll(/(?:^|\s)([A-Z_]+)=(\S+)/g)) {
    env[name] = value;
  }
  return env;
}

async function admin<T>(fn: (c: Client) => Promise<T>): Promise<T> {
  const c = new Client({ connectionString: ADMIN_URL });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/**
 * A database, data dir and Redis prefix for one service; `env` is what the service needs to use them. Every bench
 * launcher (this file's, lib/service.ts, lib/app.ts) makes its service one, and remove() takes all three away.
 */
export interface BenchDeployment {
  env: Record<string, string>;
  databaseUrl: string;
  dataDir: string;
  remove(): Promise<void>;
}

export async function createDeployment(): Promise<BenchDeployment> {
  const name = `fxf_bench_${randomBytes(5).toString('hex')}`;
  await admin((c) => c.query(`create database ${name}`));
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  const dataDir = mkdtempSync(join(tmpdir(), 'fxf-bench-'));
  const prefix = `fxf-bench:${name}:`;
  return {
    databaseUrl: url.toString(),
    dataDir,
    env: {
      DATABASE_URL: url.toString(),
      REDIS_URL,
      REDIS_PREFIX: prefix,
      DATA_DIR: dataDir,
      LOG_LEVEL: 'warn',
      RATE_LIMIT_UPLOADS_PER_MINUTE: '1000000',
      RATE_LIMIT_UPLOADS_PER_DAY: '1000000',
      RATE_LIMIT_MANAGEMENT_PER_MINUTE: '1000000',
    },
    async remove() {
      await admin((c) => c.query(`drop database if exists ${name} with (force)`));
      rmSync(dataDir, { recursive: true, force: true });
      const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
      try {
        let cursor = '0';
        do {
          const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
          if (keys.length > 0) {
            await redis.unlink(...keys);
          }
          cursor = next;
        } while (cursor !== '0');
      } finally {
        redis.disconnect();
      }
    },
  };
}

export interface RunningService {
  base: string;
  port: number;
  child: ChildProcess;
  /** Milliseconds from spawn to the first 200 of /healthz. */
  healthzMs: number;
  /** With `ready`: milliseconds from spawn to the first 200 of /readyz (the model loaded, in the process asked). */
  readyzMs?: number;
  stop(): Promise<void>;
}

/**
 * Spawns `node dist/src/main.js` and resolves at its first 200 of /healthz (and, with `ready`, of /readyz). With
 * `everyProcess`, also once every HTTP process listens (the primary's "listening" line): by default the service
 * answers from its first worker while the others still start (src/early-worker.ts), and a suite that compares one
 * process with several must not time the others' start.
 */
export async function startService(
  env: Record<string, string>,
  opts: { ready?: boolean; port?: number; appDir?: string; everyProcess?: boolean } = {},
): Promise<RunningService> {
  // Another checkout to run (a side-by-side baseline), as the other launchers: default BENCH_APP_DIR, else this one.
  const appDir = opts.appDir ?? process.env.BENCH_APP_DIR ?? ROOT;
  const main = builtMain(appDir);
  // A port the OS says is free now: fixed ones in 40xxx sit inside the ephemeral range, where the bench's own
  // outgoing connections could hold one ("PORT … is in use").
  const port = opts.port ?? (await freePort());
  const started = performance.now();
  // BENCH_SERVICE_LOG: the service's log lines go to that file (appended), for a run that needs explaining. With
  // `everyProcess` they go to a file in any case, where the primary's "listening" line is looked for.
  const logFile =
    process.env.BENCH_SERVICE_LOG ??
    (opts.everyProcess ? join(mkdtempSync(join(tmpdir(), 'fxf-bench-log-')), 'service.log') : undefined);
  const child = spawn(process.execPath, [main], {
    cwd: appDir,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...startScriptEnv(appDir), PORT: String(port), ...env },
    stdio: ['ignore', logFile ? openSync(logFile, 'a') : 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const base = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
    }
    await exited;
    if (logFile && !process.env.BENCH_SERVICE_LOG) {
      rmSync(join(logFile, '..'), { recursive: true, force: true });
    }
  };
  const waitFor = async (path: string): Promise<number> => {
    for (;;) {
      if (child.exitCode !== null) {
        throw new Error(`bench: the service exited: ${stderr.trim()}`);
      }
      if ((await get(`${base}${path}`).catch(() => 0)) === 200) {
        return performance.now() - started;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  try {
    const healthzMs = await waitFor('/healthz');
    const readyzMs = opts.ready ? await waitFor('/readyz') : undefined;
    while (
      opts.everyProcess &&
      logFile &&
      !/^Fixitfy Upload listening on /m.test(readFileSync(logFile, 'utf8'))
    ) {
      if (child.exitCode !== null) {
        throw new Error(`bench: the service exited: ${stderr.trim()}`);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    // Ready in every process (each loads its model once it listens): /readyz on a new connection each time, which the
    // cluster hands to its workers in turn, answers 200 four times in a row.
    for (let inARow = 0; opts.everyProcess && opts.ready && inARow < 4; ) {
      inARow = (await get(`${base}/readyz`).catch(() => 0)) === 200 ? inARow + 1 : 0;
      if (inARow === 0) {
        await new Promise((r) => setTimeout(r, 10));
      }
    }
    return { base, port, child, healthzMs, readyzMs, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

const oneShot = new Agent({ keepAlive: false });

/** One GET; resolves with the status (the body is read and dropped). */
export function get(
  url: string,
  headers: Record<string, string> = {},
  agent: Agent = oneShot,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** One request with a body; resolves with the status and the parsed JSON answer and headers. */
export function send(
  method: string,
  url: string,
  body: Buffer | string | undefined,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: any; headers: Record<string, string | string[] | undefined> }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, agent: oneShot, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = text;
        }
        resolve({ status: res.statusCode ?? 0, json, headers: res.headers });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Registers a user through the API and makes it an `fxf_` key (the session, its CSRF token, POST /keys). */
export async function makeApiKey(base: string): Promise<string> {
  const email = `bench-${randomBytes(4).toString('hex')}@example.com`;
  const reg = await send(
    'POST',
    `${base}/api/v1/auth/register`,
    JSON.stringify({ email, password: 'a long bench password' }),
    { 'content-type': 'application/json' },
  );
  const cookie = ([] as string[])
    .concat(reg.headers['set-cookie'] ?? [])
    .map((c) => c.split(';')[0])
    .join('; ');
  const session = await send('GET', `${base}/api/v1/auth/session`, undefined, { cookie });
  const key = await send('POST', `${base}/api/v1/keys`, JSON.stringify({ label: 'bench' }), {
    cookie,
    'content-type': 'application/json',
    'x-csrf-token': session.json.csrf_token as string,
  });
  if (key.status !== 201) {
    throw new Error(`bench: could not make a key (${key.status} ${JSON.stringify(key.json)})`);
  }
  return key.json.token as string;
}

/** POST /api/v1/upload of one file; resolves with the filename. */
export async function upload(base: string, token: string, bytes: Buffer, name = 'a.jpg'): Promise<string> {
  const boundary = `----fxfbench${randomBytes(8).toString('hex')}`;
  const body = Buffer.concat([
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${name}"\r\n` +
        'Content-Type: application/octet-stream\r\n\r\n',
    ),
    bytes,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  const res = await send('POST', `${base}/api/v1/upload`, body, {
    authorization: `Bearer ${token}`,
    'content-type': `multipart/form-data; boundary=${boundary}`,
    'content-length': String(body.length),
  });
  if (res.status !== 200) {
    throw new Error(`bench: upload answered ${res.status} ${JSON.stringify(res.json)}`);
  }
  return res.json.filename as string;
}

/**
 * Requests/s of GETs to `url` from `connections` kept-alive connections for `durationMs` (a warm-up of a fifth of
 * it first). Every answer must have `expect` as its status.
 */
export async function requestsPerSecond(
  url: string,
  opts: { connections: number; durationMs: number; headers?: Record<string, string>; expect: number },
): Promise<number> {
  const agent = new Agent({ keepAlive: true, maxSockets: opts.connections });
  const hammer = async (ms: number): Promise<number> => {
    const until = performance.now() + ms;
    let done = 0;
    await Promise.all(
      Array.from({ length: opts.connections }, async () => {
        while (performance.now() < until) {
          const status = await get(url, opts.headers, agent);
          if (status !== opts.expect) {
            throw new Error(`bench: ${url} answered ${status}, expected ${opts.expect}`);
          }
          done++;
        }
      }),
    );
    return done;
  };
  try {
    await hammer(opts.durationMs / 5);
    const started = performance.now();
    const done = await hammer(opts.durationMs);
    return done / ((performance.now() - started) / 1000);
  } finally {
    agent.destroy();
  }
}

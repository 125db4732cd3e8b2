/**
 * The service as a real process for benchmarks (issue 14): `node dist/src/main.js` with the start script's
 * environment, as `npm start` runs it (`npm run build` first; see builtMain), on a database of its own, its own Redis
 * prefix and the port it is given. Plus the load generator (wrk) and the CPU a process used, from /proc.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { hashToken, mintApiKey } from '../../src/modules/api-keys/api-key-token';
import { builtMain, createDeployment, startScriptEnv } from './service-process';

const ROOT = join(__dirname, '..', '..');
export const ADMIN_DATABASE_URL =
  process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface Service {
  url: string;
  pid: number;
  databaseUrl: string;
  storageDir: string;
  /** A bearer token of a fresh user. */
  token: string;
  userId: string;
  stop: () => Promise<void>;
}

export async function adminQuery(
  sql: string,
  params: unknown[] = [],
  url = ADMIN_DATABASE_URL,
): Promise<unknown[]> {
  const c = new Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query(sql, params)).rows;
  } finally {
    await c.end();
  }
}

/** Starts the service on `port` (and its own database), waits for /healthz, makes a user with a key. */
export async function startService(
  port: number,
  env: Record<string, string> = {},
  /** Another checkout to run (a side-by-side baseline); default BENCH_APP_DIR, else this one. */
  appDir = process.env.BENCH_APP_DIR ?? ROOT,
): Promise<Service> {
  const deployment = await createDeployment();
  const { databaseUrl, dataDir } = deployment;
  const child: ChildProcess = spawn(process.execPath, [builtMain(appDir)], {
    cwd: appDir,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      ...startScriptEnv(appDir),
      ...deployment.env,
      PORT: String(port),
      PUBLIC_URL: `http://127.0.0.1:${port}`,
      SECRET_KEY: randomBytes(32).toString('hex'),
      MODERATION_ENABLED: 'false',
      MIGRATE_ON_START: 'true',
      // Production's level: the fast path writes no info line per hit, the rest of the app does.
      LOG_LEVEL: 'info',
      WEB_CONCURRENCY: '1',
      RATE_LIMIT_MANAGEMENT_PER_MINUTE: '100000000',
      RATE_LIMIT_UPLOADS_PER_MINUTE: '100000',
      RATE_LIMIT_UPLOADS_PER_DAY: '100000000',
      ...env,
    },
    stdio: [
      'ignore',
      process.env.BENCH_SERVICE_LOG ? openSync(process.env.BENCH_SERVICE_LOG, 'w') : 'ignore',
      'inherit',
    ],
  });
  const url = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    if (child.exitCode === null) {
      await new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
      });
    }
    await deployment.remove().catch(() => undefined);
  };
  try {
    await waitForHealthz(child, url);
    const userId = (
      (await adminQuery(
        `insert into users (id, email, password_hash, role, created_at) values (gen_random_uuid(), $1, 'x', 'user', now()) returning id`,
        [`bench-${randomBytes(4).toString('hex')}@example.com`],
        databaseUrl,
      )) as { id: string }[]
    )[0].id;
    const key = mintApiKey();
    await adminQuery(
      `insert into api_keys (id, user_id, token_hash, prefix, label, request_count, created_at)
         values (gen_random_uuid(), $1, $2, $3, 'bench', 0, now())`,
      [userId, hashToken(key.token), key.prefix],
      databaseUrl,
    );
    return {
      url,
      pid: child.pid!,
      databaseUrl,
      storageDir: join(dataDir, 'images'),
      token: key.token,
      userId,
      stop,
    };
  } catch (error) {
    // A service that never came up leaves no process, database, directory or Redis keys behind.
    await stop();
    throw error;
  }
}

async function waitForHealthz(child: ChildProcess, url: string): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null) {
      throw new Error(`the service exited with ${child.exitCode} before answering /healthz`);
    }
    try {
      if ((await fetch(`${url}/healthz`)).ok) {
        return;
      }
    } catch {
      // not yet
    }
    if (Date.now() > deadline) {
      throw new Error('the service did not answer /healthz within 120 s');
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** User + system CPU a process has used so far, in ms (/proc/<pid>/stat, clock ticks of 10 ms). */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of the line (utime, stime) are 11 and 12 after the command name.
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

export interface WrkResult {
  requests: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  non2xx: number;
}

export function wrkBinary(): string {
  const found = ['/usr/bin/wrk', '/usr/local/bin/wrk'].find((p) => existsSync(p));
  if (!found) {
    throw new Error('wrk is not installed: run `apt-get install -y wrk`.');
  }
  return found;
}

/** One wrk run: one thread (the other core serves), `connections` keep-alive connections. */
export function wrk(
  url: string,
  opts: { connections?: number; seconds?: number; headers?: Record<string, string>; method?: 'GET' | 'HEAD' },
): WrkResult {
  const dir = mkdtempSync(join(tmpdir(), 'fxf-wrk-'));
  const script = join(dir, 'r.lua');
  const headers = Object.entries(opts.headers ?? {})
    .map(([k, v]) => `wrk.headers[${JSON.stringify(k)}] = ${JSON.stringify(v)}`)
    .join('\n');
  writeFileSync(
    script,
    `wrk.method = "${opts.method ?? 'GET'}"\n${headers}\n` +
      `done = function(summary, latency, requests)\n` +
      `  io.write(string.format("FXF %d %d %d %d\\n", summary.requests, latency:percentile(50), latency:percentile(99), summary.errors.status))\n` +
      `end\n`,
  );
  try {
    const out = execFileSync(
      wrkBinary(),
      ['-t1', `-c${opts.connections ?? 32}`, `-d${opts.seconds ?? 3}s`, '-s', script, url],
      { encoding: 'utf8', timeout: 120_000 },
    );
    const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
    const m = /FXF (\d+) (\d+) (\d+) (\d+)/.exec(out);
    if (!m || !Number.isFinite(rps)) {
      throw new Error(`could not read wrk's output: ${out}`);
    }
    return {
      requests: Number(m[1]),
      rps,
      p50Ms: Number(m[2]) / 1000,
      p99Ms: Number(m[3]) / 1000,
      non2xx: Number(m[4]),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * HEAD load, in this process: wrk 4.1 (Debian) waits for a body after a HEAD answer with Content-Length and stalls.
 * `connections` keep-alive sockets, each sending the next HEAD as soon as the previous answer's headers ended.
 * Both servers are measured with it, so the comparison stays fair; its own ceiling is reported with the row.
 */
export async function headLoad(
  host: string,
  port: number,
  path: string,
  opts: { connections?: number; seconds?: number } = {},
): Promise<{ requests: number; rps: number; non2xx: number }> {
  const { connect } = await import('node:net');
  const request = Buffer.from(`HEAD ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\n\r\n`);
  const until = Date.now() + (opts.seconds ?? 3) * 1000;
  let requests = 0;
  let non2xx = 0;
  const started = Date.now();
  await Promise.all(
    Array.from(
      { length: opts.connections ?? 32 },
      () =>
        new Promise<void>((resolve, reject) => {
          const socket = connect(port, host);
          let pending = '';
          socket.setNoDelay(true);
          socket.on('connect', () => socket.write(request));
          socket.on('data', (chunk: Buffer) => {
            pending += chunk.toString('latin1');
            let end: number;
            while ((end = pending.indexOf('\r\n\r\n')) !== -1) {
              if (!pending.startsWith('HTTP/1.1 2')) {
                non2xx++;
              }
              pending = pending.slice(end + 4);
              requests++;
              if (Date.now() >= until) {
                socket.end();
                resolve();
                return;
              }
              socket.write(request);
            }
          });
          socket.on('error', reject);
        }),
    ),
  );
  return { requests, rps: (requests * 1000) / (Date.now() - started), non2xx };
}

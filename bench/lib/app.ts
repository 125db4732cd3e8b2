/**
 * Runs the service as its own process for a bench (`node dist/src/main.js` with the start script's environment, as
 * `npm start` runs it: the threadpool, the allocator settings and the worker threads are as in production), on a
 * throwaway database, data dir and Redis prefix (lib/service-process's createDeployment: BENCH_DATABASE_URL,
 * BENCH_REDIS_URL) that stop() removes.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { type Agent, request } from 'node:http';
import { join } from 'node:path';
import { builtMain, createDeployment, startScriptEnv } from './service-process';

export const REPO_DIR = join(__dirname, '..', '..');

export interface BenchApp {
  base: string;
  child: ChildProcess;
  dataDir: string;
  stop: () => Promise<void>;
}

export interface StartOptions {
  port: number;
  env?: Record<string, string>;
  /** Extra node flags, e.g. `--cpu-prof`. */
  nodeArgs?: string[];
  /** Another checkout to run (a side-by-side baseline); default BENCH_APP_DIR, else this one. */
  appDir?: string;
}

export async function startApp(options: StartOptions): Promise<BenchApp> {
  const appDir = options.appDir ?? process.env.BENCH_APP_DIR ?? REPO_DIR;
  const deployment = await createDeployment();
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), builtMain(appDir)], {
    cwd: appDir,
    env: {
      PATH: process.env.PATH,
      ...startScriptEnv(appDir),
      ...deployment.env,
      PORT: String(options.port),
      MIGRATE_ON_START: 'true',
      RATE_LIMIT_UPLOADS_PER_MINUTE: '100000',
      RATE_LIMIT_UPLOADS_PER_DAY: '1000000',
      RATE_LIMIT_MANAGEMENT_PER_MINUTE: '100000',
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const base = `http://127.0.0.1:${options.port}`;
  const stop = async (): Promise<void> => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
    await deployment.remove();
  };
  try {
    await new Promise<void>((ok, fail) => {
      child.stdout?.on('data', (d: Buffer) => d.toString().includes('listening') && ok());
      child.on('exit', (code) => fail(new Error(`the app exited with ${code}`)));
    });
    // Listening is not ready: the moderation model may still be loading.
    for (let i = 0; ; i++) {
      const ready = await fetch(`${base}/readyz`).then(
        (r) => r.ok,
        () => false,
      );
      if (ready) {
        break;
      }
      if (i > 600) {
        throw new Error('the app never became ready');
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  } catch (error) {
    // An app that never came up leaves no process, database, directory or Redis keys behind.
    await stop().catch(() => undefined);
    throw error;
  }
  return { base, child, dataDir: deployment.dataDir, stop };
}

export async function upload(
  base: string,
  token: string,
  bytes: Buffer,
  name: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const form = new FormData();
  form.append('file', new Blob([bytes]), name);
  const res = await fetch(`${base}/api/v1/upload`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}` },
    body: form,
  });
  const text = await res.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // not JSON: the status tells
  }
  return { status: res.status, body };
}

/**
 * The same upload over a connection of its own (node:http, no keep-alive pool): for bursts, where a pooled socket the
 * server closes as idle just as it is reused would fail the request for reasons that are not the service's.
 */
export function uploadOwnConnection(
  base: string,
  token: string,
  bytes: Buffer,
  name: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  return uploadRaw(base, token, bytes, name, false);
}

/**
 * The same upload with as little of the client's own in the time as can be: the multipart body put together in one
 * buffer and sent in one write, over `agent`'s kept-alive connection. fetch builds a FormData body per request; this
 * leaves that out, to tell the service's part of a small upload from the client's.
 */
export function uploadKeptAlive(
  agent: Agent,
  base: string,
  token: string,
  bytes: Buffer,
  name: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  return uploadRaw(base, token, bytes, name, agent);
}

function uploadRaw(
  base: string,
  token: string,
  bytes: Buffer,
  name: string,
  agent: Agent | false,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const boundary = `bench${Math.random().toString(16).slice(2)}`;
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${name}"\r\n` +
      'Content-Type: application/octet-stream\r\n\r\n',
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const url = new URL('/api/v1/upload', base);
  // A kept-alive connection gets the body in one write; a burst's own connections stream it (no 20 MB copies).
  const whole = agent ? Buffer.concat([head, bytes, tail]) : null;
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        agent,
        headers: {
          Authorization: `Bearer ${token}`,
          'Content-Type': `multipart/form-data; boundary=${boundary}`,
          'Content-Length': head.length + bytes.length + tail.length,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          let body: Record<string, unknown> = {};
          try {
            body = JSON.parse(Buffer.concat(chunks).toString()) as Record<string, unknown>;
          } catch {
            // not JSON: the status tells
          }
          resolve({ status: res.statusCode ?? 0, body });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (whole) {
      req.end(whole);
      return;
    }
    req.write(head);
    req.write(bytes);
    req.end(tail);
  });
}

/** GET over a connection of its own; resolves with the status once the body is read. */
export function getOwnConnection(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Registers an account and returns a fresh API key for it. */
export async function newKey(base: string): Promise<string> {
  const email = `bench-${randomBytes(6).toString('hex')}@example.com`;
  const password = 'bench password 123';
  const json = { 'Content-Type': 'application/json' };
  await fetch(`${base}/api/v1/auth/register`, {
    method: 'POST',
    headers: json,
    body: JSON.stringify({ email, password }),
  });
  const login = await fetch(`${base}/api/v1/auth/login`, {
    method: 'POST',
    headers: json,
    body: JSON.stringify({ email, password }),
  });
  const cookie = login.headers
    .getSetCookie()
    .map((c) => c.split(';')[0])
    .join('; ');
  const session = (await (
    await fetch(`${base}/api/v1/auth/session`, { headers: { Cookie: cookie } })
  ).json()) as { csrf_token: string };
  const key = await fetch(`${base}/api/v1/keys`, {
    method: 'POST',
    headers: { ...json, Cookie: cookie, 'X-CSRF-Token': session.csrf_token },
    body: JSON.stringify({ label: 'bench' }),
  });
  const body = (await key.json()) as { token?: string };
  if (!body.token) {
    throw new Error(`could not create a key: ${JSON.stringify(body)}`);
  }
  return body.token;
}

/** The p-th percentile (nearest rank) of ascending `sorted`. */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** Resident set size of a process in MB, from /proc (Linux). */
export function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  return kb / 1024;
}

/** A process and all its descendants (their pids), from /proc (Linux). */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) {
      continue;
    }
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // The process ended meanwhile.
    }
  }
  const tree: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const next = queue.pop()!;
    tree.push(next);
    queue.push(...(children.get(next) ?? []));
  }
  return tree;
}

/**
 * RSS of a process and all its descendants in MB: `npm start` is a cluster primary with one worker per core, and each
 * worker may run a heavy-image process; the service's memory is all of them.
 */
export function treeRssMb(pid: number): number {
  let total = 0;
  for (const member of processTree(pid)) {
    try {
      total += rssMb(member);
    } catch {
      // The process ended meanwhile.
    }
  }
  return total;
}

/**
 * CPU time so far of every thread of a process and its descendants, in ms: the first field of each thread's
 * /proc/<pid>/task/<tid>/schedstat (nanoseconds on a CPU), which the 10 ms ticks of /proc/<pid>/stat are too coarse
 * for over a few uploads. A thread that ends between two readings takes its time with it; the service's threads
 * (the event loop, libuv's and libvips' workers, the inference and image threads) live as long as it does.
 */
export function treeCpuMs(pid: number): number {
  let ns = 0;
  for (const member of processTree(pid)) {
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${member}/task`);
    } catch {
      continue;
    }
    for (const tid of tasks) {
      try {
        ns += Number(readFileSync(`/proc/${member}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      } catch {
        // The thread ended meanwhile.
      }
    }
  }
  return ns / 1e6;
}

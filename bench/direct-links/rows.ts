/**
 * Issue 14, goal 1: direct links against nginx serving the same file, side by side in one run.
 *
 * The service runs as a real process (bench/lib/service.ts, one process, production's LOG_LEVEL=info); nginx 1.22
 * (Debian) runs with one worker, its root the service's stored file, and the same headers added. The load generator
 * is wrk (one thread, 32 connections, 3 s a measure; it saturates a single nginx worker, so it is not the limit),
 * the two servers measured alternately, and each round runs each measure (304, HEAD, GET) on the original and then
 * on the variant, as a service serves both at once. Measured in blocks instead (all of the original's runs, then the
 * variant's), the variant, after 45 s of the original's traffic alone, took 7–55 % more CPU per 304 than the original
 * in five runs, and 4 % less with the blocks the other way round; interleaved, 0–11 % more in five. Rows: 304, HEAD
 * and a 200 KB GET, req/s, for an original and a warm variant, and the CPU the service spends per 304 (from
 * /proc/<pid>/stat over the run).
 *
 *   npm run bench -- 3 direct-links        (ports 40300–40309)
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { type BenchRow, type BenchSuite, median, row } from '../lib/report';
import { upload } from '../lib/app';
import { cpuMs, headLoad, type Service, startService, wrk } from '../lib/service';
import { freePort } from '../../test/setup/private-servers';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);

/** A noise JPEG of about 200 KB (noise does not compress, so the size is predictable). */
export async function image200k(): Promise<Buffer> {
  const side = 560;
  return sharp(randomBytes(side * side * 3), { raw: { width: side, height: side, channels: 3 } })
    .jpeg({ quality: 80 })
    .toBuffer();
}

interface LoadResult {
  rps: number;
  requests: number;
  non2xx: number;
  p99Ms?: number;
}

interface Target {
  label: string;
  /** The path on both servers. */
  path: string;
  /** The stored file the service serves for it. */
  file: string;
  etag: string;
  mime: string;
}

function startNginx(prefix: string, port: number, targets: Target[]): ChildProcess {
  mkdirSync(join(prefix, 'logs'), { recursive: true });
  mkdirSync(join(prefix, 'tmp'), { recursive: true });
  const tmp = join(prefix, 'tmp');
  // The service's own headers, so both answers carry the same weight.
  const headers = `add_header Cache-Control "public, max-age=86400"; add_header X-Content-Type-Options nosniff;
      add_header Content-Security-Policy "default-src 'none'; style-src 'unsafe-inline'; sandbox";`;
  const locations = targets
    .map((t) => `location = ${t.path} { alias ${t.file}; default_type ${t.mime}; ${headers} }`)
    .join('\n    ');
  writeFileSync(
    join(prefix, 'nginx.conf'),
    `daemon off;
${process.getuid?.() === 0 ? 'user root root;' : ''}
worker_processes 1;
pid ${join(prefix, 'nginx.pid')};
error_log ${join(prefix, 'logs', 'error.log')} warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on; tcp_nopush on; keepalive_requests 1000000;
  client_body_temp_path ${tmp}/b; proxy_temp_path ${tmp}/p; fastcgi_temp_path ${tmp}/f; uwsgi_temp_path ${tmp}/u; scgi_temp_path ${tmp}/s;
  types { }
  server {
    listen 127.0.0.1:${port};
    ${locations}
  }
}
`,
  );
  return spawn(
    '/usr/sbin/nginx',
    ['-p', prefix, '-c', join(prefix, 'nginx.conf'), '-e', join(prefix, 'logs', 'error.log')],
    {
      stdio: 'ignore',
    },
  );
}

export const suite: BenchSuite = {
  name: 'direct links',
  async run({ runs }): Promise<BenchRow[]> {
    const appPort = await freePort();
    const nginxPort = await freePort();
    const service = await startService(appPort);
    const prefix = mkdtempSync(join(tmpdir(), 'fxf-bench-nginx-'));
    let nginx: ChildProcess | undefined;
    try {
      const filename = await uploadOne(service, await image200k());
      const shard = filename.slice(8, 10);
      const originalGet = await fetch(`${service.url}/images/${filename}`);
      const stored = Buffer.from(await originalGet.arrayBuffer());
      const variantPath = `/images/${filename}?w=640&format=webp`;
      const variantGet = await fetch(`${service.url}${variantPath}`);
      const variantBytes = Buffer.from(await variantGet.arrayBuffer());
      const targets: Target[] = [
        {
          label: `original (${Math.round(stored.length / 1024)} KB JPEG)`,
          path: `/images/${filename}`,
          file: join(service.storageDir, shard, filename),
          etag: originalGet.headers.get('etag')!,
          mime: 'image/jpeg',
        },
        {
          label: `warm variant (w=640 WebP, ${Math.round(variantBytes.length / 1024)} KB)`,
          path: variantPath,
          file: '',
          etag: variantGet.headers.get('etag')!,
          mime: 'image/webp',
        },
      ];
      // The variant's stored file: found by its content (the storage key scheme is the storage module's). It is
      // stored just after its first answer: looked for a few times.
      const { readdirSync, readFileSync } = await import('node:fs');
      const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
      for (let attempt = 0; attempt < 50 && !targets[1].file; attempt++) {
        await new Promise((r) => setTimeout(r, attempt === 0 ? 0 : 100));
        for (const dir of readdirSync(service.storageDir)) {
          for (const f of readdirSync(join(service.storageDir, dir))) {
            const path = join(service.storageDir, dir, f);
            if (f !== filename && !f.startsWith('.') && sha(readFileSync(path)) === sha(variantBytes)) {
              targets[1].file = path;
            }
          }
        }
      }
      if (!targets[1].file) {
        throw new Error('the variant file was not found in storage');
      }
      // nginx can't match a query in `location =`: its variant location is the path without the query.
      const nginxPath = (t: Target): string => (t === targets[1] ? `/v/${filename}.webp` : t.path);
      nginx = startNginx(
        prefix,
        nginxPort,
        targets.map((t) => ({ ...t, path: nginxPath(t) })),
      );
      await waitUp(`http://127.0.0.1:${nginxPort}${nginxPath(targets[0])}`);
      // Each server's own ETag for its 304: nginx's (mtime-size) is not ours (the SHA-256). Sent ours, nginx would
      // answer 200 with the whole file, and the "304" row would compare our 304s with nginx's 200s. Both must
      // answer 304 before the load.
      const nginxEtag = new Map<Target, string>();
      for (const t of targets) {
        const probe = await fetch(`http://127.0.0.1:${nginxPort}${nginxPath(t)}`, { method: 'HEAD' });
        nginxEtag.set(t, probe.headers.get('etag') ?? '');
        for (const [url, etag] of [
          [`http://127.0.0.1:${nginxPort}${nginxPath(t)}`, nginxEtag.get(t)!],
          [`${service.url}${t.path}`, t.etag],
        ]) {
          const res = await fetch(url, { headers: { 'If-None-Match': etag } });
          if (res.status !== 304) {
            throw new Error(`bench: ${url} answered ${res.status} to its own ETag, not 304`);
          }
        }
      }

      const measures: {
        what: string;
        method: 'GET' | 'HEAD';
        headers: (target: Target) => Record<string, string>;
        goal: number;
      }[] = [
        { what: '304', method: 'GET', headers: (t) => ({ 'If-None-Match': t.etag }), goal: 0.25 },
        { what: 'HEAD', method: 'HEAD', headers: () => ({}), goal: 0.25 },
        { what: 'GET 200', method: 'GET', headers: () => ({}), goal: 0.35 },
      ];
      interface Samples {
        ours: number[];
        theirs: number[];
        cpuPer: number[];
        p99: number;
      }
      const samples = new Map<string, Samples>();
      const measure = async (target: Target, m: (typeof measures)[number]): Promise<void> => {
        const key = `${target.label}\n${m.what}`;
        const into = samples.get(key) ?? { ours: [], theirs: [], cpuPer: [], p99: 0 };
        samples.set(key, into);
        const load = async (port: number, path: string): Promise<LoadResult> => {
          const headers =
            m.what === '304' && port === nginxPort
              ? { 'If-None-Match': nginxEtag.get(target)! }
              : m.headers(target);
          return m.method === 'HEAD'
            ? headLoad('127.0.0.1', port, path, { seconds: SECONDS })
            : wrk(`http://127.0.0.1:${port}${path}`, { headers, seconds: SECONDS });
        };
        const n = await load(nginxPort, nginxPath(target));
        into.theirs.push(n.rps);
        const before = cpuMs(service.pid);
        const s = await load(appPort, target.path);
        const used = cpuMs(service.pid) - before;
        if (s.non2xx > 0 && m.what !== '304') {
          throw new Error(`${s.non2xx} error answers from the service on ${target.path}`);
        }
        into.ours.push(s.rps);
        into.cpuPer.push(used / s.requests);
        into.p99 = s.p99Ms ?? Number.NaN;
      };
      // Round by round, every measure on each target in turn (see the top of this file for why).
      for (let i = 0; i < runs; i++) {
        for (const m of measures) {
          for (const target of targets) {
            await measure(target, m);
          }
        }
      }

      const rows: BenchRow[] = [];
      for (const target of targets) {
        for (const m of measures) {
          const { ours, theirs, cpuPer, p99 } = samples.get(`${target.label}\n${m.what}`)!;
          rows.push(
            row({
              label: `${target.label}: ${m.what} (32 conns)`,
              value: median(ours),
              baseline: median(theirs),
              baselineLabel: 'nginx, same file, 1 worker',
              unit: 'req/s',
              goal: { direction: 'at-least', ratio: m.goal },
              note: `${m.method === 'HEAD' ? 'load: bench/lib headLoad (wrk stalls on HEAD)' : `wrk; our p99 ${p99.toFixed(1)} ms`}; ${runs} runs`,
            }),
          );
          if (m.what === '304') {
            rows.push({
              label: `${target.label}: CPU per 304`,
              value: median(cpuPer),
              baseline: 0.15,
              baselineLabel: 'goal',
              unit: 'ms',
              ratio: median(cpuPer) / 0.15,
              goal: { direction: 'at-most', ratio: 1 },
              note: '/proc/<pid>/stat utime+stime over the run',
            });
          }
        }
      }
      return rows;
    } finally {
      if (nginx && nginx.exitCode === null) {
        nginx.kill('SIGTERM');
      }
      await service.stop();
      rmSync(prefix, { recursive: true, force: true });
    }
  },
};

/** Uploads `bytes` with the service's bench key; its filename (anything but a 200 ends the bench). */
export async function uploadOne(service: Service, bytes: Buffer): Promise<string> {
  const res = await upload(service.url, service.token, bytes, 'a.jpg');
  if (res.status !== 200) {
    throw new Error(`upload failed: ${res.status} ${JSON.stringify(res.body)}`);
  }
  return res.body.filename as string;
}

async function waitUp(url: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(url)).ok) {
        return;
      }
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing answers at ${url}`);
}

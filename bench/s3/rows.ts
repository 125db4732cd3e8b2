/**
 * Issue 15, item 9: the service on S3 against the store itself and against the local driver, in one run.
 *
 *   npm run bench -- 3 s3
 *
 * - `/images` throughput and p99: the same ~200 KB object through the service on STORAGE_DRIVER=s3 (the first GET
 *   streams it from the store, later ones come from the instance's memory, DELIVERY_CACHE_MB) against a plain GET of
 *   it straight from the S3 server. Goal ≥ 0.7×. Beside it (informational): the local driver, and the same deployment
 *   with DELIVERY_CACHE_MB=0, where every GET streams from the store.
 * - Upload latency: the same uploads on S3 and on the local driver; goal: S3 ≤ 1.2× local + one store round trip,
 *   reported as (S3 − one PutObject of the same size, measured here) / local ≤ 1.2.
 *
 * The S3 server (s3rver) runs in a child process on 40601 (helper 6's port range); the service and the load
 * generator share this process. Needs the shared PostgreSQL and Redis (DATABASE_URL as an admin URL, REDIS_URL;
 * loopback defaults); makes its own database and drops it. Rows interleave within each round, so a busy neighbour
 * slows all alike; each row is the median of its rounds.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { runMigrations } from '../../src/database/migrate';
import { S3StorageDriver } from '../../src/modules/storage/s3.driver';
import sharp from 'sharp';
import { bearer, makeKey } from '../../test/setup/factories';
import { databaseUrl, INFRA_ENV, withAdminClient } from '../../test/setup/infra';
import { TestS3 } from '../../test/setup/s3-server';
import { createTestApp, type TestApp } from '../../test/setup/test-app';
import { type BenchRow, type BenchSuite, median, row } from '../lib/report';
import { freePort } from '../../test/setup/private-servers';

const CONCURRENCY = 8;
const LOAD_MS = 2000;
const UPLOADS_PER_ROUND = 8;

interface Load {
  rps: number;
  p99: number;
}

/** CONCURRENCY keep-alive clients GET `url` for LOAD_MS; requests per second and the 99th percentile in ms. */
async function load(url: string): Promise<Load> {
  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const latencies: number[] = [];
  const end = Date.now() + LOAD_MS;
  const one = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const started = process.hrtime.bigint();
      request(url, { agent }, (res) => {
        if (res.statusCode !== 200) {
          reject(new Error(`${url} answered ${res.statusCode}`));
        }
        res.resume();
        res.on('end', () => {
          latencies.push(Number(process.hrtime.bigint() - started) / 1e6);
          resolve();
        });
      })
        .on('error', reject)
        .end();
    });
  const started = Date.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (Date.now() < end) {
        await one();
      }
    }),
  );
  const seconds = (Date.now() - started) / 1000;
  agent.destroy();
  const sorted = latencies.sort((a, b) => a - b);
  return {
    rps: latencies.length / seconds,
    p99: sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))],
  };
}

/** A 256×256 PNG of pseudo-random pixels (about 190 KB), different for every seed. */
function noise(seed: number): Promise<Buffer> {
  const raw = Buffer.alloc(256 * 256 * 3);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < raw.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    raw[i] = x & 0xff;
  }
  return sharp(raw, { raw: { width: 256, height: 256, channels: 3 } })
    .png()
    .toBuffer();
}

async function startS3Process(): Promise<{
  proc: ChildProcess;
  s3: { endpoint: string; env: TestS3['env'] };
}> {
  const port = await freePort();
  const proc = spawn(
    process.execPath,
    ['-r', 'ts-node/register/transpile-only', join(__dirname, 's3rver-process.ts'), String(port)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve, reject) => {
    proc.stdout?.on('data', (chunk: Buffer) => {
      if (chunk.toString().startsWith('ready')) {
        resolve();
      }
    });
    proc.on('exit', (code) => reject(new Error(`s3rver process exited ${code}`)));
  });
  // The same settings TestS3 gives, pointed at the child's port.
  const shape = Object.create(TestS3.prototype) as TestS3;
  Object.assign(shape, { port, bucket: 'fxf-test' });
  return { proc, s3: { endpoint: shape.endpoint, env: shape.env.bind(shape) } };
}

export const suite: BenchSuite = {
  name: 's3 storage',
  async run({ runs }): Promise<BenchRow[]> {
    const adminUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
    const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
    const templateDb = `fxf_bench_s3_${process.pid}`;
    await withAdminClient(adminUrl, (c) => c.query(`create database ${templateDb}`));
    const { proc, s3 } = await startS3Process();
    const apps: TestApp[] = [];
    try {
      await runMigrations(databaseUrl(adminUrl, templateDb));
      process.env[INFRA_ENV] = JSON.stringify({ adminUrl, templateDb, redisUrl });
      const limits = {
        RATE_LIMIT_UPLOADS_PER_MINUTE: '100000',
        RATE_LIMIT_UPLOADS_PER_DAY: '1000000',
        LOG_LEVEL: 'silent',
      };
      const prefix = TestS3.freshPrefix();
      const onS3 = await createTestApp({ env: { ...limits, ...s3.env({ prefix }) } });
      apps.push(onS3);
      const onLocal = await createTestApp({ env: limits });
      apps.push(onLocal);
      // The same deployment without the bytes cache: every GET streams from the store (informational).
      const streaming = await createTestApp({
        env: { ...limits, ...s3.env({ prefix }), DELIVERY_CACHE_MB: '0' },
        shareWith: onS3,
      });
      apps.push(streaming);
      const base = (t: TestApp): string => {
        const address = t.app.getHttpServer().address() as { port: number };
        return `http://127.0.0.1:${address.port}`;
      };
      const keys = { s3: await makeKey(onS3), local: await makeKey(onLocal) };
      // One ~200 KB image on each (noise compresses badly: the stored size stays near the raw size).
      const image = await noise(1);
      const put = async (t: TestApp, token: string, bytes: Buffer): Promise<string> => {
        const res = await t.http
          .post('/api/v1/upload')
          .set(...bearer(token))
          .attach('file', bytes, 'a.png');
        if (res.status !== 200) {
          throw new Error(`upload answered ${res.status}: ${JSON.stringify(res.body)}`);
        }
        return (res.body as { filename: string }).filename;
      };
      const served = {
        s3: await put(onS3, keys.s3.token, image),
        local: await put(onLocal, keys.local.token, image),
      };
      const urls = {
        service: `${base(onS3)}/images/${served.s3}`,
        direct: `${s3.endpoint}/fxf-test/${prefix}${served.s3}`,
        local: `${base(onLocal)}/images/${served.local}`,
        streamed: `${base(streaming)}/images/${served.s3}`,
      };
      const store = new S3StorageDriver({
        endpoint: s3.endpoint,
        region: 'us-east-1',
        bucket: 'fxf-test',
        prefix: TestS3.freshPrefix(),
        accessKeyId: 'S3RVER',
        secretAccessKey: 'S3RVER',
        forcePathStyle: true,
        timeoutMs: 10_000,
        maxAttempts: 1,
      });

      const samples = {
        service: [] as Load[],
        direct: [] as Load[],
        local: [] as Load[],
        streamed: [] as Load[],
        uploadS3: [] as number[],
        uploadLocal: [] as number[],
        roundTrip: [] as number[],
      };
      let seed = 1000;
      // Each upload is a new image of the same size (no dedupe hit).
      const images = async (n: number) => Promise.all(Array.from({ length: n }, () => noise(seed++)));
      const timeUploads = async (t: TestApp, token: string, batch: Buffer[]): Promise<number> => {
        const times: number[] = [];
        for (const bytes of batch) {
          const started = process.hrtime.bigint();
          await put(t, token, bytes);
          times.push(Number(process.hrtime.bigint() - started) / 1e6);
        }
        return median(times);
      };
      // Warm-up: connections, JIT, s3rver's first requests.
      await load(urls.service);
      await load(urls.direct);
      await load(urls.local);
      await load(urls.streamed);
      for (let round = 0; round < runs; round++) {
        samples.direct.push(await load(urls.direct));
        samples.service.push(await load(urls.service));
        samples.local.push(await load(urls.local));
        samples.streamed.push(await load(urls.streamed));
        samples.uploadLocal.push(
          await timeUploads(onLocal, keys.local.token, await images(UPLOADS_PER_ROUND)),
        );
        samples.uploadS3.push(await timeUploads(onS3, keys.s3.token, await images(UPLOADS_PER_ROUND)));
        const trips: number[] = [];
        for (let i = 0; i < UPLOADS_PER_ROUND; i++) {
          const started = process.hrtime.bigint();
          await store.put(`FIXITFY-rtt${String(i).padStart(9, '0')}.png`, image);
          trips.push(Number(process.hrtime.bigint() - started) / 1e6);
        }
        samples.roundTrip.push(median(trips));
      }
      store.onModuleDestroy();

      const rps = (xs: Load[]) => median(xs.map((x) => x.rps));
      const p99 = (xs: Load[]) => median(xs.map((x) => x.p99));
      const rtt = median(samples.roundTrip);
      const uploadS3 = median(samples.uploadS3);
      const uploadLocal = median(samples.uploadLocal);
      const note = `${runs} runs, ${CONCURRENCY} clients × ${LOAD_MS / 1000} s, ${image.length >> 10} KB`;
      return [
        row({
          label: 'GET /images on S3 (req/s)',
          value: rps(samples.service),
          baselineLabel: 'same object straight from the S3 server',
          baseline: rps(samples.direct),
          unit: 'req/s',
          goal: { direction: 'at-least', ratio: 0.7 },
          note: `p99 ${p99(samples.service).toFixed(1)} ms vs ${p99(samples.direct).toFixed(1)} ms direct; small objects served from the instance's memory after the first GET (DELIVERY_CACHE_MB); ${note}`,
        }),
        row({
          label:
            'GET /images on S3 with DELIVERY_CACHE_MB=0: every GET streamed from the store (req/s, informational)',
          value: rps(samples.streamed),
          baselineLabel: 'same object straight from the S3 server',
          baseline: rps(samples.direct),
          unit: 'req/s',
          note: `p99 ${p99(samples.streamed).toFixed(1)} ms; ${note}`,
        }),
        row({
          label: 'GET /images on S3 vs on the local driver (req/s, informational)',
          value: rps(samples.service),
          baselineLabel: 'local driver',
          baseline: rps(samples.local),
          unit: 'req/s',
          note: `p99 ${p99(samples.service).toFixed(1)} ms vs ${p99(samples.local).toFixed(1)} ms local; ${note}`,
        }),
        row({
          label: 'upload on S3 minus one store round trip (ms)',
          value: uploadS3 - rtt,
          baselineLabel: 'upload on the local driver',
          baseline: uploadLocal,
          unit: 'ms',
          goal: { direction: 'at-most', ratio: 1.2 },
          note: `S3 upload ${uploadS3.toFixed(1)} ms, one PutObject of ${image.length >> 10} KB ${rtt.toFixed(1)} ms; median of ${UPLOADS_PER_ROUND} sequential uploads × ${runs} runs`,
        }),
      ];
    } finally {
      for (const t of apps) {
        await t.close();
      }
      proc.kill('SIGTERM');
      await withAdminClient(adminUrl, (c) => c.query(`drop database if exists ${templateDb} with (force)`));
    }
  },
};

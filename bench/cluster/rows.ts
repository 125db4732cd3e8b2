/**
 * Issue 14, goal 5: the same deployment served by WEB_CONCURRENCY=2 (Node's cluster, one HTTP process per core) against
 * WEB_CONCURRENCY=1, side by side in one run: 1080p JPEG uploads per second (4 at a time, one key, each a new
 * image, the NSFW review on) and 304s per second (32 kept-alive connections, If-None-Match). The load generator
 * runs on the same machine and takes CPU from both alike. Informational goal: ≥ 1.0×.
 */
import sharp from 'sharp';
import { type BenchRow, type BenchSuite, median, row } from '../lib/report';
import {
  createDeployment,
  makeApiKey,
  requestsPerSecond,
  type RunningService,
  startService,
  upload,
} from '../lib/service-process';

const UPLOADS_PER_ROUND = 12;
const UPLOADERS = 4;
/**
 * Uploads sent to each freshly started service before its uploads are timed, per HTTP process: a process's first
 * uploads pay its warm-up (JIT, the model's first runs, the allocator's first pages), which the start-up rows
 * measure, and two fresh processes pay it twice.
 */
const WARM_UPS_PER_PROCESS = 4;

/** Distinct photo-like 1920×1080 JPEGs (distinct bytes, so no upload takes the dedupe path). */
async function jpegs(count: number): Promise<Buffer[]> {
  const width = 1920;
  const height = 1080;
  const base = Buffer.alloc(width * height * 3);
  for (let i = 0, p = 0; p < width * height; p++, i += 3) {
    const x = p % width;
    const y = (p / width) | 0;
    base[i] = (x * 255) / width;
    base[i + 1] = (y * 255) / height + ((x ^ y) & 15);
    base[i + 2] = 128 + 60 * Math.sin(x / 40) * Math.cos(y / 30);
  }
  const out: Buffer[] = [];
  for (let n = 0; n < count; n++) {
    const data = Buffer.from(base);
    // A stripe that differs per image.
    data.fill(n & 0xff, 0, width * 3 * 8);
    data.fill((n >> 8) & 0xff, width * 3 * 8, width * 3 * 16);
    out.push(
      await sharp(data, { raw: { width, height, channels: 3 } })
        .jpeg({ quality: 85 })
        .toBuffer(),
    );
  }
  return out;
}

async function uploadsPerSecond(svc: RunningService, token: string, images: Buffer[]): Promise<number> {
  const queue = [...images];
  const started = performance.now();
  await Promise.all(
    Array.from({ length: UPLOADERS }, async () => {
      for (let img = queue.shift(); img; img = queue.shift()) {
        await upload(svc.base, token, img);
      }
    }),
  );
  return images.length / ((performance.now() - started) / 1000);
}

export const suite: BenchSuite = {
  name: 'both cores',
  async run({ runs }) {
    const deployment = await createDeployment();
    const images = await jpegs((UPLOADS_PER_ROUND + 1 + 3 * WARM_UPS_PER_PROCESS) * 2 * (runs + 1));
    const results = {
      1: { uploads: [] as number[], notModified: [] as number[] },
      2: { uploads: [] as number[], notModified: [] as number[] },
    };
    try {
      for (let round = 0; round <= runs; round++) {
        for (const wc of [1, 2] as const) {
          // Each round starts both services afresh, alternating, so a noisy neighbour hits both alike.
          const svc = await startService(
            { ...deployment.env, WEB_CONCURRENCY: String(wc) },
            { ready: true, everyProcess: true },
          );
          try {
            const token = await makeApiKey(svc.base);
            // The cluster hands connections to its workers in turn: 4 at a time reach each of them.
            await uploadsPerSecond(svc, token, images.splice(0, WARM_UPS_PER_PROCESS * wc));
            const batch = images.splice(0, UPLOADS_PER_ROUND);
            const perSecond = await uploadsPerSecond(svc, token, batch);
            const filename = await upload(svc.base, token, images.splice(0, 1)[0]);
            const url = `${svc.base}/images/${filename}`;
            const etag = await etagOf(url);
            const notModified = await requestsPerSecond(url, {
              connections: 32,
              durationMs: 3000,
              headers: { 'if-none-match': etag },
              expect: 304,
            });
            if (round > 0) {
              // Round 0 warms the file cache and the model; it is not counted.
              results[wc].uploads.push(perSecond);
              results[wc].notModified.push(notModified);
            }
          } finally {
            await svc.stop();
          }
        }
      }
    } finally {
      await deployment.remove();
    }
    const rows: BenchRow[] = [
      row({
        label: '1080p JPEG uploads, 4 at a time, WEB_CONCURRENCY=2',
        value: median(results[2].uploads),
        baselineLabel: 'WEB_CONCURRENCY=1',
        baseline: median(results[1].uploads),
        unit: 'uploads/s',
        goal: { direction: 'at-least', ratio: 1 },
        note: `informational goal; ${runs} runs, ${UPLOADS_PER_ROUND} uploads each after ${WARM_UPS_PER_PROCESS} per process untimed, review on`,
      }),
      row({
        label: 'GET /images/… → 304, 32 connections, WEB_CONCURRENCY=2',
        value: median(results[2].notModified),
        baselineLabel: 'WEB_CONCURRENCY=1',
        baseline: median(results[1].notModified),
        unit: 'req/s',
        goal: { direction: 'at-least', ratio: 1 },
        note: `informational goal; ${runs} runs of 3 s; the load generator shares the 2 cores`,
      }),
    ];
    return rows;
  },
};

async function etagOf(url: string): Promise<string> {
  const res = await fetch(url, { method: 'HEAD' });
  const etag = res.headers.get('etag');
  if (res.status !== 200 || !etag) {
    throw new Error(`bench: HEAD ${url} answered ${res.status} without an ETag`);
  }
  return etag;
}

/**
 * Issue 12, item 6, in `npm run bench`: variants through the HTTP service against their baselines, in one run.
 *
 * - cold: `GET /images/:file?w=320&format=webp` of a 1920×1080 JPEG never asked before (render + store + send),
 *   against sharp alone doing the same resize and WebP encode on the same stored bytes; goal ≤ 1.25×. Rounds
 *   alternate the two, one new upload per round, at least 15 rounds.
 * - the same through the media functions alone (bench/variants/run.ts's cases, also `npm run bench:variants`).
 * - warm: requests/s of the stored variant against requests/s of the original (16 kept-alive connections, 3 s each,
 *   alternating); goal ≥ 0.9×.
 *
 * The service runs with WEB_CONCURRENCY=1 and the review off (uploads are set-up here, not measured).
 */
import sharp from 'sharp';
import { type BenchSuite, median, row } from '../lib/report';
import {
  createDeployment,
  makeApiKey,
  requestsPerSecond,
  send,
  startService,
  upload,
} from '../lib/service-process';
import { CASES, measure, sharpAlone, syntheticJpeg } from './run';

const QUERY = 'w=320&format=webp';

/** `count` distinct versions of the synthetic 1080p JPEG (a stripe differs), so every upload is new. */
async function distinctJpegs(count: number): Promise<Buffer[]> {
  const { data, info } = await sharp(await syntheticJpeg())
    .raw()
    .toBuffer({ resolveWithObject: true });
  const out: Buffer[] = [];
  for (let n = 0; n < count; n++) {
    const copy = Buffer.from(data);
    copy.fill(n & 0xff, 0, info.width * info.channels * 4);
    out.push(
      await sharp(copy, { raw: { width: info.width, height: info.height, channels: info.channels } })
        .jpeg({ quality: 85 })
        .toBuffer(),
    );
  }
  return out;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await fn();
  return performance.now() - started;
}

export const suite: BenchSuite = {
  name: 'variants',
  async run({ runs }) {
    // A cold render is one sample per upload and costs about 80 ms with its upload, so it gets more samples than
    // the other rows: with 5, one slow request moved the median by a tenth of the ratio.
    const coldRounds = Math.max(runs * 3, 15);
    const deployment = await createDeployment();
    const svc = await startService({
      ...deployment.env,
      WEB_CONCURRENCY: '1',
      MODERATION_ENABLED: 'false',
    }).catch(async (error: unknown) => {
      await deployment.remove();
      throw error;
    });
    const cold: number[] = [];
    const alone: number[] = [];
    const warm: number[] = [];
    const original: number[] = [];
    let media: number[];
    try {
      const token = await makeApiKey(svc.base);
      const images = await distinctJpegs(coldRounds + 1);
      const files: { filename: string; stored: Buffer }[] = [];
      for (const img of images) {
        const filename = await upload(svc.base, token, img);
        const res = await fetch(`${svc.base}/images/${filename}`);
        files.push({ filename, stored: Buffer.from(await res.arrayBuffer()) });
      }
      // Round 0 warms both paths and is not counted.
      for (const [i, { filename, stored }] of files.entries()) {
        const http = await timed(async () => {
          const res = await send('GET', `${svc.base}/images/${filename}?${QUERY}`, undefined);
          if (res.status !== 200) {
            throw new Error(`bench: the cold variant answered ${res.status}`);
          }
        });
        const sharpMs = await timed(() => sharpAlone.run(stored));
        if (i > 0) {
          cold.push(http);
          alone.push(sharpMs);
        }
      }
      media = await measure(CASES, files[0].stored, runs);
      const { filename } = files[0];
      for (let round = 0; round < runs; round++) {
        const load = { connections: 16, durationMs: 3000, expect: 200 };
        warm.push(await requestsPerSecond(`${svc.base}/images/${filename}?${QUERY}`, load));
        original.push(await requestsPerSecond(`${svc.base}/images/${filename}`, load));
      }
    } finally {
      await svc.stop();
      await deployment.remove();
    }
    return [
      row({
        label: `cold variant through GET /images/:file?${QUERY} (1080p JPEG)`,
        value: median(cold),
        baselineLabel: 'sharp alone, same bytes',
        baseline: median(alone),
        unit: 'ms',
        goal: { direction: 'at-most', ratio: 1.25 },
        note: `${coldRounds} rounds, one new upload each; WEB_CONCURRENCY=1`,
      }),
      row({
        label: 'cold variant through parse + resolve + renderVariant',
        value: media[1],
        baselineLabel: 'sharp alone, same bytes',
        baseline: media[0],
        unit: 'ms',
        goal: { direction: 'at-most', ratio: 1.25 },
        note: `${runs} runs, interleaved`,
      }),
      row({
        label: `warm variant GET /images/:file?${QUERY}, 16 connections`,
        value: median(warm),
        baselineLabel: 'the original, same connections',
        baseline: median(original),
        unit: 'req/s',
        goal: { direction: 'at-least', ratio: 0.9 },
        note: `${runs} runs of 3 s, alternating; the load generator shares the CPU`,
      }),
    ];
  },
};

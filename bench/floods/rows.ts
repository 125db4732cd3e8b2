/**
 * Animation floods (issue 9, item 6): latency of ordinary uploads (640×480 JPEG and PNG, one at a time) while the
 * service is idle, and while four worst-case allowed files (a GIF at the 1000-frame cap, 316×316, 100 megapixels in
 * all) are uploaded again and again by another key. Per run, p99 of each phase (BENCH_FLOODS_SAMPLES uploads each,
 * default 100, so the p99 is not just the slowest one); the row is the median over runs of loaded p99 / idle p99,
 * goal ≤ 2×. The service runs as its own process (production threadpool, `npm start`'s environment); moderation is
 * off, as the flood is about decoding.
 *
 *   npm run bench -- [runs] floods        (or `npm run bench:floods -- [runs] [samples]`)
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { newKey, percentile, REPO_DIR, startApp, uploadOwnConnection } from '../lib/app';
import { type BenchSuite, median, row } from '../lib/report';
import { freePort } from '../../test/setup/private-servers';

const HEAVY = 4;
const CACHE = join(REPO_DIR, '.tmp', 'bench-floods');

/** 1000 frames of 316×316 in which every pixel changes every frame (so no frame can be cropped or skipped). */
async function worstCaseGif(): Promise<Buffer> {
  const file = join(CACHE, 'worst-1000x316.gif');
  if (existsSync(file)) {
    return readFileSync(file);
  }
  const [w, h, frames] = [316, 316, 1000];
  const raw = Buffer.alloc(w * h * frames * 3);
  for (let f = 0; f < frames; f++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const o = ((f * h + y) * w + x) * 3;
        const v = ((x >> 2) + (y >> 2) + f) & 1 ? 255 : 0;
        raw[o] = v;
        raw[o + 1] = 255 - v;
        raw[o + 2] = f & 1 ? v : 0;
      }
    }
  }
  const gif = await sharp(raw, { raw: { width: w, height: h * frames, channels: 3, pageHeight: h } })
    .gif({ effort: 1, colours: 4, dither: 0, interFrameMaxError: 0, interPaletteMaxError: 0 })
    .toBuffer();
  mkdirSync(CACHE, { recursive: true });
  writeFileSync(file, gif);
  return gif;
}

/** A 640×480 photo-like image; `seed` makes the bytes distinct, so no upload is a dedupe hit. */
async function smallImage(seed: number): Promise<{ bytes: Buffer; name: string }> {
  const image = sharp({
    create: {
      width: 640,
      height: 480,
      channels: 3,
      background: { r: seed % 256, g: (seed * 7) % 256, b: 90 },
      noise: { type: 'gaussian', mean: 120, sigma: 30 },
    },
  });
  return seed % 2 === 0
    ? { bytes: await image.jpeg({ quality: 85 }).toBuffer(), name: `s${seed}.jpg` }
    : { bytes: await image.png().toBuffer(), name: `s${seed}.png` };
}

/** `samples` ordinary uploads one after another (images made beforehand); latencies in ms, ascending. */
async function ordinaryUploads(
  base: string,
  token: string,
  seed: number,
  samples: number,
): Promise<number[]> {
  const images = await Promise.all(Array.from({ length: samples }, (_, i) => smallImage(seed + i)));
  const times: number[] = [];
  for (const { bytes, name } of images) {
    const started = performance.now();
    const res = await uploadOwnConnection(base, token, bytes, name);
    times.push(performance.now() - started);
    if (res.status !== 200) {
      throw new Error(`ordinary upload answered ${res.status} ${JSON.stringify(res.body)}`);
    }
  }
  return times.sort((a, b) => a - b);
}

export const suite: BenchSuite = {
  name: 'floods',
  async run({ runs }) {
    const samples = Number(process.env.BENCH_FLOODS_SAMPLES ?? 100);
    const gif = await worstCaseGif();
    const app = await startApp({ port: await freePort(), env: { MODERATION_ENABLED: 'false' } });
    const results: { idle50: number; idle99: number; load50: number; load99: number; heavyDone: number }[] =
      [];
    try {
      const light = await newKey(app.base);
      const heavy = await newKey(app.base);
      await ordinaryUploads(app.base, light, 1_000_000, 10); // warm-up
      for (let run = 0; run < runs; run++) {
        const idle = await ordinaryUploads(app.base, light, run * 10_000, samples);
        let stop = false;
        let heavyDone = 0;
        const statuses = new Map<number, number>();
        const floods = Array.from({ length: HEAVY }, async (_, lane) => {
          for (let i = 0; !stop; i++) {
            // A distinct byte after the trailer: each flood upload is new bytes (no dedupe hit), the same decode.
            const bytes = Buffer.concat([gif, Buffer.from([run, lane, i & 0xff, i >> 8])]);
            const status = await uploadOwnConnection(app.base, heavy, bytes, 'flood.gif').then(
              (r) => r.status,
              () => 0,
            );
            statuses.set(status, (statuses.get(status) ?? 0) + 1);
            heavyDone++;
          }
        });
        await new Promise((r) => setTimeout(r, 1500)); // the four are decoding
        const loaded = await ordinaryUploads(app.base, light, run * 10_000 + 5000, samples);
        stop = true;
        await Promise.all(floods);
        const result = {
          idle50: percentile(idle, 50),
          idle99: percentile(idle, 99),
          load50: percentile(loaded, 50),
          load99: percentile(loaded, 99),
          heavyDone,
        };
        results.push(result);
        process.stderr.write(
          `  run ${run + 1}: idle p50 ${result.idle50.toFixed(0)} ms p99 ${result.idle99.toFixed(0)} ms | ` +
            `under flood p50 ${result.load50.toFixed(0)} ms p99 ${result.load99.toFixed(0)} ms | ` +
            `p99 ratio ${(result.load99 / result.idle99).toFixed(2)} | flood uploads ${heavyDone} ` +
            `(${[...statuses].map(([s, n]) => `${n}×${s}`).join(', ')})\n`,
        );
      }
    } finally {
      await app.stop();
    }
    const m = (f: (x: (typeof results)[number]) => number) => median(results.map(f));
    const ratio = m((x) => x.load99 / x.idle99);
    const p99 = row({
      label: `ordinary upload p99 under ${HEAVY} worst-case GIFs (ms)`,
      value: m((x) => x.load99),
      baselineLabel: 'idle p99, same run',
      baseline: m((x) => x.idle99),
      unit: 'ms',
      goal: { direction: 'at-most', ratio: 2 },
      note: `median of per-run ratios ${ratio.toFixed(2)}; ${samples} uploads a phase; ${runs} runs; GIF 1000×316×316`,
    });
    return [
      { ...p99, ratio },
      row({
        label: `ordinary upload p50 under ${HEAVY} worst-case GIFs (ms)`,
        value: m((x) => x.load50),
        baselineLabel: 'idle p50, same run',
        baseline: m((x) => x.idle50),
        unit: 'ms',
        note: `flood uploads finished: median ${m((x) => x.heavyDone)} a run`,
      }),
    ];
  },
};

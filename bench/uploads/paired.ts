/**
 * Two builds of the service side by side, each small upload alternating between them: how a change moves the 16×16
 * fixed cost when `npm run bench`'s rows move more between runs than the change is worth.
 *
 * The baseline is another checkout, built (`git worktree add /tmp/base <commit>`, `node_modules` linked in,
 * `npx tsc -p tsconfig.build.json`, `dist/model` copied); this checkout's `dist` is the other side. Both services run at
 * once, each as `npm start` runs it with one HTTP process; every round sends one fresh 16×16 PNG (the bench row's) to
 * each, in an order that alternates, 8 ms apart (a lone upload, as in the bench). It first prints the two checkouts
 * (it refuses to compare one with itself), then each run both medians and their ratio.
 *
 *   BENCH_BASELINE_DIR=/tmp/base npx ts-node --transpile-only bench/uploads/paired.ts [runs] [uploads]
 *
 * BENCH_PAIRED_CLIENT=fetch sends through fetch and FormData (the bench row's client) instead of the lean one;
 * BENCH_PAIRED_OPAQUE=1 sends an opaque PNG (one review input) instead of a transparent one (two);
 * BENCH_PAIRED_IMAGE=hd sends the bench row's 1920×1080 JPEG, `rgba` its 1920×1080 RGBA PNG, `gif` its animated GIF
 * (24 frames of 480×270), `jfif` a 200×150 JPEG with a JFIF header (as libjpeg writes one, under 64 KB), instead of
 * the 16×16. BENCH_PAIRED_GAP_MS sets the pause between uploads (default 8 ms): a
 * longer one shows what a change does to uploads that find the service idle.
 *
 * An A/A run of the 1080p JPEG 300 ms apart read 0.92–0.99, the side started second (this checkout) the faster in all
 * five runs: for a change that small, run it both ways round (docs/performance.md, the forty-sixth session's entry).
 */
import { realpathSync } from 'node:fs';
import { Agent } from 'node:http';
import { join } from 'node:path';
import sharp from 'sharp';
import { ensureNsfwModel } from '../../src/modules/moderation/model/nsfw-model-cache';
import { type BenchApp, newKey, REPO_DIR, startApp, upload, uploadKeptAlive } from '../lib/app';
import { median } from '../lib/report';
import { jfifWithThumbnail, withJpegSegments } from '../../test/fixtures/images/image-fixtures';
import { freePort } from '../../test/setup/private-servers';
import { photoPixels, variant } from './rows';

const WARM_UP = 10;

/** The bench row's 16×16 PNG (rows.ts: the same pixels and seeds), made distinct by `n`. */
function tinyPng(n: number, channels: 3 | 4): Promise<Buffer> {
  const pixels = photoPixels(16, 16, channels, channels === 4 ? 4 : 5);
  return sharp(variant(pixels, n, 16, channels), { raw: { width: 16, height: 16, channels } })
    .png()
    .toBuffer();
}

/** The image of upload `n`, its name, per BENCH_PAIRED_IMAGE (rows.ts's pixels and encodings). */
function imageMaker(channels: 3 | 4): { name: string; make: (n: number) => Promise<Buffer> } {
  const which = process.env.BENCH_PAIRED_IMAGE ?? 'tiny';
  /** A 1920×1080 still of rows.ts's pixels (`seed`), encoded by `encode`. */
  const still = (
    name: string,
    channels: 3 | 4,
    seed: number,
    encode: (image: sharp.Sharp) => sharp.Sharp,
  ) => {
    const pixels = photoPixels(1920, 1080, channels, seed);
    return {
      name,
      make: (n: number) =>
        encode(
          sharp(variant(pixels, n, 1920, channels), { raw: { width: 1920, height: 1080, channels } }),
        ).toBuffer(),
    };
  };
  if (which === 'hd') {
    return still('hd.jpg', 3, 1, (image) => image.jpeg({ quality: 85 }));
  }
  if (which === 'rgba') {
    return still('rgba.png', 4, 3, (image) => image.png());
  }
  if (which === 'gif') {
    const [width, height, frames] = [480, 270, 24];
    const pixels = Buffer.concat(
      Array.from({ length: frames }, (_, f) => photoPixels(width, height, 3, 10 + f)),
    );
    return {
      name: 'anim.gif',
      make: (n) =>
        sharp(variant(pixels, n, width, 3), {
          raw: { width, height: height * frames, channels: 3, pageHeight: height },
        })
          .gif({ effort: 1 })
          .toBuffer(),
    };
  }
  if (which === 'jfif') {
    // A small photo as libjpeg's own writer makes it (cameras, editors, most JPEGs on the web): a JFIF header with no
    // thumbnail after its start-of-image marker, which libvips' writer leaves out.
    const [width, height] = [200, 150];
    const pixels = photoPixels(width, height, 3, 6);
    return {
      name: 'small.jpg',
      make: async (n) => {
        const jpeg = await sharp(variant(pixels, n, width, 3), { raw: { width, height, channels: 3 } })
          .jpeg({ quality: 85 })
          .toBuffer();
        return withJpegSegments(jpeg, jfifWithThumbnail(0, 0));
      },
    };
  }
  if (which !== 'tiny') {
    throw new Error(`BENCH_PAIRED_IMAGE: hd, rgba, gif, jfif or tiny, not ${which}`);
  }
  return { name: 'tiny.png', make: (n) => tinyPng(n, channels) };
}

async function main(): Promise<void> {
  const baseline = process.env.BENCH_BASELINE_DIR;
  if (!baseline) {
    throw new Error('Set BENCH_BASELINE_DIR to the built checkout to compare with.');
  }
  // A run from the wrong directory (the baseline's own, say) would compare a build with itself and look like a tie.
  if (realpathSync(baseline) === realpathSync(REPO_DIR)) {
    throw new Error(`BENCH_BASELINE_DIR is this checkout (${REPO_DIR}): run the bench from the other one.`);
  }
  console.log(`baseline ${realpathSync(baseline)}, this build ${realpathSync(REPO_DIR)}`);
  const runs = Number(process.argv[2] ?? 3);
  const uploads = Number(process.argv[3] ?? 150);
  const viaFetch = process.env.BENCH_PAIRED_CLIENT === 'fetch';
  const channels = process.env.BENCH_PAIRED_OPAQUE === '1' ? 3 : 4;
  const gapMs = Number(process.env.BENCH_PAIRED_GAP_MS ?? 8);
  const image = imageMaker(channels);
  const modelPath = await ensureNsfwModel(join(REPO_DIR, '.tmp', 'moderation-cache'));
  const env = { MODERATION_MODEL_PATH: modelPath, MODERATION_THREADS: '2', WEB_CONCURRENCY: '1' };
  let serial = 0;
  for (let run = 0; run < runs; run++) {
    const apps: BenchApp[] = [];
    const agents = [0, 1].map(() => new Agent({ keepAlive: true, maxSockets: 1 }));
    try {
      apps.push(await startApp({ port: await freePort(), env, appDir: baseline }));
      apps.push(await startApp({ port: await freePort(), env, appDir: REPO_DIR }));
      const tokens = await Promise.all(apps.map((app) => newKey(app.base)));
      const times: number[][] = [[], []];
      for (let i = 0; i < uploads + WARM_UP; i++) {
        for (const side of i % 2 === 0 ? [0, 1] : [1, 0]) {
          const bytes = await image.make(++serial);
          await new Promise((resolve) => setTimeout(resolve, gapMs));
          const started = performance.now();
          const res = viaFetch
            ? await upload(apps[side].base, tokens[side], bytes, image.name)
            : await uploadKeptAlive(agents[side], apps[side].base, tokens[side], bytes, image.name);
          const took = performance.now() - started;
          if (res.status !== 200 || res.body.deduplicated) {
            throw new Error(`an upload answered ${res.status} ${JSON.stringify(res.body)}`);
          }
          if (i >= WARM_UP) {
            times[side].push(took);
          }
        }
      }
      const [before, after] = times.map(median);
      console.log(
        `run ${run + 1}: baseline ${before.toFixed(2)} ms, this build ${after.toFixed(2)} ms, ratio ` +
          `${(after / before).toFixed(3)} (${uploads} uploads of ${image.name} each, ` +
          `${viaFetch ? 'fetch' : 'lean client'})`,
      );
    } finally {
      agents.forEach((agent) => agent.destroy());
      await Promise.all(apps.map((app) => app.stop()));
    }
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});

/**
 * Moderation timings on this machine: decode, preprocessing, inference and whole reviews of a generated
 * 1920×1080 JPEG (and an RGBA PNG, which is classified over two backgrounds), then 16 reviews submitted at
 * once.
 *
 *   npx ts-node --transpile-only bench/moderation/run.ts [runs]
 */
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import sharp from 'sharp';
import type { AppConfig } from '../../src/config/app-config';
import { decodeFrames } from '../../src/modules/media/decode';
import { frameToModelInputs } from '../../src/modules/moderation/image-preprocess';
import { ensureNsfwModel } from '../../src/modules/moderation/model/nsfw-model-cache';
import { ModerationService } from '../../src/modules/moderation/moderation.service';
import { NsfwClassifier } from '../../src/modules/moderation/nsfw-classifier';

const RUNS = Number(process.argv[2] ?? 30);
const CACHE = join(__dirname, '..', '..', '.tmp', 'moderation-cache');
const WIDTH = 1920;
const HEIGHT = 1080;

async function median(fn: () => Promise<unknown>): Promise<number> {
  await fn();
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const started = process.hrtime.bigint();
    await fn();
    times.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

/** A photo-like test image: smooth gradients, a bright ellipse and some grain. */
function syntheticPixels(channels: 3 | 4): Buffer {
  const data = Buffer.alloc(WIDTH * HEIGHT * channels);
  let seed = 7;
  for (let y = 0; y < HEIGHT; y++) {
    for (let x = 0; x < WIDTH; x++) {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      const grain = (seed >>> 28) - 8;
      const k = Math.max(0, 1 - Math.hypot((x - WIDTH / 2) / 500, (y - HEIGHT / 2) / 350));
      const i = (y * WIDTH + x) * channels;
      data[i] = Math.min(255, Math.max(0, 40 + (150 * x) / WIDTH + 60 * k + grain));
      data[i + 1] = Math.min(255, Math.max(0, 60 + (100 * y) / HEIGHT + 50 * k + grain));
      data[i + 2] = Math.min(255, Math.max(0, 120 - 40 * k + grain));
      if (channels === 4) {
        data[i + 3] = x < WIDTH / 4 ? 0 : 255;
      }
    }
  }
  return data;
}

const fmt = (ms: number) => `${ms.toFixed(2).padStart(8)} ms`;

async function main(): Promise<void> {
  const jpeg = await sharp(syntheticPixels(3), { raw: { width: WIDTH, height: HEIGHT, channels: 3 } })
    .jpeg({ quality: 85 })
    .toBuffer();
  const png = await sharp(syntheticPixels(4), { raw: { width: WIDTH, height: HEIGHT, channels: 4 } })
    .png()
    .toBuffer();
  const modelPath = await ensureNsfwModel(CACHE);
  const classifier = await NsfwClassifier.load(modelPath, { threads: 1, concurrency: 2 });
  const service = new ModerationService({
    dataDir: CACHE,
    moderation: {
      enabled: true,
      modelPath,
      pornHentaiThreshold: 0.7,
      pornThreshold: 0.5,
      frames: 3,
      threads: 1,
      concurrency: 2,
    },
  } as AppConfig);
  await service.whenReady();

  console.log(`moderation bench: ${RUNS} runs each, medians; JPEG ${jpeg.length} B, PNG ${png.length} B`);
  for (const [name, image] of [
    ['1920×1080 JPEG', jpeg],
    ['1920×1080 RGBA PNG', png],
  ] as const) {
    const [frame] = await decodeFrames(image, 1);
    const inputs = frameToModelInputs(frame);
    const rows: [string, number][] = [
      ['sharp decode alone (raw)', await median(() => sharp(image).raw().toBuffer())],
      [
        'sharp rotate+resize 224 fill (nsfwjs-unlike)',
        await median(() =>
          sharp(image).rotate().resize(224, 224, { fit: 'fill' }).removeAlpha().raw().toBuffer(),
        ),
      ],
      ['our decode (rotate, sRGB, full size)', await median(() => decodeFrames(image, 3))],
      ['our align-corners resize (TS)', await median(() => Promise.resolve(frameToModelInputs(frame)))],
      [
        'preprocessing total',
        await median(async () => frameToModelInputs((await decodeFrames(image, 3))[0])),
      ],
      [
        `inference (${inputs.length} input${inputs.length > 1 ? 's' : ''}, worker)`,
        await median(() => classifier.classifyPrepared(inputs)),
      ],
      [
        'whole review (decode + service.review)',
        await median(async () => service.review(await decodeFrames(image, 3))),
      ],
    ];
    console.log(`\n${name}`);
    rows.forEach(([label, ms]) => console.log(`  ${label.padEnd(46)}${fmt(ms)}`));
  }

  const lag = monitorEventLoopDelay({ resolution: 1 });
  const batches: number[] = [];
  lag.enable();
  for (let i = 0; i < 5; i++) {
    const started = process.hrtime.bigint();
    await Promise.all(Array.from({ length: 16 }, async () => service.review(await decodeFrames(jpeg, 3))));
    batches.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  lag.disable();
  batches.sort((a, b) => a - b);
  const wall = batches[2];
  console.log(`\n16 parallel reviews of the JPEG (concurrency 2, 1 intra-op thread), median of 5:`);
  console.log(`  wall ${fmt(wall)}, ${(16000 / wall).toFixed(1)} images/s`);
  const [p50, max] = [lag.percentile(50), lag.max].map((ns) => (ns / 1e6).toFixed(1));
  console.log(`  event-loop delay during them: p50 ${p50} ms, max ${max} ms`);

  await service.onModuleDestroy();
  await classifier.close();
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});

/**
 * Which layout of the review's sessions is the faster on this machine, side by side in one process: the default on two
 * cores or more (two sessions of one intra-op thread, and a session of two for a lone input while it is idle:
 * MODERATION_SESSION_THREADS=1, MODERATION_SOLO_THREADS=2) against two sessions of two threads each and none beside
 * them (MODERATION_SESSION_THREADS=2, MODERATION_SOLO_THREADS=0, the default before), on the uploads bench's images
 * (rows.ts): a 1080p JPEG's frame (one input, resized on this thread) and a half-transparent 16×16 PNG's (two inputs,
 * one a session). The two layouts take turns, `GAP_MS` apart (an upload's review follows a pause too); each row is the
 * median of `rounds` reviews after five untimed ones, and its ratio is the default against the other (below 1×: the
 * default is the faster). It times the review alone, which can miss what the service gains: on two kinds of host a
 * lone input was faster on two threads in the service but not here. To choose, run the uploads suite with each
 * (`BENCH_SESSION_THREADS=2 BENCH_SOLO_THREADS=0 npm run bench -- 5 uploads` against `npm run bench -- 5 uploads`);
 * this bench shows the review's own part.
 *
 *   npx ts-node --transpile-only bench/moderation/threads.ts [rounds]
 */
import { join } from 'node:path';
import { decodeFrame, type RawImage } from '../../src/modules/media/decode';
import { ensureNsfwModel } from '../../src/modules/moderation/model/nsfw-model-cache';
import { NsfwClassifier } from '../../src/modules/moderation/nsfw-classifier';
import { median } from '../lib/report';
import { bytesOf } from './first-review';

const CACHE = join(__dirname, '..', '..', '.tmp', 'moderation-cache');
const GAP_MS = 50;
const UNTIMED = 5;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The frames of the uploads bench's 1080p JPEG and half-transparent 16×16 PNG, decoded as the service decodes. */
async function frames(): Promise<{ label: string; frame: RawImage }[]> {
  return [
    { label: "a 1080p JPEG's frame (one input)", frame: await decodeFrame(await bytesOf('1080p'), 0) },
    {
      label: "a half-transparent 16×16 PNG's frame (two inputs)",
      frame: await decodeFrame(await bytesOf('16x16'), 0),
    },
  ];
}

async function main(): Promise<void> {
  const rounds = Math.max(1, Number(process.argv[2] ?? 40));
  const modelPath = await ensureNsfwModel(CACHE);
  const [layered, two] = await Promise.all([
    NsfwClassifier.load(modelPath, { threads: 2, sessionThreads: 1, soloThreads: 2, concurrency: 2 }),
    NsfwClassifier.load(modelPath, { threads: 2, sessionThreads: 2, soloThreads: 0, concurrency: 2 }),
  ]);
  // Its single-input session loads once load() has resolved.
  await layered.soloLoaded;
  try {
    process.stdout.write(
      '| review | one thread a session, a lone input on two (the default) | two threads a session | ratio |\n' +
        '|---|---|---|---|\n',
    );
    for (const { label, frame } of await frames()) {
      const times = { layered: [] as number[], two: [] as number[] };
      for (let round = 0; round < UNTIMED + rounds; round++) {
        // Alternate which layout goes first, so neither always follows the other's work.
        const order = round % 2 === 0 ? (['layered', 'two'] as const) : (['two', 'layered'] as const);
        for (const layout of order) {
          await sleep(GAP_MS);
          const started = performance.now();
          await (layout === 'layered' ? layered : two).classify([frame]);
          if (round >= UNTIMED) {
            times[layout].push(performance.now() - started);
          }
        }
      }
      const [m1, m2] = [median(times.layered), median(times.two)];
      process.stdout.write(
        `| ${label} | ${m1.toFixed(2)} ms | ${m2.toFixed(2)} ms | ${(m1 / m2).toFixed(2)}× |\n`,
      );
    }
  } finally {
    await Promise.all([layered.close(), two.close()]);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`threads: ${String(error)}\n`);
  process.exit(1);
});

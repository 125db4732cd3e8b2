/**
 * Which MODERATION_SESSION_THREADS is the faster on this machine: the service's two sessions with two intra-op threads
 * each (its default on two cores or more) against two sessions of one thread, side by side in one process, on the
 * uploads bench's images (rows.ts): a 1080p JPEG's frame (one input, resized on this thread) and a half-transparent
 * 16×16 PNG's (two inputs, one a session). The two layouts take turns, `GAP_MS` apart (an upload's review follows a
 * pause too); each row is the median of `rounds` reviews after five untimed ones, and its ratio is one thread against
 * two (below 1×: one thread is the faster). Which one wins differs between kinds of host (README, NSFW moderation).
 * It times the review alone, which can miss what the service gains: on two kinds of host a lone input was faster on two
 * threads in the service but not here (even, or one thread the faster). To choose, run the uploads suite with each
 * (`BENCH_SESSION_THREADS=1 npm run bench -- 5 uploads` against `npm run bench -- 5 uploads`); this bench shows the
 * review's own part.
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
  const [two, one] = await Promise.all(
    [2, 1].map((sessionThreads) =>
      NsfwClassifier.load(modelPath, { threads: 2, sessionThreads, concurrency: 2 }),
    ),
  );
  try {
    process.stdout.write(
      `| review | one thread a session | two threads a session (the default) | ratio |\n|---|---|---|---|\n`,
    );
    for (const { label, frame } of await frames()) {
      const times = { one: [] as number[], two: [] as number[] };
      for (let round = 0; round < UNTIMED + rounds; round++) {
        // Alternate which layout goes first, so neither always follows the other's work.
        const order = round % 2 === 0 ? (['one', 'two'] as const) : (['two', 'one'] as const);
        for (const layout of order) {
          await sleep(GAP_MS);
          const started = performance.now();
          await (layout === 'one' ? one : two).classify([frame]);
          if (round >= UNTIMED) {
            times[layout].push(performance.now() - started);
          }
        }
      }
      const [m1, m2] = [median(times.one), median(times.two)];
      process.stdout.write(
        `| ${label} | ${m1.toFixed(2)} ms | ${m2.toFixed(2)} ms | ${(m1 / m2).toFixed(2)}× |\n`,
      );
    }
  } finally {
    await Promise.all([one.close(), two.close()]);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`threads: ${String(error)}\n`);
  process.exit(1);
});

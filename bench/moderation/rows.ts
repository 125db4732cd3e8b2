/**
 * The classifier's first reviews after a load, with its warm-up rounds (WARM_UP_RUNS, NsfwClassifier.load) against
 * none, side by side in one run: each sample a fresh process (first-review.ts) that loads the real model with two
 * sessions and times its first reviews of one frame, the two settings alternating. Rows: the first and the second
 * review of a 1080p JPEG's frame and of a half-transparent 16×16 PNG's (two inputs), and what the warm-up adds to the
 * load, which the service runs once it listens (/readyz waits for it, /healthz does not). The single-input session
 * (MODERATION_SOLO_THREADS) loads once that load is done, beside the first reviews, as in the service once /readyz
 * answers: the review rows' note gives when it was in use and the median of three reviews after that. Informational:
 * no goal of issue 14's is about them; they are what the first uploads after a start pay.
 *
 *   npm run bench -- 5 moderation
 */
import { fork } from 'node:child_process';
import { join } from 'node:path';
import { ensureNsfwModel } from '../../src/modules/moderation/model/nsfw-model-cache';
import { WARM_UP_RUNS } from '../../src/modules/moderation/nsfw-classifier';
import { type BenchRow, type BenchSuite, median, row } from '../lib/report';
import { startScriptEnv } from '../lib/service-process';
import type { FirstReviewCase, FirstReviewReply } from './first-review';

const MODEL_CACHE = join(__dirname, '..', '..', '.tmp', 'moderation-cache');

function sample(modelPath: string, warmUpRuns: number, which: FirstReviewCase): Promise<FirstReviewReply> {
  return new Promise((resolve, reject) => {
    const child = fork(join(__dirname, 'first-review.ts'), [modelPath, String(warmUpRuns), which], {
      execArgv: ['-r', 'ts-node/register/transpile-only'],
      // The start script's allocator settings, as the service has them.
      env: { ...process.env, ...startScriptEnv() },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let reply: FirstReviewReply | undefined;
    child.on('message', (m: FirstReviewReply) => (reply = m));
    child.on('error', reject);
    child.on('exit', (code) =>
      reply ? resolve(reply) : reject(new Error(`first-review exited (${code}) without an answer`)),
    );
  });
}

/** What the review rows' note says of the single-input session, which loads beside the first reviews. */
function soloNote(replies: readonly FirstReviewReply[]): string {
  const inUse = replies.filter((r) => r.solo);
  if (inUse.length === 0) {
    return 'no single-input session came into use (one core, or it failed to load)';
  }
  return (
    `the single-input session loads beside them, as in the service after /readyz, and was in use ` +
    `${median(inUse.map((r) => r.soloMs)).toFixed(0)} ms after the load (in ${inUse.length} of ${replies.length}); ` +
    `reviews then: ${median(inUse.map((r) => r.afterSoloMs)).toFixed(1)} ms`
  );
}

export const suite: BenchSuite = {
  name: 'moderation',
  async run({ runs }) {
    const modelPath = await ensureNsfwModel(MODEL_CACHE);
    const rows: BenchRow[] = [];
    const loads = { warm: [] as number[], cold: [] as number[] };
    for (const which of ['1080p', '16x16'] as const) {
      const warm: FirstReviewReply[] = [];
      const cold: FirstReviewReply[] = [];
      for (let i = 0; i < runs; i++) {
        // Alternating, each setting first in every other round.
        const order = i % 2 === 0 ? [WARM_UP_RUNS, 0] : [0, WARM_UP_RUNS];
        for (const runsOf of order) {
          const reply = await sample(modelPath, runsOf, which);
          (runsOf === 0 ? cold : warm).push(reply);
          (runsOf === 0 ? loads.cold : loads.warm).push(reply.loadMs);
        }
      }
      const label =
        which === '1080p' ? "a 1080p JPEG's frame (one input)" : 'a half-transparent 16×16 PNG (two inputs)';
      for (const [nth, name] of [
        [0, 'first'],
        [1, 'second'],
      ] as const) {
        rows.push(
          row({
            label: `${name} review after a load, ${label}`,
            value: median(warm.map((r) => r.reviewMs[nth])),
            baselineLabel: 'the same without warm-up rounds',
            baseline: median(cold.map((r) => r.reviewMs[nth])),
            unit: 'ms',
            note:
              `informational; ${WARM_UP_RUNS} warm-up rounds; a fresh process a sample, ${runs} samples each, alternating; ` +
              `the third review: ${median(warm.map((r) => r.reviewMs[2])).toFixed(1)} ms; ${soloNote(warm)}`,
          }),
        );
      }
    }
    rows.push(
      row({
        label:
          "the model load, the service's sessions (in the service once it listens; /readyz waits for it)",
        value: median(loads.warm),
        baselineLabel: 'the same without warm-up rounds',
        baseline: median(loads.cold),
        unit: 'ms',
        note: `informational: what the warm-up rounds cost; ${loads.warm.length} loads each`,
      }),
    );
    return rows;
  },
};

/**
 * One fresh process's first reviews (rows.ts forks this file once per sample): loads the model with `warmUpRuns`
 * warm-up rounds (argv[2]), then times its first REVIEWS reviews of one case (argv[3]: the 1080p JPEG's frame, or the
 * half-transparent 16×16 PNG's), each decoded before the load, then waits for the single-input session (which loads
 * once load() resolves, beside those reviews, as in the service once /readyz answers) and times as many more, and
 * sends the times back. A process of its own per sample, because a classifier's first reviews are slow partly for
 * this process's own first runs of the code.
 */
import sharp from 'sharp';
import { MODERATION_THREAD_DEFAULTS } from '../../src/config/app-config';
import { decodeFrame } from '../../src/modules/media/decode';
import { NsfwClassifier } from '../../src/modules/moderation/nsfw-classifier';
import { median } from '../lib/report';
import { photoPixels, variant } from '../uploads/rows';

/** How many reviews are timed after the load. */
export const REVIEWS = 3;

export type FirstReviewCase = '1080p' | '16x16';

export interface FirstReviewReply {
  loadMs: number;
  reviewMs: number[];
  /** Whether a single-input session came into use (none on one core, or when it failed to load). */
  solo: boolean;
  /** From load()'s end until the single-input session was in use (it loads and warms up beside the reviews above). */
  soloMs: number;
  /** The median of REVIEWS more reviews once the single-input session is in use. */
  afterSoloMs: number;
}

/** The bytes of a case: the uploads bench's 1080p JPEG, or its half-transparent 16×16 PNG (rows.ts's pixels). */
export async function bytesOf(which: FirstReviewCase): Promise<Buffer> {
  if (which === '1080p') {
    const pixels = variant(photoPixels(1920, 1080, 3, 1), 7, 1920, 3);
    return sharp(pixels, { raw: { width: 1920, height: 1080, channels: 3 } })
      .jpeg({ quality: 85 })
      .toBuffer();
  }
  const pixels = variant(photoPixels(16, 16, 4, 4), 7, 16, 4);
  return sharp(pixels, { raw: { width: 16, height: 16, channels: 4 } })
    .png()
    .toBuffer();
}

async function main(): Promise<void> {
  const [modelPath, runs, which] = process.argv.slice(2);
  const frame = await decodeFrame(await bytesOf(which as FirstReviewCase), 0);
  const started = performance.now();
  const classifier = await NsfwClassifier.load(modelPath, {
    ...MODERATION_THREAD_DEFAULTS,
    concurrency: 2,
    warmUpRuns: Number(runs),
  });
  const loaded = performance.now();
  const loadMs = loaded - started;
  const reviewMs: number[] = [];
  for (let i = 0; i < REVIEWS; i++) {
    const at = performance.now();
    await classifier.classify([frame]);
    reviewMs.push(performance.now() - at);
  }
  const solo = await classifier.soloLoaded;
  const soloMs = performance.now() - loaded;
  const afterSolo: number[] = [];
  for (let i = 0; i < REVIEWS; i++) {
    const at = performance.now();
    await classifier.classify([frame]);
    afterSolo.push(performance.now() - at);
  }
  const afterSoloMs = median(afterSolo);
  await classifier.close();
  const reply: FirstReviewReply = { loadMs, reviewMs, solo, soloMs, afterSoloMs };
  process.send!(reply, undefined, {}, () => process.exit(0));
}

if (require.main === module) {
  main().catch((error: unknown) => {
    process.stderr.write(`first-review: ${String(error)}\n`);
    process.exit(1);
  });
}

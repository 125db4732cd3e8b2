/**
 * Regenerates test/fixtures/moderation/{seeded-noise,adversarial-noise}.png: seeded grey noise, and the same
 * noise nudged by signed-gradient steps (computed with tfjs on the nsfwjs model) until our converted model,
 * through our own preprocessing, scores it Porn ≥ 0.9. A person sees grey noise in both; the point is a
 * real-model test image that contains nothing explicit. Deterministic for a given seed.
 *
 *   npx ts-node --transpile-only scripts/make-nsfw-fixture.ts
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { ensureNsfwModel } from '../src/modules/moderation/model/nsfw-model-cache';
import { decodeFrames } from '../src/modules/media/decode';
import { NsfwClassifier } from '../src/modules/moderation/nsfw-classifier';
import { loadNsfwjsReference, tf } from '../test/moderation/support/tfjs-reference';
import { lcg } from '../test/moderation/support/synthetic-images';

const SIZE = 224;
const SEED = 20240611;
const STEP = 4; // grey levels per signed-gradient step
const MAX_STEPS = 12;
const TARGET = 0.9;
const PORN = 3;
const OUT_DIR = join(__dirname, '..', 'test', 'fixtures', 'moderation');

const png = (rgb: Uint8Array, grey = false): Promise<Buffer> => {
  const image = sharp(Buffer.from(rgb), { raw: { width: SIZE, height: SIZE, channels: 3 } });
  // The plain noise is grey (R = G = B): one channel keeps the fixture a third of the size, same pixels.
  return (grey ? image.toColourspace('b-w') : image)
    .png({ compressionLevel: 9, adaptiveFiltering: true })
    .toBuffer();
};

async function main(): Promise<void> {
  const next = lcg(SEED);
  const noise = new Uint8Array(SIZE * SIZE * 3);
  for (let i = 0; i < SIZE * SIZE; i++) {
    noise.fill(96 + (next() >> 2), i * 3, i * 3 + 3);
  }
  const model = await loadNsfwjsReference();
  const classifier = await NsfwClassifier.load(
    await ensureNsfwModel(join(__dirname, '..', '.tmp', 'moderation-cache')),
    {
      threads: 1,
      concurrency: 1,
    },
  );
  const score = async (rgb: Uint8Array) =>
    (await classifier.classify(await decodeFrames(await png(rgb), 1))).scores[0];
  const logPorn = (x: tf.Tensor) =>
    tf.log((model.apply(x, { training: false }) as tf.Tensor).gather([PORN], 1)).sum();
  const gradient = tf.grad(logPorn);

  console.log('seeded noise', await score(noise));
  let current = noise;
  for (let step = 1; step <= MAX_STEPS; step++) {
    const sign = tf.tidy(() => {
      const x = tf.tensor4d(current, [1, SIZE, SIZE, 3], 'int32').toFloat().div(255);
      return gradient(x).sign().dataSync();
    });
    const nudged = new Uint8Array(current.length);
    current.forEach((v, i) => (nudged[i] = Math.min(255, Math.max(0, v + STEP * sign[i]))));
    current = nudged;
    const scores = await score(current);
    console.log(`step ${step}`, scores);
    if (scores.porn >= TARGET) {
      await mkdir(OUT_DIR, { recursive: true });
      await writeFile(join(OUT_DIR, 'seeded-noise.png'), await png(noise, true));
      await writeFile(join(OUT_DIR, 'adversarial-noise.png'), await png(current));
      console.log(`wrote ${OUT_DIR}/{seeded-noise,adversarial-noise}.png after ${step} step(s)`);
      await classifier.close();
      return;
    }
  }
  await classifier.close();
  throw new Error(`Porn stayed below ${TARGET} after ${MAX_STEPS} steps`);
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});

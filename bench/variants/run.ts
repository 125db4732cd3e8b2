/**
 * A cold variant (issue 12): a generated 1920×1080 JPEG → `?w=320&format=webp`, through the media functions
 * (parseVariantQuery + resolveVariant + renderVariant) against sharp alone doing the same resize and the same
 * WebP encode on the same bytes. Goal: ≤ 1.25× sharp alone. The rows run interleaved, so a busy neighbour on
 * the machine slows every row alike; each row reports its median and its ratio to the baseline.
 *
 *   npm run bench:variants [-- runs]
 *
 * Each row is one exported BenchCase: the HTTP service row ("through GET /images/:filename?w=320&format=webp",
 * with the storage put of a cold render) is added later by appending a case that does the request in `run`.
 */
import sharp from 'sharp';
import { renderVariant, VARIANT_ENCODERS } from '../../src/modules/media/render-variant';
import { parseVariantQuery, resolveVariant } from '../../src/modules/media/variant-params';

export interface BenchCase {
  label: string;
  /** One cold render of the variant from the original's bytes; resolves when the variant bytes exist. */
  run(original: Buffer): Promise<unknown>;
}

const WIDTH = 1920;
const HEIGHT = 1080;
const QUERY = { w: '320', format: 'webp' };

/** The baseline: what a developer would write with sharp for this variant, with our WebP settings. */
export const sharpAlone: BenchCase = {
  label: 'sharp alone (resize 320 + webp)',
  run: (original) => VARIANT_ENCODERS.webp(sharp(original).resize(320)).toBuffer(),
};

export const mediaFunctions: BenchCase = {
  label: 'parse + resolve + renderVariant',
  run: (original) => {
    const resolved = resolveVariant(parseVariantQuery(QUERY), { sourceMime: 'image/jpeg', accept: '*/*' });
    if (resolved.kind !== 'variant') {
      throw new Error('the bench query must select a variant');
    }
    return renderVariant(original, 'image/jpeg', resolved.spec);
  },
};

export const CASES: BenchCase[] = [sharpAlone, mediaFunctions];

/** A photo-like test image: smooth gradients, a bright ellipse, a ripple and some grain (as bench/moderation). */
export function syntheticJpeg(): Promise<Buffer> {
  const data = Buffer.alloc(WIDTH * HEIGHT * 3);
  let seed = 7;
  for (let y = 0; y < HEIGHT; y++) {
    for (let x = 0; x < WIDTH; x++) {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      const grain = (seed >>> 28) - 8;
      const k = Math.max(0, 1 - Math.hypot((x - WIDTH / 2) / 500, (y - HEIGHT / 2) / 350));
      const ripple = 30 * Math.sin(x / 17) * Math.cos(y / 23);
      const i = (y * WIDTH + x) * 3;
      data[i] = Math.min(255, Math.max(0, 40 + (150 * x) / WIDTH + 60 * k + grain + ripple));
      data[i + 1] = Math.min(255, Math.max(0, 60 + (100 * y) / HEIGHT + 50 * k + grain));
      data[i + 2] = Math.min(255, Math.max(0, 120 - 40 * k + grain - ripple));
    }
  }
  return sharp(data, { raw: { width: WIDTH, height: HEIGHT, channels: 3 } })
    .jpeg({ quality: 85 })
    .toBuffer();
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Medians in ms per case, the cases interleaved run by run after one warm-up each. */
export async function measure(cases: BenchCase[], original: Buffer, runs: number): Promise<number[]> {
  const times: number[][] = cases.map(() => []);
  for (const bench of cases) {
    await bench.run(original);
  }
  for (let i = 0; i < runs; i++) {
    for (const [c, bench] of cases.entries()) {
      const started = process.hrtime.bigint();
      await bench.run(original);
      times[c].push(Number(process.hrtime.bigint() - started) / 1e6);
    }
  }
  return times.map(median);
}

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 31);
  const original = await syntheticJpeg();
  console.log(
    `variants bench: ${WIDTH}×${HEIGHT} JPEG (${original.length} B) → w=320&format=webp, ${runs} runs, medians; ` +
      `sharp ${sharp.versions.sharp}, libvips ${sharp.versions.vips}, ${sharp.concurrency()} libvips threads`,
  );
  const medians = await measure(CASES, original, runs);
  const baseline = medians[0];
  for (const [c, bench] of CASES.entries()) {
    const ratio = (medians[c] / baseline).toFixed(2);
    console.log(`  ${bench.label.padEnd(40)}${medians[c].toFixed(2).padStart(9)} ms  ${ratio}×`);
  }
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e);
    process.exitCode = 1;
  });
}

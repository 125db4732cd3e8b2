import type { RawImage } from '../media/decode';

export type { RawImage };

/**
 * The classifier's input side (pixels). An input is float32 RGB, NHWC, 0…255 and unrounded: the bilinear
 * resize exactly as nsfwjs computes it (the model divides by 255 itself).
 */
export const MODEL_INPUT_SIZE = 224;
/** Values (not bytes) in one model input: 224 × 224 × 3. */
export const MODEL_INPUT_VALUES = MODEL_INPUT_SIZE * MODEL_INPUT_SIZE * 3;

/** White and black: what a viewer sees behind transparent pixels depends on the page, so both are checked. */
export const BACKGROUNDS = [255, 0] as const;

export function hasAlpha(image: RawImage): boolean {
  return image.channels === 2 || image.channels === 4;
}

/** Where each output column (or row) samples the source: the two neighbours (as element offsets) and the weight. */
interface Taps {
  near: Int32Array;
  far: Int32Array;
  frac: Float64Array;
}

/** Align-corners taps for `size` outputs over `length` source pixels, `stride` elements apart. */
function taps(length: number, size: number, stride: number): Taps {
  const ratio = size > 1 ? (length - 1) / (size - 1) : 0;
  const near = new Int32Array(size);
  const far = new Int32Array(size);
  const frac = new Float64Array(size);
  for (let i = 0; i < size; i++) {
    const f = i * ratio;
    near[i] = Math.floor(f) * stride;
    far[i] = Math.min(length - 1, Math.ceil(f)) * stride;
    frac[i] = f - Math.floor(f);
  }
  return { near, far, frac };
}

interface Resized {
  colour: Float64Array;
  coverage: Float64Array | null;
}

/**
 * The bilinear resize (aligned corners) of a frame, split so that any background can be laid under it afterwards at
 * little cost: per output value the resized colour premultiplied by alpha, and per output pixel the resized alpha
 * (coverage, 0…1). Over a grey level `b` the output is `colour + b × (1 − coverage)` — the same blend, done once for
 * every background instead of once per background. Without alpha, `colour` is the resize itself and coverage is null.
 * `rows(from, to)` computes those output rows; every row must be computed once before the result is read.
 */
function resizer(src: RawImage, size: number): Resized & { rows: (from: number, to: number) => void } {
  const { data, width, height, channels } = src;
  const alpha = hasAlpha(src);
  // Source channel of output R, G, B: grey images read their one channel three times.
  const grey = (alpha ? channels - 1 : channels) === 1;
  const g = grey ? 0 : 1;
  const b = grey ? 0 : 2;
  const a = channels - 1;
  const cols = taps(width, size, channels);
  const lines = taps(height, size, width * channels);
  const colour = new Float64Array(size * size * 3);
  const coverage = alpha ? new Float64Array(size * size) : null;
  // The lerps are written out as tf.image.resizeBilinear computes them: top and bottom pair along x, then along y.
  const lerp = (p00: number, p01: number, p10: number, p11: number, dx: number, dy: number): number => {
    const upper = p00 + (p01 - p00) * dx;
    const lower = p10 + (p11 - p10) * dx;
    return upper + (lower - upper) * dy;
  };
  const rows = (from: number, to: number): void => {
    for (let r = from; r < to; r++) {
      const top = lines.near[r];
      const bottom = lines.far[r];
      const dy = lines.frac[r];
      for (let col = 0; col < size; col++) {
        const dx = cols.frac[col];
        const i00 = top + cols.near[col];
        const i01 = top + cols.far[col];
        const i10 = bottom + cols.near[col];
        const i11 = bottom + cols.far[col];
        const o = (r * size + col) * 3;
        if (coverage === null) {
          colour[o] = lerp(data[i00], data[i01], data[i10], data[i11], dx, dy);
          colour[o + 1] = lerp(data[i00 + g], data[i01 + g], data[i10 + g], data[i11 + g], dx, dy);
          colour[o + 2] = lerp(data[i00 + b], data[i01 + b], data[i10 + b], data[i11 + b], dx, dy);
          continue;
        }
        const a00 = data[i00 + a] / 255;
        const a01 = data[i01 + a] / 255;
        const a10 = data[i10 + a] / 255;
        const a11 = data[i11 + a] / 255;
        coverage[r * size + col] = lerp(a00, a01, a10, a11, dx, dy);
        colour[o] = lerp(data[i00] * a00, data[i01] * a01, data[i10] * a10, data[i11] * a11, dx, dy);
        colour[o + 1] = lerp(
          data[i00 + g] * a00,
          data[i01 + g] * a01,
          data[i10 + g] * a10,
          data[i11 + g] * a11,
          dx,
          dy,
        );
        colour[o + 2] = lerp(
          data[i00 + b] * a00,
          data[i01 + b] * a01,
          data[i10 + b] * a10,
          data[i11 + b] * a11,
          dx,
          dy,
        );
      }
    }
  };
  return { colour, coverage, rows };
}

function resizeOnce(src: RawImage, size: number): Resized {
  const resized = resizer(src, size);
  resized.rows(0, size);
  return resized;
}

/** Writes a resizeOnce() result laid over grey level `background` into `out` at `offset`. */
function overBackground(
  { colour, coverage }: Resized,
  background: number,
  out: Float32Array,
  offset: number,
): void {
  if (coverage === null) {
    out.set(colour, offset);
    return;
  }
  for (let p = 0, o = 0; p < coverage.length; p++, o += 3) {
    const show = background * (1 - coverage[p]);
    out[offset + o] = colour[o] + show;
    out[offset + o + 1] = colour[o + 1] + show;
    out[offset + o + 2] = colour[o + 2] + show;
  }
}

/**
 * Resizes to size×size (aspect not kept) with bilinear interpolation and aligned corners, the way nsfwjs
 * prepares its input, writing RGB (0…255, not rounded) into `out` at `offset`; this is what the model gets,
 * and it matches tf.image.resizeBilinear(alignCorners = true) to float32 precision. A size×size source is
 * copied unchanged (nsfwjs skips the resize then). Transparent pixels are composited over a grey level
 * `background` (what a viewer would see); only the sampled pixels are read, so this stays cheap for large images.
 */
export function resizeToModelInput(
  src: RawImage,
  background: number,
  out: Float32Array,
  offset = 0,
  size = MODEL_INPUT_SIZE,
): void {
  overBackground(resizeOnce(src, size), background, out, offset);
}

const sameValues = (a: Float32Array, b: Float32Array): boolean =>
  Buffer.compare(
    Buffer.from(a.buffer, a.byteOffset, a.byteLength),
    Buffer.from(b.buffer, b.byteOffset, b.byteLength),
  ) === 0;

/** The inputs over each background: one when the frame has no alpha, or when both came out identical. */
function inputsOver(resized: Resized): Float32Array[] {
  const first = new Float32Array(MODEL_INPUT_VALUES);
  overBackground(resized, BACKGROUNDS[0], first, 0);
  if (resized.coverage === null) {
    return [first];
  }
  const second = new Float32Array(MODEL_INPUT_VALUES);
  overBackground(resized, BACKGROUNDS[1], second, 0);
  return sameValues(first, second) ? [first] : [first, second];
}

/**
 * The model inputs for one frame: one, or two (over white and over black) when the frame has transparency
 * that shows in the sampled pixels; identical inputs are not repeated. The frame is resized once for both.
 */
export function frameToModelInputs(frame: RawImage): Float32Array[] {
  return inputsOver(resizeOnce(frame, MODEL_INPUT_SIZE));
}

/**
 * Above this many source pixels, frameToModelInputsAsync lets the event loop turn every ROWS_PER_TURN output rows:
 * the samples of a large frame are far apart in memory, and resizing a 27 MP frame took 15–30 ms in one go during a
 * burst of big uploads (cache misses), a stall every other request waited behind.
 */
const YIELD_ABOVE_PIXELS = 4_000_000;
const ROWS_PER_TURN = 28;

/** frameToModelInputs for the event loop's thread: the same values, with turns of the loop in between for large frames. */
export async function frameToModelInputsAsync(frame: RawImage): Promise<Float32Array[]> {
  const resized = resizer(frame, MODEL_INPUT_SIZE);
  const step = frame.width * frame.height > YIELD_ABOVE_PIXELS ? ROWS_PER_TURN : MODEL_INPUT_SIZE;
  for (let from = 0; from < MODEL_INPUT_SIZE; from += step) {
    if (from > 0) {
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    resized.rows(from, Math.min(MODEL_INPUT_SIZE, from + step));
  }
  return inputsOver(resized);
}

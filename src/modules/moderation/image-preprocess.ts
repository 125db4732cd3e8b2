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

/** One source row resized along x: per output column the colour (premultiplied by alpha) and the alpha (coverage). */
interface RowAlongX {
  /** The source row's element offset; -1 before any. */
  at: number;
  colour: Float64Array;
  coverage: Float64Array;
}

/**
 * One resize of a frame into model inputs (resizer), written by output rows (writeRows). The work is done by the
 * module-level functions below, given this state, rather than by closures made for each frame: a closure's call of
 * another closure made with it gave V8 a new call target for every frame, and V8 threw the optimized code away for it
 * ("wrong call target", seen with --trace-deopt). In the service, the resize's own time in 30 1080p RGBA PNG uploads
 * fell from 394 ms to 130 ms with this (CPU profiles): about 8 ms of the event loop per upload.
 */
interface Resize {
  data: Uint8Array;
  alpha: boolean;
  /** Source channel of output G and B (grey images read their one channel three times), and of alpha. */
  g: number;
  b: number;
  a: number;
  size: number;
  cols: Taps;
  lines: Taps;
  firstBackground: number;
  secondBackground: number;
  /** A frame with alpha written over both backgrounds. */
  both: boolean;
  first: Float32Array;
  firstOffset: number;
  second: Float32Array | null;
  secondOffset: number;
  upper: RowAlongX;
  lower: RowAlongX;
}

/**
 * The bilinear resize (aligned corners) of a frame, written straight into float32 model inputs: into `first` at
 * `firstOffset`, and — for a frame with alpha — over a second background into `second` at `secondOffset`.
 *
 * It computes what tf.image.resizeBilinear does, in its order — each pair of taps along x (top row, bottom row), then
 * along y — so the values are the same to the bit; but a source row's pass along x is done once and kept while the
 * output rows that need it follow one another (when enlarging, many do), and the colour premultiplied by alpha and
 * the coverage (resized alpha, 0…1) are computed once per output pixel: over a grey level `b` the value is
 * `colour + b × (1 − coverage)`, so the second background costs a few additions, not a second resize. Without alpha the
 * resize itself is written (backgrounds do not apply) and `second` is unused.
 * `writeRows(resize, from, to)` writes those output rows, in order; every row must be written once before the inputs
 * are read.
 */
function resizer(
  src: RawImage,
  size: number,
  [firstBackground, secondBackground]: readonly [number, number?],
  first: Float32Array,
  firstOffset: number,
  second: Float32Array | null,
  secondOffset: number,
): Resize {
  const { data, width, height, channels } = src;
  const alpha = hasAlpha(src);
  const grey = (alpha ? channels - 1 : channels) === 1;
  const row = (): RowAlongX => ({
    at: -1,
    colour: new Float64Array(size * 3),
    coverage: new Float64Array(alpha ? size : 0),
  });
  return {
    data,
    alpha,
    g: grey ? 0 : 1,
    b: grey ? 0 : 2,
    a: channels - 1,
    size,
    cols: taps(width, size, channels),
    lines: taps(height, size, width * channels),
    firstBackground,
    secondBackground: secondBackground ?? 0,
    both: alpha && second !== null && secondBackground !== undefined,
    first,
    firstOffset,
    second,
    secondOffset,
    upper: row(),
    lower: row(),
  };
}

/** The source row at element offset `at`, along x, into `into`. */
function alongX(resize: Resize, at: number, into: RowAlongX): void {
  const { data, alpha, g, b, a, size, cols } = resize;
  into.at = at;
  const { colour, coverage } = into;
  for (let col = 0; col < size; col++) {
    const dx = cols.frac[col];
    const n = at + cols.near[col];
    const f = at + cols.far[col];
    const o = col * 3;
    if (!alpha) {
      colour[o] = data[n] + (data[f] - data[n]) * dx;
      colour[o + 1] = data[n + g] + (data[f + g] - data[n + g]) * dx;
      colour[o + 2] = data[n + b] + (data[f + b] - data[n + b]) * dx;
      continue;
    }
    const an = data[n + a] / 255;
    const af = data[f + a] / 255;
    coverage[col] = an + (af - an) * dx;
    colour[o] = data[n] * an + (data[f] * af - data[n] * an) * dx;
    colour[o + 1] = data[n + g] * an + (data[f + g] * af - data[n + g] * an) * dx;
    colour[o + 2] = data[n + b] * an + (data[f + b] * af - data[n + b] * an) * dx;
  }
}

/** Writes output rows `from` to `to` (exclusive) of the resize, in order. */
function writeRows(resize: Resize, from: number, to: number): void {
  const { alpha, size, lines, firstBackground, secondBackground, both, first, firstOffset, secondOffset } =
    resize;
  const second = resize.second as Float32Array;
  for (let r = from; r < to; r++) {
    const top = lines.near[r];
    const bottom = lines.far[r];
    const dy = lines.frac[r];
    if (resize.upper.at !== top) {
      if (resize.lower.at === top) {
        const upper = resize.lower;
        resize.lower = resize.upper;
        resize.upper = upper;
      } else {
        alongX(resize, top, resize.upper);
      }
    }
    if (bottom !== top && resize.lower.at !== bottom) {
      alongX(resize, bottom, resize.lower);
    }
    const { colour: up, coverage: upCover } = resize.upper;
    const { colour: down, coverage: downCover } = bottom === top ? resize.upper : resize.lower;
    const out = r * size * 3;
    for (let col = 0, o = 0; col < size; col++, o += 3) {
      const red = up[o] + (down[o] - up[o]) * dy;
      const green = up[o + 1] + (down[o + 1] - up[o + 1]) * dy;
      const blue = up[o + 2] + (down[o + 2] - up[o + 2]) * dy;
      if (!alpha) {
        first[firstOffset + out + o] = red;
        first[firstOffset + out + o + 1] = green;
        first[firstOffset + out + o + 2] = blue;
        continue;
      }
      const uncovered = 1 - (upCover[col] + (downCover[col] - upCover[col]) * dy);
      let show = firstBackground * uncovered;
      first[firstOffset + out + o] = red + show;
      first[firstOffset + out + o + 1] = green + show;
      first[firstOffset + out + o + 2] = blue + show;
      if (both) {
        show = secondBackground * uncovered;
        second[secondOffset + out + o] = red + show;
        second[secondOffset + out + o + 1] = green + show;
        second[secondOffset + out + o + 2] = blue + show;
      }
    }
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
  writeRows(resizer(src, size, [background], out, offset, null, 0), 0, size);
}

/** Whether `count` values of `a` from `aOffset` and of `b` from `bOffset` are the same bits. */
const sameValues = (
  a: Float32Array,
  aOffset: number,
  b: Float32Array,
  bOffset: number,
  count: number,
): boolean =>
  Buffer.compare(
    Buffer.from(a.buffer, a.byteOffset + aOffset * 4, count * 4),
    Buffer.from(b.buffer, b.byteOffset + bOffset * 4, count * 4),
  ) === 0;

/**
 * The model inputs for one frame: one, or two (over white and over black) when the frame has transparency
 * that shows in the sampled pixels; identical inputs are not repeated. The frame is resized once for both.
 */
export function frameToModelInputs(frame: RawImage): Float32Array[] {
  const first = new Float32Array(MODEL_INPUT_VALUES);
  const second = hasAlpha(frame) ? new Float32Array(MODEL_INPUT_VALUES) : null;
  writeRows(resizer(frame, MODEL_INPUT_SIZE, BACKGROUNDS, first, 0, second, 0), 0, MODEL_INPUT_SIZE);
  return second === null || sameValues(first, 0, second, 0, MODEL_INPUT_VALUES) ? [first] : [first, second];
}

/** How many model inputs a frame may need (what writeModelInputsAsync may write): two for a frame with alpha. */
export function modelInputSlots(frame: RawImage): number {
  return hasAlpha(frame) ? 2 : 1;
}

/**
 * Above this many source pixels, writeModelInputsAsync lets the event loop turn every ROWS_PER_TURN output rows:
 * the samples of a large frame are far apart in memory, and resizing a 27 MP frame took 15–30 ms in one go during a
 * burst of big uploads (cache misses), a stall every other request waited behind.
 */
const YIELD_ABOVE_PIXELS = 4_000_000;
const ROWS_PER_TURN = 28;

/**
 * frameToModelInputs for the event loop's thread, written into `batch` from `offset` (room for
 * modelInputSlots(frame) inputs): the same values, with turns of the loop in between for large frames. Returns how
 * many inputs it wrote (an input over black identical to the one over white is not kept).
 */
export async function writeModelInputsAsync(
  frame: RawImage,
  batch: Float32Array,
  offset: number,
): Promise<number> {
  const slots = modelInputSlots(frame);
  const secondOffset = offset + MODEL_INPUT_VALUES;
  const resize = resizer(
    frame,
    MODEL_INPUT_SIZE,
    BACKGROUNDS,
    batch,
    offset,
    slots > 1 ? batch : null,
    secondOffset,
  );
  const step = frame.width * frame.height > YIELD_ABOVE_PIXELS ? ROWS_PER_TURN : MODEL_INPUT_SIZE;
  for (let from = 0; from < MODEL_INPUT_SIZE; from += step) {
    if (from > 0) {
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    writeRows(resize, from, Math.min(MODEL_INPUT_SIZE, from + step));
  }
  return slots > 1 && !sameValues(batch, offset, batch, secondOffset, MODEL_INPUT_VALUES) ? 2 : 1;
}

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

/**
 * Resizes to size×size (aspect not kept) with bilinear interpolation and aligned corners, the way nsfwjs
 * prepares its input, writing RGB (0…255, not rounded) into `out` at `offset`; this is what the model gets,
 * and it matches tf.image.resizeBilinear(alignCorners = true) to float32 precision. A size×size source is
 * copied unchanged (nsfwjs skips the resize then). Transparent pixels are composited over a grey level
 * `background` first (what a viewer would see); only the sampled pixels are composited, so this stays cheap
 * for large images.
 */
export function resizeToModelInput(
  src: RawImage,
  background: number,
  out: Float32Array,
  offset = 0,
  size = MODEL_INPUT_SIZE,
): void {
  const { data, width, height, channels } = src;
  const alpha = hasAlpha(src);
  const grey = (alpha ? channels - 1 : channels) === 1;
  const rowRatio = size > 1 ? (height - 1) / (size - 1) : 0;
  const colRatio = size > 1 ? (width - 1) / (size - 1) : 0;

  const left = new Int32Array(size);
  const right = new Int32Array(size);
  const colFrac = new Float64Array(size);
  for (let col = 0; col < size; col++) {
    const fx = col * colRatio;
    left[col] = Math.floor(fx) * channels;
    right[col] = Math.min(width - 1, Math.ceil(fx)) * channels;
    colFrac[col] = fx - Math.floor(fx);
  }

  // Each sample is composited over the background as it is read: (1 − alpha) of the background shows through.
  const alphaAt = (i: number): number => (alpha ? data[i + channels - 1] / 255 : 1);
  for (let r = 0; r < size; r++) {
    const fy = r * rowRatio;
    const top = Math.floor(fy) * width * channels;
    const bottom = Math.min(height - 1, Math.ceil(fy)) * width * channels;
    const dy = fy - Math.floor(fy);
    for (let col = 0; col < size; col++) {
      const dx = colFrac[col];
      const i00 = top + left[col];
      const i01 = top + right[col];
      const i10 = bottom + left[col];
      const i11 = bottom + right[col];
      const a00 = alphaAt(i00);
      const a01 = alphaAt(i01);
      const a10 = alphaAt(i10);
      const a11 = alphaAt(i11);
      const o = offset + (r * size + col) * 3;
      for (let c = 0; c < 3; c++) {
        const k = grey ? 0 : c;
        const tl = data[i00 + k] * a00 + background * (1 - a00);
        const tr = data[i01 + k] * a01 + background * (1 - a01);
        const bl = data[i10 + k] * a10 + background * (1 - a10);
        const br = data[i11 + k] * a11 + background * (1 - a11);
        const upper = tl + (tr - tl) * dx;
        const lower = bl + (br - bl) * dx;
        const v = upper + (lower - upper) * dy;
        out[o + c] = v;
      }
    }
  }
}

const sameValues = (a: Float32Array, b: Float32Array): boolean =>
  Buffer.compare(
    Buffer.from(a.buffer, a.byteOffset, a.byteLength),
    Buffer.from(b.buffer, b.byteOffset, b.byteLength),
  ) === 0;

/**
 * The model inputs for one frame: one, or two (over white and over black) when the frame has transparency
 * that shows in the sampled pixels; identical inputs are not repeated.
 */
export function frameToModelInputs(frame: RawImage): Float32Array[] {
  const first = new Float32Array(MODEL_INPUT_VALUES);
  resizeToModelInput(frame, BACKGROUNDS[0], first);
  if (!hasAlpha(frame)) {
    return [first];
  }
  const second = new Float32Array(MODEL_INPUT_VALUES);
  resizeToModelInput(frame, BACKGROUNDS[1], second);
  return sameValues(first, second) ? [first] : [first, second];
}

import sharp from 'sharp';

/** The classifier's input side (pixels); inputs are uint8 RGB, NHWC. */
export const MODEL_INPUT_SIZE = 224;
export const MODEL_INPUT_BYTES = MODEL_INPUT_SIZE * MODEL_INPUT_SIZE * 3;

/** Decoded pixels: 8-bit, interleaved, 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA) channels. */
export interface RawImage {
  data: Uint8Array;
  width: number;
  height: number;
  channels: number;
}

/** White and black: what a viewer sees behind transparent pixels depends on the page, so both are checked. */
export const BACKGROUNDS = [255, 0] as const;

/** The frames to classify: first, last and evenly spaced ones between, at most `max`. */
export function pickFrames(pages: number, max: number): number[] {
  const count = Math.max(1, Math.min(pages, max));
  if (count === 1) {
    return [0];
  }
  const picked = new Set<number>();
  for (let i = 0; i < count; i++) {
    picked.add(Math.round((i * (pages - 1)) / (count - 1)));
  }
  return [...picked];
}

/**
 * Decodes the chosen frames at full resolution with EXIF orientation applied, as 8-bit sRGB(A). Resizing is left
 * to resizeToModelInput so it matches the reference (tf.image.resizeBilinear with align corners) sample for sample.
 */
export async function decodeFrames(image: Buffer, maxFrames: number): Promise<RawImage[]> {
  const { pages = 1 } = await sharp(image).metadata();
  const frames: RawImage[] = [];
  for (const page of pickFrames(pages, maxFrames)) {
    const { data, info } = await sharp(image, { page, pages: 1 })
      .rotate()
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    frames.push({ data, width: info.width, height: info.height, channels: info.channels });
  }
  return frames;
}

export function hasAlpha(image: RawImage): boolean {
  return image.channels === 2 || image.channels === 4;
}

/**
 * Resizes to size×size (aspect not kept) with bilinear interpolation and aligned corners, the way nsfwjs prepares
 * its input, writing RGB into `out` at `offset`: rounded into a Uint8Array (the model's input), exact into a
 * Float32Array (tests compare that with tf.image.resizeBilinear). Transparent pixels are composited over a grey
 * level `background` first (what a viewer would see); only the sampled pixels are composited, so this stays cheap
 * for large images.
 */
export function resizeToModelInput(
  src: RawImage,
  background: number,
  out: Uint8Array | Float32Array,
  offset = 0,
  size = MODEL_INPUT_SIZE,
): void {
  const round = out instanceof Uint8Array;
  const { data, width, height, channels } = src;
  const alpha = hasAlpha(src);
  const colourChannels = alpha ? channels - 1 : channels;
  const rowRatio = size > 1 ? (height - 1) / (size - 1) : 0;
  const colRatio = size > 1 ? (width - 1) / (size - 1) : 0;
  const pixel = new Float64Array(12);

  const load = (slot: number, x: number, y: number): void => {
    const i = (y * width + x) * channels;
    const a = alpha ? data[i + channels - 1] / 255 : 1;
    for (let c = 0; c < 3; c++) {
      const v = data[i + (colourChannels === 1 ? 0 : c)];
      pixel[slot * 3 + c] = a === 1 ? v : v * a + background * (1 - a);
    }
  };

  for (let r = 0; r < size; r++) {
    const fy = r * rowRatio;
    const y0 = Math.floor(fy);
    const y1 = Math.min(height - 1, Math.ceil(fy));
    const dy = fy - y0;
    for (let col = 0; col < size; col++) {
      const fx = col * colRatio;
      const x0 = Math.floor(fx);
      const x1 = Math.min(width - 1, Math.ceil(fx));
      const dx = fx - x0;
      load(0, x0, y0);
      load(1, x1, y0);
      load(2, x0, y1);
      load(3, x1, y1);
      const o = offset + (r * size + col) * 3;
      for (let c = 0; c < 3; c++) {
        const top = pixel[c] + (pixel[3 + c] - pixel[c]) * dx;
        const bottom = pixel[6 + c] + (pixel[9 + c] - pixel[6 + c]) * dx;
        const v = top + (bottom - top) * dy;
        out[o + c] = round ? Math.round(v) : v;
      }
    }
  }
}

/**
 * The model inputs for one frame: one, or two (over white and over black) when the frame has transparency that
 * shows in the sampled pixels; identical inputs are not repeated.
 */
export function frameToModelInputs(frame: RawImage): Uint8Array[] {
  const first = new Uint8Array(MODEL_INPUT_BYTES);
  resizeToModelInput(frame, BACKGROUNDS[0], first);
  if (!hasAlpha(frame)) {
    return [first];
  }
  const second = new Uint8Array(MODEL_INPUT_BYTES);
  resizeToModelInput(frame, BACKGROUNDS[1], second);
  return Buffer.compare(first, second) === 0 ? [first] : [first, second];
}

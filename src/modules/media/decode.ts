import sharp, { type SharpOptions } from 'sharp';
import { ownDecoded } from './frame-memory';
import { IMAGE_LIMITS } from './image-limits';

/**
 * The one set of load options for every decode of an upload (the validity check and the review frames).
 * failOn 'error', not sharp's default 'warning': libjpeg warns about benign quirks common in camera files
 * (extraneous bytes before a marker); truncation and decode errors still fail.
 */
export const LOAD: SharpOptions = { failOn: 'error', limitInputPixels: IMAGE_LIMITS.maxPixels };

/** Decoded pixels: 8-bit, interleaved, 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA) channels. */
export interface RawImage {
  data: Uint8Array;
  width: number;
  height: number;
  channels: number;
}

/**
 * A frame already turned into the classifier's inputs (by the heavy-image process, which decodes large images away
 * from the service): what the classifier would have made of the RawImage.
 */
export interface PreparedFrame {
  inputs: Float32Array[];
}

/** A frame for the review: decoded pixels, or their classifier inputs. */
export type ReviewFrame = RawImage | PreparedFrame;

/** The frames to review: first, last and evenly spaced ones between, at most `max`. */
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
 * Decodes one frame at full resolution with EXIF orientation applied, as 8-bit sRGB(A): what a viewer sees, and
 * what the review classifies. Every pixel of the frame is decoded, so this also proves the frame sound. A frame of more
 * than `maxPixels` pixels fails before any pixel is decoded.
 */
export async function decodeFrame(
  image: Buffer,
  page: number,
  timeout?: { seconds: number },
  maxPixels: number = IMAGE_LIMITS.maxPixels,
): Promise<RawImage> {
  let pipeline = sharp(image, { ...LOAD, limitInputPixels: maxPixels, page, pages: 1 });
  if (timeout) {
    pipeline = pipeline.timeout(timeout);
  }
  const { data, info } = await pipeline
    .rotate()
    .toColourspace('srgb')
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { data: ownDecoded(data), width: info.width, height: info.height, channels: info.channels };
}

/**
 * Decodes the frames pickFrames chooses (at most `maxFrames`), one at a time so no more full-resolution frames
 * exist than the review keeps. Resizing is left to the classifier so it matches the reference
 * (tf.image.resizeBilinear with align corners) sample for sample.
 */
export async function decodeFrames(
  image: Buffer,
  maxFrames: number,
  options: { pages?: number; timeout?: { seconds: number } } = {},
): Promise<RawImage[]> {
  const pages = options.pages ?? (await sharp(image, LOAD).metadata()).pages ?? 1;
  const frames: RawImage[] = [];
  for (const page of pickFrames(pages, maxFrames)) {
    frames.push(await decodeFrame(image, page, options.timeout));
  }
  return frames;
}

/**
 * Decodes every frame of an animation once, as 8-bit sRGB(A) (what decodeFrame yields for each page), and returns the
 * frames pickFrames chooses as views of that one buffer. Every pixel of every frame is decoded, so this also proves
 * the whole animation sound. Memory: width × height × frames × channels; callers keep it for small animations.
 */
export async function decodeAllFrames(
  image: Buffer,
  maxFrames: number,
  timeout?: { seconds: number },
): Promise<RawImage[]> {
  let pipeline = sharp(image, { ...LOAD, pages: -1 });
  if (timeout) {
    pipeline = pipeline.timeout(timeout);
  }
  const { data, info } = await pipeline.toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  ownDecoded(data);
  const height = info.pageHeight ?? info.height;
  const pages = Math.max(1, Math.round(info.height / height));
  const frameBytes = info.width * height * info.channels;
  return pickFrames(pages, maxFrames).map((page) => ({
    data: data.subarray(page * frameBytes, (page + 1) * frameBytes),
    width: info.width,
    height,
    channels: info.channels,
  }));
}

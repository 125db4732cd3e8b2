import { open, readFile } from 'node:fs/promises';
import sharp, { type Sharp, type SharpOptions } from 'sharp';
import { sniffImageType } from './image-type';
import { MediaError } from './media-error';
import { orientFrames } from './orient';
import {
  mimeOfFormat,
  type OutputFormat,
  type SourceMime,
  type VariantMime,
  type VariantSpec,
} from './variant-params';

export interface RenderLimits {
  /** Pixels sharp may decode, all frames together (API.md, `POST /api/v1/upload`: 100 MP). */
  maxInputPixels: number;
  /** Pixels a variant may have, all frames together; an animation too large at the asked size is refused. */
  maxOutputPixels: number;
  /** sharp's per-render timeout: a render still running after this many seconds is abandoned. */
  timeoutSeconds: number;
}

export const DEFAULT_RENDER_LIMITS: RenderLimits = {
  maxInputPixels: 100_000_000,
  maxOutputPixels: 100_000_000,
  timeoutSeconds: 30,
};

export interface RenderedVariant {
  data: Buffer;
  mime: VariantMime;
  /** Of one frame. */
  width: number;
  height: number;
  /** 1 for a still; every frame of the original for an animated WebP or GIF variant. */
  pages: number;
}

const SHARP_FORMAT: Record<SourceMime, keyof sharp.FormatEnum> = {
  'image/png': 'png',
  'image/jpeg': 'jpeg',
  'image/gif': 'gif',
  'image/webp': 'webp',
  'image/avif': 'heif',
};

/** The original to render from: its bytes, or its file on this machine (libvips reads it; no copy through JS). */
export type RenderSource = Buffer | { path: string };

/** Bytes the type sniffer needs from the start of a file (see sniffImageType). */
const SNIFF_BYTES = 4100;

/** What the upload's row already says of the original (recorded when it was uploaded). */
export interface KnownOriginal {
  /** Frames: 1 for a still. */
  frames: number;
}

/** Loop count and frame delays, carried over when frames are rebuilt from raw pixels. */
interface Animation {
  loop?: number;
  delay?: number[];
}

/**
 * Encoder settings chosen for derived copies (the original stays the reference, so below the upload path's q92):
 * AVIF effort 2, because effort 3 doubles the time of a 320 px thumbnail and effort 4 is about ten times slower,
 * for 10–30 % fewer bytes; WebP at libwebp's defaults; JPEG without mozjpeg, which is 5–10× slower at large sizes.
 */
export const VARIANT_ENCODERS: Record<OutputFormat, (image: Sharp, animation?: Animation) => Sharp> = {
  webp: (image, animation) => image.webp({ quality: 80, effort: 4, ...animation }),
  avif: (image) => image.avif({ quality: 50, effort: 2 }),
  jpeg: (image) => image.jpeg({ quality: 82, mozjpeg: false }),
  png: (image) => image.png({ compressionLevel: 6 }),
  gif: (image, animation) => image.gif({ ...animation }),
};

/**
 * Renders one variant of an original (API.md Part 3, "Variants on the direct link").
 *
 * - `inside`: keeps the aspect ratio within w×h (or the one side given) and never enlarges.
 * - `cover`: exactly w×h, enlarging a smaller original, cropped with sharp's `attention` strategy (the region
 *   with the most luminance frequency, saturation and skin tone); libvips has no smart crop for a multi-page
 *   image, so an animation is cropped around its centre.
 * - EXIF orientation is applied (stored originals are already upright; this only guards older ones).
 * - Output is 8-bit sRGB, converted through the original's ICC profile, with no profile embedded (untagged is
 *   sRGB to every browser) and no EXIF, XMP or IPTC. A JPEG variant of a transparent image is flattened on white.
 * - An animated GIF or WebP stays animated as WebP (or as GIF when the variant keeps the GIF format), every frame
 *   resized, delays and loop kept, if frames × w × h stays within `maxOutputPixels`; as PNG, JPEG or AVIF it is
 *   its first frame.
 *
 * Throws MediaError: `processing_failed` when the bytes are not a decodable image of `sourceMime` or exceed
 * `maxInputPixels`; `bad_request` when an animation would exceed `maxOutputPixels` at the asked size;
 * `unavailable` when the render runs past `timeoutSeconds`. A file that cannot be read is `processing_failed` too:
 * the caller, which knows whether the file should be there, says what a missing one means.
 */
export async function renderVariant(
  source: RenderSource,
  sourceMime: SourceMime,
  spec: VariantSpec,
  limits: RenderLimits = DEFAULT_RENDER_LIMITS,
  known?: KnownOriginal,
): Promise<RenderedVariant> {
  try {
    const still = known?.frames === 1 ? await renderKnownStill(source, sourceMime, spec, limits) : null;
    return (
      still ??
      (await render(Buffer.isBuffer(source) ? source : await readFile(source.path), sourceMime, spec, limits))
    );
  } catch (error) {
    throw toMediaError(error);
  }
}

/** What a failed render means for the client: a sharp timeout is load (503), anything else the image's fault. */
export function toMediaError(error: unknown): MediaError {
  if (error instanceof MediaError) {
    return error;
  }
  if (error instanceof Error && error.message.startsWith('timeout')) {
    return new MediaError('unavailable', 'Rendering this variant took too long; try again later.', {
      cause: error,
    });
  }
  if (error instanceof Error && error.message.includes('exceeds pixel limit')) {
    return new MediaError('processing_failed', 'The image exceeds the pixel limit (all frames together).', {
      cause: error,
    });
  }
  // Whatever sharp throws on damaged bytes: the caller logs the cause, the client reads the sentence.
  return new MediaError('processing_failed', 'The image could not be decoded to render this variant.', {
    cause: error,
  });
}

/**
 * A still whose upload row says so: rendered without reading its header first (metadata() is a round trip through
 * libvips, about 4 % of a 320 px thumbnail of a 1080p JPEG). The type check is the sniffer's on the first bytes
 * instead; the size limit needs no header for a still (`inside` never enlarges a decodable input, `cover` is
 * exactly w×h); EXIF orientation is applied by autoOrient() from the decoder. Null when any of that does not hold:
 * the full path judges it.
 *
 * From a file, the first bytes are read and sniffed while libvips renders from the file itself; the render counts
 * only once the sniff agrees (the wait for a read of the whole original is then off the request's path).
 */
async function renderKnownStill(
  source: RenderSource,
  sourceMime: SourceMime,
  spec: VariantSpec,
  limits: RenderLimits,
): Promise<RenderedVariant | null> {
  if (spec.fit === 'cover' && spec.width !== null && spec.height !== null) {
    if (spec.width * spec.height > limits.maxOutputPixels) {
      return null;
    }
  }
  const head = Buffer.isBuffer(source) ? source.subarray(0, SNIFF_BYTES) : readHead(source.path);
  const sniffed = Promise.resolve(head).then(
    async (bytes) => (await sniffImageType(bytes))?.mime === sourceMime,
  );
  if (Buffer.isBuffer(source) && !(await sniffed)) {
    return null;
  }
  const load: SharpOptions = { failOn: 'error', limitInputPixels: limits.maxInputPixels, pages: 1 };
  const input = Buffer.isBuffer(source) ? source : source.path;
  const image = sharp(input, load).autoOrient().timeout({ seconds: limits.timeoutSeconds });
  const rendered = encode(resized(image, spec, false), spec, undefined);
  // Both settle before either is judged: neither is left to reject unobserved.
  const [typeAgrees, result] = await Promise.allSettled([sniffed, rendered]);
  if (typeAgrees.status === 'rejected') {
    throw typeAgrees.reason;
  }
  if (!typeAgrees.value) {
    return null;
  }
  if (result.status === 'rejected') {
    throw result.reason;
  }
  return result.value;
}

/** The first SNIFF_BYTES of a file (fewer when it is shorter). */
async function readHead(path: string): Promise<Buffer> {
  const file = await open(path, 'r');
  try {
    const head = Buffer.alloc(SNIFF_BYTES);
    const { bytesRead } = await file.read(head, 0, SNIFF_BYTES, 0);
    return head.subarray(0, bytesRead);
  } finally {
    await file.close();
  }
}

async function render(
  input: Buffer,
  sourceMime: SourceMime,
  spec: VariantSpec,
  limits: RenderLimits,
): Promise<RenderedVariant> {
  // failOn 'error' as on upload: libjpeg's warnings about benign quirks pass, truncation and decode errors fail.
  const load: SharpOptions = { failOn: 'error', limitInputPixels: limits.maxInputPixels };
  // AVIF: the primary image only (sharp writes no AVIF sequence, and uploads keep only that one).
  const allPages = sourceMime === 'image/avif' ? 1 : -1;
  // metadata() reads the header only: a lying type or an oversized image fails before pixels are allocated.
  const meta = await sharp(input, { ...load, pages: allPages }).metadata();
  if (
    meta.format !== SHARP_FORMAT[sourceMime] ||
    (sourceMime === 'image/avif' && meta.compression !== 'av1')
  ) {
    throw new MediaError('processing_failed', `The stored bytes are not a valid ${sourceMime} image.`);
  }
  // limitInputPixels has already counted every frame: sharp refused an oversized image above.
  const frames = sourceMime === 'image/avif' ? 1 : (meta.pages ?? 1);
  const frameWidth = meta.width;
  const frameHeight = meta.pageHeight ?? meta.height;

  const animated = frames > 1 && (spec.format === 'webp' || spec.format === 'gif');
  const orientation = meta.orientation ?? 1;
  const upright = orientation >= 5 ? [frameHeight, frameWidth] : [frameWidth, frameHeight];
  const [outWidth, outHeight] = outputSize(upright[0], upright[1], spec);
  const outFrames = animated ? frames : 1;
  if (outWidth * outHeight * outFrames > limits.maxOutputPixels) {
    throw new MediaError(
      'bad_request',
      `At ${outWidth}×${outHeight} px, ${outFrames} frames exceed ${limits.maxOutputPixels / 1e6} megapixels; ask for a smaller size.`,
    );
  }

  const animation: Animation | undefined = animated ? { loop: meta.loop, delay: meta.delay } : undefined;
  let image: Sharp;
  if (!animated) {
    image = sharp(input, { ...load, pages: 1 }).autoOrient();
  } else if (orientation !== 1) {
    // Uploads store animations upright; this serves an original stored before they did.
    image = (await orientFrames(input, meta, orientation, load, { seconds: limits.timeoutSeconds })).image;
  } else {
    image = sharp(input, { ...load, pages: -1 });
  }
  image = image.timeout({ seconds: limits.timeoutSeconds });
  return encode(resized(image, spec, animated), spec, animation);
}

/** The resize of the spec: `cover` crops by attention (around the centre for an animation), `inside` never enlarges. */
function resized(image: Sharp, spec: VariantSpec, animated: boolean): Sharp {
  if (spec.width === null && spec.height === null) {
    return image;
  }
  return spec.fit === 'cover'
    ? image.resize(spec.width, spec.height, { fit: 'cover', position: animated ? 'centre' : 'attention' })
    : image.resize(spec.width, spec.height, { fit: 'inside', withoutEnlargement: true });
}

/** 8-bit sRGB without metadata, flattened on white for JPEG, in the spec's format. */
async function encode(
  image: Sharp,
  spec: VariantSpec,
  animation: Animation | undefined,
): Promise<RenderedVariant> {
  // Without keepIccProfile()/withMetadata(), sharp converts through the embedded profile and writes no metadata.
  let out = image.toColourspace('srgb');
  if (spec.format === 'jpeg') {
    out = out.flatten({ background: '#ffffff' });
  }
  const { data, info } = await VARIANT_ENCODERS[spec.format](out, animation).toBuffer({
    resolveWithObject: true,
  });
  return {
    data,
    mime: mimeOfFormat(spec.format),
    width: info.width,
    height: info.pageHeight ?? info.height,
    pages: info.pages ?? 1,
  };
}

/** The variant's size as sharp will make it (within a pixel of rounding), for the limit check before decoding. */
function outputSize(width: number, height: number, spec: VariantSpec): [number, number] {
  if (spec.fit === 'cover' && spec.width !== null && spec.height !== null) {
    return [spec.width, spec.height];
  }
  const scale = Math.min(1, (spec.width ?? Infinity) / width, (spec.height ?? Infinity) / height);
  return [Math.max(1, Math.round(width * scale)), Math.max(1, Math.round(height * scale))];
}

import sharp, { type Metadata, type Sharp } from 'sharp';
import { AppError } from '../../common/errors/app-error';
import { decodeAllFrames, decodeFrame, decodeFrames, LOAD } from './decode';
import { orientFrames } from './orient';
import {
  assertWithinLimits,
  DEFAULT_IMAGE_OPTIONS,
  type ImageOptions,
  type StripOptions,
} from './image-limits';
import type { ImageExt, ImageType, ProcessedImage } from './image.types';
import { stripGifParts } from './strip/gif-metadata';
import { stripJpegParts } from './strip/jpeg-metadata';
import { isWholeInput, joinParts } from './strip/join-parts';
import { stripPngParts } from './strip/png-metadata';
import { isAcceptableIccProfile } from './strip/icc-profile';
import { stripWebpMetadata } from './strip/webp-metadata';

type ReencodedExt = Exclude<ImageExt, 'gif'>;

const SHARP_FORMAT: Record<ImageExt, keyof sharp.FormatEnum> = {
  png: 'png',
  jpg: 'jpeg',
  gif: 'gif',
  webp: 'webp',
  avif: 'heif',
};

/** The stripped file's pieces (joinParts makes the bytes: the input itself when nothing was stripped). */
const STRIP: Record<Exclude<ImageExt, 'avif'>, (input: Buffer, options: StripOptions) => Buffer[]> = {
  png: stripPngParts,
  jpg: stripJpegParts,
  gif: stripGifParts,
  // Its kept chunks are copies (flags and pad bytes rewritten): already one buffer.
  webp: (input, options) => [stripWebpMetadata(input, options)],
};

const WEBP_OPTIONS: sharp.WebpOptions = { quality: 92, alphaQuality: 100, smartSubsample: true };

// Lossless for PNG; otherwise high enough that a second generation is not visibly worse.
const ENCODE: Record<ReencodedExt, (image: Sharp) => Sharp> = {
  png: (image) => image.png(),
  jpg: (image) => image.jpeg({ quality: 92, mozjpeg: false, chromaSubsampling: '4:4:4' }),
  webp: (image) => image.webp(WEBP_OPTIONS),
  // effort 3: effort 4 (the default) is about ten times slower for the same size.
  avif: (image) => image.avif({ quality: 90, chromaSubsampling: '4:4:4', effort: 3 }),
};

/**
 * Runs the decoding work of an image that decodes to `pixels` pixels (all frames): ImagePool puts it in its lane.
 * `elsewhere`: the frames are decoded in another process or thread (an Offload), not in this process's heap.
 */
export type DecodeGate = <T>(pixels: number, work: () => Promise<T>, elsewhere?: boolean) => Promise<T>;

/**
 * Where an image is decoded and stripped instead of here: `run` does what processImage does, elsewhere, and answers
 * with the review frames as the classifier's inputs (PreparedFrame), not as pixels. `offload` takes animations over
 * `minPixels` decoded pixels (all frames), in another process (uploads' HeavyImageProcess); `stillOffload` takes stills
 * over `minPixels` and up to `maxPixels`, in a thread with a heap of its own (uploads' ImageThread).
 */
export interface Offload {
  minPixels: number;
  run(
    input: Buffer,
    type: ImageType,
    options: ImageOptions & { reviewFrames: number },
  ): Promise<ProcessedImage>;
}

export interface ProcessOptions extends ImageOptions {
  gate?: DecodeGate;
  offload?: Offload;
  stillOffload?: Offload & { maxPixels: number };
  /** How many frames to decode for the review (pickFrames); 0 or absent: none. */
  reviewFrames?: number;
  /**
   * Awaited before any decode but the early one (EARLY_DECODE_MAX_BYTES): the caller's say on whether the image is
   * worth decoding at all, while the header read and the early decode already run. A rejection fails the call.
   */
  notBefore?: Promise<unknown>;
  /**
   * For a file of at most EARLY_DECODE_MAX_BYTES: called at most once with the bytes to store as soon as they are
   * known, before the decode that proves them sound (before even the header read when stripping leaves the file
   * whole). The caller may start writing them, and discards them if processImage fails. The result's `data` is what to
   * store: the same buffer, unless the bytes were re-encoded (an orientation to apply, AVIF), where onStored is not
   * called. A larger file's write would overlap its decode instead of its review, and it gained nothing there (a GIF
   * of 24 frames, side by side: 0.95–1.09 of the time before).
   */
  onStored?: (data: Buffer) => void;
}

/**
 * Up to this many pixels (all frames), an animation is decoded once as 8-bit sRGB(A) (at most 64 MB) and the review
 * takes its frames from that pass; above it, a one-band proof and separate decodes of the reviewed frames keep the
 * memory at a quarter.
 */
export const ONE_PASS_MAX_PIXELS = 16_000_000;

const ungated: DecodeGate = (_pixels, work) => work();

/** A file's stripped parts, or null when its bytes do not parse as its type (its header read will say how). */
function strippedParts(
  input: Buffer,
  ext: Exclude<ImageExt, 'avif'>,
  options: StripOptions,
): Buffer[] | null {
  try {
    return STRIP[ext](input, options);
  } catch {
    return null;
  }
}

/**
 * A file of at most this many bytes has its first frame decoded beside the header read (metadata()), in its own lane
 * of the gate, as a frame of at most EARLY_DECODE_MAX_PIXELS pixels (a larger one fails at its header and is decoded
 * as usual). When the header shows a still stored as uploaded (nothing stripped, no orientation to apply), that frame
 * is the check and the review frame, and the upload has not waited for the two one after the other: for a 16×16 PNG
 * 0.3–1.0 ms the header read, 0.7–1.2 ms the decode, in the service. A PNG or JPEG that stripping leaves whole needs
 * no header read at all: its early decode is all there is. Otherwise (an animation, an orientation, stripped metadata)
 * the frame is dropped: a decode of at most 256 × 256 pixels, done for nothing.
 */
export const EARLY_DECODE_MAX_BYTES = 64 * 1024;
export const EARLY_DECODE_MAX_PIXELS = 256 * 256;

/**
 * Checks the pixel limits and the frame cap from the header, proves the image decodes in full (within
 * `timeoutSeconds`), and returns the bytes to store: without EXIF, XMP, IPTC or comments, orientation applied, a valid
 * ICC profile within `maxIccBytes` kept (API.md, `POST /api/v1/upload`). Every failure is `processing_failed`.
 * With `reviewFrames`, the same pass returns the frames the review classifies (decodeFrames: full resolution,
 * orientation applied, 8-bit sRGB(A)), decoded with the same load options as the check, so an image never passes one
 * and fails the other.
 */
export async function processImage(
  input: Buffer,
  type: ImageType,
  options: ProcessOptions = DEFAULT_IMAGE_OPTIONS,
): Promise<ProcessedImage> {
  try {
    return await decodeAndStrip(input, type, options);
  } catch (error) {
    if (error instanceof AppError) {
      throw error;
    }
    if (error instanceof Error && /timeout/i.test(error.message)) {
      throw new AppError(
        'processing_failed',
        `The image took longer than ${options.timeoutSeconds} s to decode; send a smaller or simpler file.`,
      );
    }
    // Whatever sharp or a parser throws on hostile or damaged bytes is the client's corrupt file, not a 500.
    throw new AppError('processing_failed');
  }
}

async function decodeAndStrip(
  input: Buffer,
  type: ImageType,
  options: ProcessOptions,
): Promise<ProcessedImage> {
  const { ext } = type;
  const gate = options.gate ?? ungated;
  const timeout = { seconds: options.timeoutSeconds };
  const reviewFrames = options.reviewFrames ?? 0;
  const small = ext !== 'avif' && input.length <= EARLY_DECODE_MAX_BYTES;
  const early =
    reviewFrames > 0 && small
      ? gate(EARLY_DECODE_MAX_PIXELS, () => decodeFrame(input, 0, timeout, EARLY_DECODE_MAX_PIXELS)).catch(
          () => null,
        )
      : null;
  // A small file that stripping leaves whole is stored as uploaded (it has no EXIF, so no orientation to apply). Its
  // parts are kept for the strip below; null when they did not parse, and the strip there says why.
  const { onStored } = options;
  const smallParts = ext !== 'avif' && small ? strippedParts(input, ext, options) : null;
  const whole = isWholeInput(input, smallParts);
  const handedOver = onStored !== undefined && whole;
  if (handedOver) {
    onStored(input);
  }
  if (whole && early !== null && (ext === 'png' || ext === 'jpg')) {
    // Such a PNG or JPEG leaves the header read nothing to tell: no EXIF, so no orientation; one image to libvips
    // (which reads an APNG's first frame only: the strip has counted and capped its frames); the format its signature
    // told. Its early decode, when it succeeded, is the check and the review frame, and the header read is not made:
    // one libvips job fewer beside it (for a 16×16 PNG in the service, 1.9–2.0 ms from the sniff to the frame, where
    // the two together took 2.0–2.45 ms). A frame the early decode could not make goes the usual way.
    const frame = await early;
    if (frame) {
      assertWithinLimits(frame.width, frame.height, 1, options.maxFrames);
      return { data: input, width: frame.width, height: frame.height, pages: 1, review: [frame] };
    }
  }
  // Only the primary AVIF image is decoded: sharp cannot write an AVIF sequence back.
  const pages = ext === 'avif' ? 1 : -1;
  // metadata() reads the header only, so an oversized image fails here before any pixel is allocated.
  const meta = await sharp(input, { ...LOAD, pages }).metadata();
  if (meta.format !== SHARP_FORMAT[ext] || (ext === 'avif' && meta.compression !== 'av1')) {
    throw new AppError('processing_failed', 'The image is not a valid file of its type.');
  }
  const frames = meta.pages ?? 1;
  const frameHeight = meta.pageHeight ?? meta.height;
  assertWithinLimits(meta.width, frameHeight, frames, options.maxFrames);

  const { offload, stillOffload, maxFrames, maxIccBytes, timeoutSeconds, notBefore } = options;
  const orientation = meta.orientation ?? 1;
  // Whether the early decode can be the frame (a still stored as uploaded); if it cannot, another decode follows.
  const earlyMayDo = early !== null && frames === 1 && (ext === 'gif' || orientation === 1);
  if (!earlyMayDo) {
    await notBefore;
  }
  if (offload && frames > 1 && meta.width * frameHeight * frames > offload.minPixels) {
    return gate(
      meta.width * frameHeight * frames,
      () => offload.run(input, type, { maxFrames, maxIccBytes, timeoutSeconds, reviewFrames }),
      true,
    );
  }
  const stillPixels = meta.width * frameHeight;
  if (
    stillOffload &&
    frames === 1 &&
    // The early decode stops past its pixel cap: it cannot be this still's frame.
    stillPixels > Math.max(stillOffload.minPixels, EARLY_DECODE_MAX_PIXELS) &&
    stillPixels <= stillOffload.maxPixels
  ) {
    await notBefore;
    return gate(
      stillPixels,
      () => stillOffload.run(input, type, { maxFrames, maxIccBytes, timeoutSeconds, reviewFrames }),
      true,
    );
  }
  return gate(meta.width * frameHeight * frames, async () => {
    if (ext === 'avif' || (ext !== 'gif' && orientation !== 1)) {
      // AVIF keeps EXIF and XMP as items addressed by byte offsets into mdat: rather than rewriting the box tree,
      // sharp re-encodes it (quality 90, 4:4:4, ICC kept), so an AVIF is always a second generation.
      const stored =
        frames > 1
          ? await orientAnimation(input, meta, orientation, timeout)
          : await reencode(input, ext, meta, options);
      // The re-encoded bytes are a second generation: the review sees the original's pixels, oriented.
      const review =
        reviewFrames > 0 ? await decodeFrames(input, reviewFrames, { pages: frames, timeout }) : [];
      return { ...stored, review };
    }
    const data = await joinParts(input, smallParts ?? STRIP[ext](input, options));
    if (onStored && small && !handedOver) {
      onStored(data);
    }
    const result = { data, width: meta.width, height: frameHeight, pages: frames };
    if (reviewFrames > 0 && frames === 1) {
      // A still image's review frame is a full decode of the stored bytes: one decode is both the check and the frame.
      // The early decode was of these very bytes when stripping removed nothing.
      const frame = data === input ? await early : null;
      if (frame) {
        return { ...result, review: [frame] };
      }
      await notBefore;
      return { ...result, review: [await decodeFrame(data, 0, timeout)] };
    }
    const pixels = meta.width * frameHeight * frames;
    if (reviewFrames > 0 && pixels <= ONE_PASS_MAX_PIXELS) {
      // One pass over every frame proves the animation sound and yields the reviewed frames (views of its pixels),
      // instead of decoding the frames the review picks again, each from frame 0.
      return { ...result, review: await decodeAllFrames(data, reviewFrames, timeout) };
    }
    // Decode every pixel of every frame of the bytes that will be stored, into one band (1 byte a pixel): about ten
    // times cheaper than stats(), and unlike stats() it honours the timeout. Large animations only: their frames as
    // sRGB(A) at once would need 4 bytes a pixel, so the reviewed ones are decoded again on their own.
    await sharp(data, { ...LOAD, pages: -1 })
      .timeout(timeout)
      .extractChannel(0)
      .raw()
      .toBuffer();
    const review = reviewFrames > 0 ? await decodeFrames(data, reviewFrames, { pages: frames, timeout }) : [];
    return { ...result, review };
  });
}

async function reencode(
  input: Buffer,
  ext: ReencodedExt,
  meta: Metadata,
  options: ImageOptions,
): Promise<ProcessedImage> {
  // sharp writes no EXIF, XMP or IPTC unless asked; rotate() applies the orientation.
  let image = sharp(input, { ...LOAD, pages: 1 })
    .timeout({ seconds: options.timeoutSeconds })
    .rotate();
  // A profile that is malformed or over the cap is not carried over: the pixels are converted to sRGB instead.
  const iccOk = meta.icc !== undefined && isAcceptableIccProfile(meta.icc, options.maxIccBytes);
  if (meta.space !== 'cmyk' && iccOk) {
    // A CMYK profile can't describe the sRGB output: sharp converts through it instead, and stores none.
    image = image.keepIccProfile();
  }
  if (meta.space === 'b-w' || meta.space === 'grey16' || meta.space === 'rgb16') {
    // Stay grey or 16-bit as uploaded, so the kept profile matches the channels and PNG stays lossless.
    image = image.toColourspace(meta.space);
  }
  const { data, info } = await ENCODE[ext](image).toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, pages: 1, review: [] };
}

/** Only an animated WebP gets here (GIF has no EXIF; an AVIF is decoded as one image). */
async function orientAnimation(
  input: Buffer,
  meta: Metadata,
  orientation: number,
  timeout: { seconds: number },
): Promise<ProcessedImage> {
  // The oriented frames are sRGB (sharp converts through the ICC profile), so the output needs no profile.
  const { image, width, height } = await orientFrames(input, meta, orientation, LOAD, timeout);
  const data = await image
    .timeout(timeout)
    .webp({ ...WEBP_OPTIONS, loop: meta.loop, delay: meta.delay })
    .toBuffer();
  return { data, width, height, pages: meta.pages ?? 1, review: [] };
}

import { AppError } from '../../common/errors/app-error';

/** API.md, `POST /api/v1/upload`: per side, and per image (all frames together for an animation). */
export const IMAGE_LIMITS = {
  maxSide: 16384,
  maxPixels: 100_000_000,
} as const;

/** The operator's limits (MAX_FRAMES, MAX_ICC_BYTES, IMAGE_TIMEOUT_SECONDS); see AppConfig.images. */
export interface ImageOptions {
  maxFrames: number;
  maxIccBytes: number;
  timeoutSeconds: number;
}

export const DEFAULT_IMAGE_OPTIONS: ImageOptions = {
  maxFrames: 1000,
  maxIccBytes: 64 * 1024,
  timeoutSeconds: 20,
};

/** What the container filters need of ImageOptions. */
export type StripOptions = Pick<ImageOptions, 'maxFrames' | 'maxIccBytes'>;

/** Throws `processing_failed` unless frames of width×height stay within IMAGE_LIMITS and the frame cap. */
export function assertWithinLimits(
  width: number,
  height: number,
  frames: number,
  maxFrames = DEFAULT_IMAGE_OPTIONS.maxFrames,
): void {
  const { maxSide, maxPixels } = IMAGE_LIMITS;
  if (frames > maxFrames) {
    throw new AppError(
      'processing_failed',
      `The animation has ${frames} frames; at most ${maxFrames} frames are accepted.`,
    );
  }
  if (width > maxSide || height > maxSide) {
    throw new AppError(
      'processing_failed',
      `The image is ${width}×${height} px; at most ${maxSide} px a side.`,
    );
  }
  if (width * height * frames > maxPixels) {
    throw new AppError('processing_failed', 'The image exceeds 100 megapixels (all frames together).');
  }
}

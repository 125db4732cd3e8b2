import { AppError } from '../../../common/errors/app-error';

/** API.md, `POST /api/v1/upload`: per side, and per image (all frames together for an animation). */
export const IMAGE_LIMITS = {
  maxSide: 16384,
  maxPixels: 100_000_000,
} as const;

/** Throws `processing_failed` unless frames of width×height stay within IMAGE_LIMITS. */
export function assertWithinLimits(width: number, height: number, frames: number): void {
  const { maxSide, maxPixels } = IMAGE_LIMITS;
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

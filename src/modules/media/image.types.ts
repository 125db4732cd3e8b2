import type { ReviewFrame } from './decode';

/** The five accepted formats (API.md, `POST /api/v1/upload`): the stored extension and the served MIME type. */
export type ImageExt = 'png' | 'jpg' | 'gif' | 'webp' | 'avif';

export type ImageMime = 'image/png' | 'image/jpeg' | 'image/gif' | 'image/webp' | 'image/avif';

export interface ImageType {
  ext: ImageExt;
  mime: ImageMime;
}

/** The file to store: decoded once to prove it is sound, stripped of metadata. */
export interface ProcessedImage {
  /** The bytes to store and serve; the same format as the upload. */
  data: Buffer;
  /** As displayed, after EXIF orientation; for an animation, one frame. */
  width: number;
  height: number;
  /** Frames as decoded by sharp (1 for a still image). */
  pages: number;
  /** The frames for the review when asked for (ProcessOptions.reviewFrames), else empty. */
  review: ReviewFrame[];
}

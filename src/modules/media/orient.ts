import sharp, { type Metadata, type Sharp, type SharpOptions } from 'sharp';

/** EXIF orientation → a horizontal mirror, then a clockwise rotation: the order sharp applies flop() and rotate(). */
const ORIENTATION: Record<number, { flop: boolean; angle: number }> = {
  2: { flop: true, angle: 0 },
  3: { flop: false, angle: 180 },
  4: { flop: true, angle: 180 },
  5: { flop: true, angle: 270 },
  6: { flop: false, angle: 90 },
  7: { flop: true, angle: 90 },
  8: { flop: false, angle: 270 },
};

export interface OrientedFrames {
  /** Every frame upright, stacked again as one multi-page raw RGBA image (sRGB: sharp converts through the ICC). */
  image: Sharp;
  /** One upright frame. */
  width: number;
  height: number;
}

/**
 * libvips refuses to rotate a multi-page image: decode every frame once, orient each, and stack them again. The
 * one way both the upload path (an animated WebP with an EXIF orientation) and variants turn an animation upright.
 */
export async function orientFrames(
  input: Buffer,
  meta: Metadata,
  orientation: number,
  load: SharpOptions,
  timeout: { seconds: number },
): Promise<OrientedFrames> {
  const { flop, angle } = ORIENTATION[orientation] ?? { flop: false, angle: 0 };
  const frames = meta.pages ?? 1;
  const width = meta.width;
  const height = meta.pageHeight ?? meta.height;
  const strip = await sharp(input, { ...load, pages: -1 })
    .timeout(timeout)
    .ensureAlpha()
    .raw()
    .toBuffer();
  const frameBytes = width * height * 4;
  const oriented: Buffer[] = [];
  for (let i = 0; i < frames; i++) {
    const frame = strip.subarray(i * frameBytes, (i + 1) * frameBytes);
    oriented.push(
      await sharp(frame, { raw: { width, height, channels: 4 } })
        .flop(flop)
        .rotate(angle)
        .raw()
        .toBuffer(),
    );
  }
  const [outWidth, outHeight] = angle % 180 === 0 ? [width, height] : [height, width];
  const image = sharp(Buffer.concat(oriented), {
    raw: { width: outWidth, height: outHeight * frames, channels: 4, pageHeight: outHeight },
    limitInputPixels: load.limitInputPixels,
  });
  return { image, width: outWidth, height: outHeight };
}

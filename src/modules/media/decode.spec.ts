import sharp from 'sharp';
import { decodeFrames, pickFrames, type RawImage, type ReviewFrame } from './decode';
import { DEFAULT_IMAGE_OPTIONS } from './image-limits';
import { processImage } from './image-processor';

/** processImage without an offload decodes here: every review frame is pixels. */
function raw(frame: ReviewFrame): RawImage {
  if (!('data' in frame)) {
    throw new Error('expected decoded pixels');
  }
  return frame;
}

const JPG = { ext: 'jpg', mime: 'image/jpeg' } as const;
const PNG = { ext: 'png', mime: 'image/png' } as const;
const GIF = { ext: 'gif', mime: 'image/gif' } as const;

const noise = (width: number, height: number, channels: 3 | 4): Buffer => {
  const data = Buffer.alloc(width * height * channels);
  for (let i = 0; i < data.length; i++) {
    data[i] = (i * 7919) % 251;
  }
  return data;
};

/** A JPEG whose scan data ends early before EOI: libjpeg warns "premature end of data segment" (not an error). */
async function jpegWithShortScan(): Promise<Buffer> {
  const jpeg = await sharp(noise(64, 48, 3), { raw: { width: 64, height: 48, channels: 3 } })
    .jpeg()
    .toBuffer();
  const sos = jpeg.indexOf(Buffer.from([0xff, 0xda]));
  const cut = sos + Math.floor((jpeg.length - sos) * 0.6);
  return Buffer.concat([jpeg.subarray(0, cut), Buffer.from([0xff, 0xd9])]);
}

describe('one decode pipeline', () => {
  it('should accept and review a JPEG that only warns (sharp’s default load, the old review’s, rejects it)', async () => {
    const jpeg = await jpegWithShortScan();
    // The old review decoded with sharp's defaults (failOn 'warning'): this file failed there after passing the check.
    await expect(sharp(jpeg).raw().toBuffer()).rejects.toThrow(/premature end of data segment/);
    const result = await processImage(jpeg, JPG, { ...DEFAULT_IMAGE_OPTIONS, reviewFrames: 3 });
    expect(result.review).toHaveLength(1);
    expect(result.review[0]).toMatchObject({ width: 64, height: 48, channels: 3 });
  });

  it('should give the review the same pixels as decoding the original (still, with alpha)', async () => {
    const png = await sharp(noise(40, 30, 4), { raw: { width: 40, height: 30, channels: 4 } })
      .png()
      .toBuffer();
    const { review } = await processImage(png, PNG, { ...DEFAULT_IMAGE_OPTIONS, reviewFrames: 3 });
    const [expected] = await decodeFrames(png, 3);
    expect(review).toHaveLength(1);
    expect(Buffer.compare(Buffer.from(raw(review[0]).data), Buffer.from(expected.data))).toBe(0);
    expect(review[0]).toMatchObject({ width: 40, height: 30, channels: 4 });
  });

  it('should give an oriented JPEG’s review the original’s pixels with the orientation applied', async () => {
    const jpeg = await sharp(noise(16, 8, 3), { raw: { width: 16, height: 8, channels: 3 } })
      .jpeg()
      .withMetadata({ orientation: 6 })
      .toBuffer();
    const { review, width, height } = await processImage(jpeg, JPG, {
      ...DEFAULT_IMAGE_OPTIONS,
      reviewFrames: 1,
    });
    const [expected] = await decodeFrames(jpeg, 1);
    expect([width, height]).toEqual([8, 16]);
    expect([raw(review[0]).width, raw(review[0]).height]).toEqual([8, 16]);
    expect(Buffer.compare(Buffer.from(raw(review[0]).data), Buffer.from(expected.data))).toBe(0);
  });

  it('should decode only the picked frames of an animation, and none when no review is asked for', async () => {
    const frames = await Promise.all(
      [0, 60, 120, 180, 240].map((v) =>
        sharp({ create: { width: 8, height: 8, channels: 3, background: { r: v, g: 0, b: 255 - v } } })
          .png()
          .toBuffer(),
      ),
    );
    const gif = await sharp(frames, { join: { animated: true } })
      .gif()
      .toBuffer();
    const reviewed = await processImage(gif, GIF, { ...DEFAULT_IMAGE_OPTIONS, reviewFrames: 3 });
    expect(reviewed.pages).toBe(5);
    expect(reviewed.review).toHaveLength(pickFrames(5, 3).length);
    expect(reviewed.review.map((f) => raw(f).data[0])).toEqual(
      (await decodeFrames(gif, 3)).map((f) => f.data[0]),
    );
    expect((await processImage(gif, GIF)).review).toEqual([]);
  });
});

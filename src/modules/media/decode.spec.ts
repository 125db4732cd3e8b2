import { randomBytes } from 'node:crypto';
import sharp from 'sharp';
import {
  apngChunks,
  jfifWithThumbnail,
  pngChunk,
  withDamagedPixelData,
  withJpegSegments,
  withPngChunks,
} from '../../../test/fixtures/images/image-fixtures';
import { decodeFrames, pickFrames, type RawImage, type ReviewFrame } from './decode';
import { DEFAULT_IMAGE_OPTIONS } from './image-limits';
import {
  type DecodeGate,
  EARLY_DECODE_MAX_BYTES,
  EARLY_DECODE_MAX_PIXELS,
  processImage,
} from './image-processor';

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

/** A still RGBA PNG of noise. */
const stillPng = (width: number, height: number): Promise<Buffer> =>
  sharp(noise(width, height, 4), { raw: { width, height, channels: 4 } })
    .png()
    .toBuffer();

/** An 8×8 GIF with one frame per level, each a plain colour from it (red up, blue down; `green` fixed). */
async function smallGif(levels: number[], green = 0): Promise<Buffer> {
  const frames = await Promise.all(
    levels.map((v) =>
      sharp({ create: { width: 8, height: 8, channels: 3, background: { r: v, g: green, b: 255 - v } } })
        .png()
        .toBuffer(),
    ),
  );
  return sharp(frames, { join: { animated: true } })
    .gif()
    .toBuffer();
}

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
    const gif = await smallGif([0, 60, 120, 180, 240]);
    const reviewed = await processImage(gif, GIF, { ...DEFAULT_IMAGE_OPTIONS, reviewFrames: 3 });
    expect(reviewed.pages).toBe(5);
    expect(reviewed.review).toHaveLength(pickFrames(5, 3).length);
    expect(reviewed.review.map((f) => raw(f).data[0])).toEqual(
      (await decodeFrames(gif, 3)).map((f) => f.data[0]),
    );
    expect((await processImage(gif, GIF)).review).toEqual([]);
  });
});

/** A gate that lets everything through and notes each call's pixels, and when its work has ended. */
function recordingGate(): { gate: DecodeGate; pixels: number[]; ended: Promise<unknown>[] } {
  const pixels: number[] = [];
  const ended: Promise<unknown>[] = [];
  const gate: DecodeGate = (n, work) => {
    pixels.push(n);
    const done = work();
    ended.push(done.catch(() => undefined));
    return done;
  };
  return { gate, pixels, ended };
}

/** A promise resolved from outside. */
function latch(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

/** Several turns of the event loop and the threadpool: enough for anything not held back to have started. */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) {
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Whether `promise` is still unsettled once everything not held back has had time to run (settle). */
async function stillPending(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  void promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  await settle();
  return !settled;
}

describe('the early decode of a small file', () => {
  it('should take a small still’s review frame from the decode beside the header read, without waiting for notBefore', async () => {
    const png = await stillPng(16, 16);
    const { gate, pixels } = recordingGate();
    const never = new Promise<void>(() => undefined);

    const { review } = await processImage(png, PNG, {
      ...DEFAULT_IMAGE_OPTIONS,
      reviewFrames: 3,
      gate,
      notBefore: never,
    });

    // The early decode's lane only: no header read and no decode of its own.
    expect(pixels).toEqual([EARLY_DECODE_MAX_PIXELS]);
    const [expected] = await decodeFrames(png, 1);
    expect(review).toHaveLength(1);
    expect(Buffer.compare(Buffer.from(raw(review[0]).data), Buffer.from(expected.data))).toBe(0);
  });

  it('should make a small JPEG stored as uploaded of its early decode alone, as the header read would', async () => {
    const jpeg = await sharp(noise(40, 24, 3), { raw: { width: 40, height: 24, channels: 3 } })
      .jpeg()
      .toBuffer();
    const { gate, pixels } = recordingGate();

    const image = await processImage(jpeg, JPG, { ...DEFAULT_IMAGE_OPTIONS, reviewFrames: 3, gate });

    expect(pixels).toEqual([EARLY_DECODE_MAX_PIXELS]);
    expect(image).toMatchObject({ data: jpeg, width: 40, height: 24, pages: 1 });
    const [expected] = await decodeFrames(jpeg, 1);
    expect(Buffer.compare(Buffer.from(raw(image.review[0]).data), Buffer.from(expected.data))).toBe(0);
  });

  it('should make a small JPEG with a JFIF header and no thumbnail of its early decode alone', async () => {
    const plain = await sharp(noise(40, 24, 3), { raw: { width: 40, height: 24, channels: 3 } })
      .jpeg()
      .toBuffer();
    // libjpeg's own writer (cameras, editors, most of the web) puts one there; libvips' does not.
    const jpeg = withJpegSegments(plain, jfifWithThumbnail(0, 0));
    const { gate, pixels } = recordingGate();

    const image = await processImage(jpeg, JPG, { ...DEFAULT_IMAGE_OPTIONS, reviewFrames: 1, gate });

    // Stored as uploaded, so the early decode is the check: not decoded again from a copy.
    expect(pixels).toEqual([EARLY_DECODE_MAX_PIXELS]);
    expect(image.data).toBe(jpeg);
  });

  it('should hold a small file decoded early to the side limit and the frame cap, as the header read does', async () => {
    // 20,000 × 1: fewer pixels than the early decode takes, a side over 16,384.
    const wide = await sharp({ create: { width: 20_000, height: 1, channels: 3, background: '#888' } })
      .png()
      .toBuffer();
    expect(wide.length).toBeLessThan(EARLY_DECODE_MAX_BYTES);
    await expect(
      processImage(wide, PNG, { ...DEFAULT_IMAGE_OPTIONS, reviewFrames: 1 }),
    ).rejects.toMatchObject({
      code: 'processing_failed',
      message: expect.stringContaining('at most 16384 px a side'),
    });

    // An APNG's frames are counted by the strip (libvips decodes its first only): three over a cap of two fail.
    const apng = withPngChunks(await stillPng(8, 8), ...apngChunks(3, 8, 8));
    await expect(
      processImage(apng, PNG, { ...DEFAULT_IMAGE_OPTIONS, maxFrames: 2, reviewFrames: 1 }),
    ).rejects.toMatchObject({ code: 'processing_failed' });
    expect(await processImage(apng, PNG, { ...DEFAULT_IMAGE_OPTIONS, reviewFrames: 1 })).toMatchObject({
      data: apng,
      pages: 1,
    });
  });

  it('should fall back to the header read and a decode of its own when the early decode fails', async () => {
    const png = withDamagedPixelData(await stillPng(16, 16));
    const { gate, pixels } = recordingGate();
    await expect(
      processImage(png, PNG, { ...DEFAULT_IMAGE_OPTIONS, reviewFrames: 1, gate }),
    ).rejects.toMatchObject({
      code: 'processing_failed',
    });
    expect(pixels).toEqual([EARLY_DECODE_MAX_PIXELS, 16 * 16]);
  });

  it('should wait for notBefore before decoding a small animation, and fail with it refused', async () => {
    const gif = await smallGif([0, 90, 180], 40);

    const held = latch();
    const waiting = recordingGate();
    const result = processImage(gif, GIF, {
      ...DEFAULT_IMAGE_OPTIONS,
      reviewFrames: 3,
      gate: waiting.gate,
      notBefore: held.promise,
    });
    await settle();
    // Only the early decode ran: the animation's own decode waits.
    expect(waiting.pixels).toEqual([EARLY_DECODE_MAX_PIXELS]);
    held.open();
    const { review, pages } = await result;
    expect(pages).toBe(3);
    expect(review).toHaveLength(3);
    expect(waiting.pixels).toEqual([EARLY_DECODE_MAX_PIXELS, 8 * 8 * 3]);

    const refused = Promise.reject(new Error('a dedupe hit'));
    // Read below, through processImage (a rejection with nothing on it yet would count as unhandled).
    refused.catch(() => undefined);
    const refusing = recordingGate();
    await expect(
      processImage(gif, GIF, {
        ...DEFAULT_IMAGE_OPTIONS,
        reviewFrames: 3,
        gate: refusing.gate,
        notBefore: refused,
      }),
    ).rejects.toMatchObject({ code: 'processing_failed' });
    await Promise.all(refusing.ended);
    expect(refusing.pixels).toEqual([EARLY_DECODE_MAX_PIXELS]);
  });

  it('should decode the stored bytes again, after notBefore, when stripping removed something', async () => {
    const png = withPngChunks(await stillPng(16, 16), pngChunk('tEXt', 'Comment\0secret comment'));
    const held = latch();
    const { gate, pixels } = recordingGate();
    const result = processImage(png, PNG, {
      ...DEFAULT_IMAGE_OPTIONS,
      reviewFrames: 1,
      gate,
      notBefore: held.promise,
    });
    expect(await stillPending(result)).toBe(true);
    held.open();
    const { review, data } = await result;
    expect(data.includes('secret comment')).toBe(false);
    expect(pixels).toEqual([EARLY_DECODE_MAX_PIXELS, 16 * 16]);
    const [expected] = await decodeFrames(data, 1);
    expect(Buffer.compare(Buffer.from(raw(review[0]).data), Buffer.from(expected.data))).toBe(0);
  });

  it('should decode a small file over the early decode’s pixels in full, after notBefore', async () => {
    // 300 × 300 of one colour: a few hundred bytes, more pixels than the early decode takes.
    const png = await sharp({ create: { width: 300, height: 300, channels: 3, background: '#2a6' } })
      .png()
      .toBuffer();
    expect(png.length).toBeLessThan(EARLY_DECODE_MAX_BYTES);
    const held = latch();
    const result = processImage(png, PNG, {
      ...DEFAULT_IMAGE_OPTIONS,
      reviewFrames: 1,
      notBefore: held.promise,
    });
    expect(await stillPending(result)).toBe(true);
    held.open();
    const { review } = await result;
    expect(raw(review[0])).toMatchObject({ width: 300, height: 300, channels: 3 });
  });

  it('should not decode early a file over EARLY_DECODE_MAX_BYTES, nor without a review', async () => {
    const big = await sharp(randomBytes(200 * 200 * 3), { raw: { width: 200, height: 200, channels: 3 } })
      .png()
      .toBuffer();
    expect(big.length).toBeGreaterThan(EARLY_DECODE_MAX_BYTES);
    const large = recordingGate();
    await processImage(big, PNG, { ...DEFAULT_IMAGE_OPTIONS, reviewFrames: 1, gate: large.gate });
    expect(large.pixels).toEqual([200 * 200]);

    const unreviewed = recordingGate();
    await processImage(await stillPng(16, 16), PNG, { ...DEFAULT_IMAGE_OPTIONS, gate: unreviewed.gate });
    expect(unreviewed.pixels).toEqual([16 * 16]);
  });
});

describe('the bytes to store, handed over before the decode (onStored)', () => {
  it('should hand over a small file stored as uploaded, itself, before its decode', async () => {
    const gif = await smallGif([0, 120], 40);
    const held = latch();
    const handed: Buffer[] = [];
    const result = processImage(gif, GIF, {
      ...DEFAULT_IMAGE_OPTIONS,
      reviewFrames: 3,
      notBefore: held.promise,
      onStored: (data) => handed.push(data),
    });
    await settle();
    // The animation's decode waits for notBefore; its bytes are already out.
    expect(handed).toHaveLength(1);
    expect(handed[0]).toBe(gif);
    held.open();
    expect((await result).data).toBe(gif);
    expect(handed).toHaveLength(1);
  });

  it('should hand over the stripped bytes before the decode when stripping removed something', async () => {
    const png = withPngChunks(await stillPng(16, 16), pngChunk('tEXt', 'Comment\0secret comment'));
    const held = latch();
    const handed: Buffer[] = [];
    const result = processImage(png, PNG, {
      ...DEFAULT_IMAGE_OPTIONS,
      reviewFrames: 1,
      notBefore: held.promise,
      onStored: (data) => handed.push(data),
    });
    await settle();
    expect(handed).toHaveLength(1);
    expect(handed[0].includes('secret comment')).toBe(false);
    held.open();
    expect((await result).data).toBe(handed[0]);
  });

  it('should hand over nothing for a file over EARLY_DECODE_MAX_BYTES or a re-encoded one', async () => {
    const big = await sharp(randomBytes(200 * 200 * 3), { raw: { width: 200, height: 200, channels: 3 } })
      .png()
      .toBuffer();
    expect(big.length).toBeGreaterThan(EARLY_DECODE_MAX_BYTES);
    const handed: Buffer[] = [];
    const { data } = await processImage(big, PNG, {
      ...DEFAULT_IMAGE_OPTIONS,
      reviewFrames: 1,
      onStored: (bytes) => handed.push(bytes),
    });
    expect(handed).toEqual([]);
    expect(data).toBe(big);

    const oriented = await sharp(noise(16, 8, 3), { raw: { width: 16, height: 8, channels: 3 } })
      .jpeg()
      .withMetadata({ orientation: 6 })
      .toBuffer();
    const none: Buffer[] = [];
    const turned = await processImage(oriented, JPG, {
      ...DEFAULT_IMAGE_OPTIONS,
      reviewFrames: 1,
      onStored: (bytes) => none.push(bytes),
    });
    expect(none).toEqual([]);
    expect([turned.width, turned.height]).toEqual([8, 16]);
  });
});

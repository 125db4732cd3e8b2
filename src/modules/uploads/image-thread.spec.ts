import type { Worker } from 'node:worker_threads';
import sharp from 'sharp';
import { AppError } from '../../common/errors/app-error';
import { DEFAULT_IMAGE_OPTIONS } from '../media/image-limits';
import { type Offload, processImage } from '../media/image-processor';
import type { ImageType, ProcessedImage } from '../media/image.types';
import { frameToModelInputs } from '../moderation/image-preprocess';
import { ImageThread } from './image-thread';

const JPEG: ImageType = { ext: 'jpg', mime: 'image/jpeg' };
const PNG: ImageType = { ext: 'png', mime: 'image/png' };
const GIF: ImageType = { ext: 'gif', mime: 'image/gif' };
const OPTIONS = { ...DEFAULT_IMAGE_OPTIONS, reviewFrames: 3 };

const bytes = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** A photo-like still (every pixel its own) of width×height, as a JPEG with `orientation` in EXIF when given. */
function still(width: number, height: number, orientation?: number): Promise<Buffer> {
  const raw = Buffer.alloc(width * height * 3);
  for (let i = 0; i < raw.length; i++) {
    raw[i] = (i * 7 + Math.floor(i / (width * 3)) * 13) & 0xff;
  }
  const image = sharp(raw, { raw: { width, height, channels: 3 } });
  return (orientation ? image.withMetadata({ orientation }) : image).jpeg({ quality: 80 }).toBuffer();
}

/** What the review gets from the thread, against the inputs processImage's frames make here: the same bits. */
function expectSameAnswer(remote: ProcessedImage, local: ProcessedImage): void {
  expect(remote.data.equals(local.data)).toBe(true);
  expect([remote.width, remote.height, remote.pages]).toEqual([local.width, local.height, local.pages]);
  expect(remote.review).toHaveLength(local.review.length);
  remote.review.forEach((frame, i) => {
    const expected = local.review[i];
    if (!('inputs' in frame) || 'inputs' in expected) {
      throw new Error('expected prepared frames from the thread and pixels from processImage');
    }
    const inputs = frameToModelInputs(expected);
    expect(frame.inputs).toHaveLength(inputs.length);
    frame.inputs.forEach((values, j) => expect(bytes(values).equals(bytes(inputs[j]))).toBe(true));
  });
}

/** Issue 14: large stills are decoded in a thread with a heap of its own. */
describe('ImageThread', () => {
  let thread: ImageThread;

  beforeEach(() => {
    thread = new ImageThread(0, Infinity);
  });
  afterEach(() => thread.close());

  it('should answer exactly what processImage answers here, and hand back the bytes it was sent when nothing was stripped', async () => {
    const jpeg = await still(640, 480);
    const local = await processImage(jpeg, JPEG, OPTIONS);
    const remote = await thread.run(jpeg, JPEG, OPTIONS);

    expectSameAnswer(remote, local);
    // Nothing stripped: the very buffer the caller sent (no copy back), so the pipeline keeps the hash it computed.
    expect(remote.data).toBe(jpeg);
  });

  it('should answer a stripped and oriented still exactly as processImage does', async () => {
    const jpeg = await still(300, 200, 6);
    const local = await processImage(jpeg, JPEG, OPTIONS);
    const remote = await thread.run(jpeg, JPEG, OPTIONS);

    expectSameAnswer(remote, local);
    expect(remote.data.equals(jpeg)).toBe(false);
    expect([remote.width, remote.height]).toEqual([200, 300]);
    expect((await sharp(remote.data).metadata()).exif).toBeUndefined();
  });

  it('should fail a damaged image with processing_failed and keep working', async () => {
    const jpeg = await still(256, 256);
    await expect(thread.run(jpeg.subarray(0, jpeg.length / 2), JPEG, OPTIONS)).rejects.toMatchObject({
      code: 'processing_failed',
    });
    const png = await sharp({ create: { width: 9, height: 7, channels: 3, background: 'red' } })
      .png()
      .toBuffer();
    await expect(thread.run(png, PNG, OPTIONS)).resolves.toMatchObject({ width: 9, height: 7, pages: 1 });
  });

  it('should fail the image in it with processing_failed when the thread dies, and start a new one for the next', async () => {
    const jpeg = await still(256, 256);
    await thread.run(jpeg, JPEG, OPTIONS);
    const first = thread.threadId;
    const running = thread.run(jpeg, JPEG, OPTIONS);
    // Stopped in the same tick as the image is sent: it cannot have answered.
    void (thread as unknown as { worker: Worker }).worker.terminate();
    const error = (await running.catch((e: unknown) => e)) as AppError;
    expect(error).toBeInstanceOf(AppError);
    expect(error.code).toBe('processing_failed');

    await expect(thread.run(jpeg, JPEG, OPTIONS)).resolves.toMatchObject({ width: 256, height: 256 });
    expect(thread.threadId).toBeDefined();
    expect(thread.threadId).not.toBe(first);
  });

  it('should stop a thread that does not answer within its limit and fail its image with the timeout message', async () => {
    // No grace past the decode timeout (0 s: none), so the limit has passed before any image can be answered.
    const impatient = new ImageThread(0, Infinity, 0);
    try {
      const jpeg = await still(256, 256);
      const error = (await impatient
        .run(jpeg, JPEG, { ...OPTIONS, timeoutSeconds: 0 })
        .catch((e: unknown) => e)) as AppError;
      expect(error).toBeInstanceOf(AppError);
      expect(error.code).toBe('processing_failed');
      expect(error.message).toContain('longer than 0 s');
      expect(impatient.threadId).toBeUndefined();
    } finally {
      await impatient.close();
    }
  });

  it('should refuse work once closed', async () => {
    await thread.close();
    await expect(thread.run(await still(8, 8), JPEG, OPTIONS)).rejects.toMatchObject({ code: 'unavailable' });
  });
});

describe('processImage with a stillOffload', () => {
  let thread: ImageThread;
  let sent: string[];
  let offload: Offload & { maxPixels: number };

  beforeEach(() => {
    thread = new ImageThread(100_000, 400_000);
    sent = [];
    offload = {
      ...thread.offload,
      run: (input, type, options) => {
        sent.push(type.ext);
        return thread.run(input, type, options);
      },
    };
  });
  afterEach(() => thread.close());

  it('should send a still over minPixels and up to maxPixels there, review frames as the classifier inputs', async () => {
    const jpeg = await still(500, 400);
    const gates: [number, boolean | undefined][] = [];
    const image = await processImage(jpeg, JPEG, {
      ...OPTIONS,
      stillOffload: offload,
      gate: (pixels, work, elsewhere) => {
        gates.push([pixels, elsewhere]);
        return work();
      },
    });
    expect(sent).toEqual(['jpg']);
    // Its lane and memory are the pool's as before; its frame is not this heap's garbage.
    expect(gates).toEqual([[200_000, true]]);
    expect(image).toMatchObject({ width: 500, height: 400, pages: 1 });
    expect(image.review.every((frame) => 'inputs' in frame)).toBe(true);
  });

  it('should keep a smaller still, a larger one and an animation here', async () => {
    // Two frames of 400×400: each within the bounds, but not a still.
    const frames = Buffer.concat([Buffer.alloc(400 * 400 * 3, 90), Buffer.alloc(400 * 400 * 3, 200)]);
    const animated = await sharp(frames, { raw: { width: 400, height: 800, channels: 3, pageHeight: 400 } })
      .gif()
      .toBuffer();
    const kinds: string[][] = [];
    for (const [bytes, type] of [
      [await still(300, 300), JPEG],
      [await still(700, 700), JPEG],
      [animated, GIF],
    ] as const) {
      const image = await processImage(bytes, type, { ...OPTIONS, stillOffload: offload });
      kinds.push(image.review.map((frame) => ('data' in frame ? 'pixels' : 'inputs')));
    }
    expect(kinds).toEqual([['pixels'], ['pixels'], ['pixels', 'pixels']]);
    expect((await sharp(animated).metadata()).pages).toBe(2);
    expect(sent).toEqual([]);
  });
});

import { readdirSync } from 'node:fs';
import { getPriority } from 'node:os';
import sharp from 'sharp';
import { AppError } from '../../common/errors/app-error';
import { DEFAULT_IMAGE_OPTIONS } from '../media/image-limits';
import { processImage } from '../media/image-processor';
import type { ImageType } from '../media/image.types';
import { frameToModelInputs } from '../moderation/image-preprocess';
import { HeavyImageProcess } from './heavy-image-process';

const GIF: ImageType = { ext: 'gif', mime: 'image/gif' };
const PNG: ImageType = { ext: 'png', mime: 'image/png' };
const OPTIONS = { ...DEFAULT_IMAGE_OPTIONS, reviewFrames: 3 };

const bytes = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** An animation of `frames` frames of `side`×`side`, every frame different. */
async function animation(side: number, frames: number): Promise<Buffer> {
  const raw = Buffer.alloc(side * side * frames * 3);
  for (let i = 0; i < raw.length; i++) {
    raw[i] = (i * 31 + Math.floor(i / (side * side * 3)) * 57) & 0xff;
  }
  return sharp(raw, { raw: { width: side, height: side * frames, channels: 3, pageHeight: side } })
    .gif({ effort: 1 })
    .toBuffer();
}

/** Issue 9, item 6: heavy images are decoded in a low-priority process of their own. */
describe('HeavyImageProcess', () => {
  let heavy: HeavyImageProcess;

  beforeEach(() => {
    heavy = new HeavyImageProcess(19, 0);
  });
  afterEach(() => heavy.close());

  it('should answer exactly what processImage answers here, with the review frames as the classifier inputs', async () => {
    const gif = await animation(64, 12);
    const local = await processImage(gif, GIF, OPTIONS);
    const remote = await heavy.run(gif, GIF, OPTIONS);

    expect(Buffer.isBuffer(remote.data)).toBe(true);
    expect(remote.data.equals(local.data)).toBe(true);
    expect([remote.width, remote.height, remote.pages]).toEqual([local.width, local.height, local.pages]);
    expect(remote.review).toHaveLength(local.review.length);
    remote.review.forEach((frame, i) => {
      const expected = local.review[i];
      if (!('inputs' in frame) || 'inputs' in expected) {
        throw new Error('expected prepared frames from the process and pixels from processImage');
      }
      const inputs = frameToModelInputs(expected);
      expect(frame.inputs).toHaveLength(inputs.length);
      frame.inputs.forEach((values, j) => expect(bytes(values).equals(bytes(inputs[j]))).toBe(true));
    });
  });

  it('should run at the niceness it was given, every thread of it', async () => {
    await heavy.run(await animation(16, 2), GIF, OPTIONS);
    const pid = heavy.pid!;
    // A thread may end between the listing and its read (ESRCH): only the ones still there count.
    const priorities = readdirSync(`/proc/${pid}/task`).flatMap((tid) => {
      try {
        return [getPriority(Number(tid))];
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ESRCH') {
          return [];
        }
        throw error;
      }
    });
    expect(priorities.length).toBeGreaterThan(1);
    expect(priorities).toEqual(priorities.map(() => 19));
  });

  it('should fail a damaged image with processing_failed and keep working', async () => {
    const gif = await animation(32, 4);
    await expect(heavy.run(gif.subarray(0, gif.length / 2), GIF, OPTIONS)).rejects.toMatchObject({
      code: 'processing_failed',
    });
    const png = await sharp({ create: { width: 9, height: 7, channels: 3, background: 'red' } })
      .png()
      .toBuffer();
    await expect(heavy.run(png, PNG, OPTIONS)).resolves.toMatchObject({ width: 9, height: 7, pages: 1 });
  });

  it('should fail the image in it with processing_failed when the process dies, and start a new one for the next', async () => {
    const gif = await animation(64, 12);
    await heavy.run(gif, GIF, OPTIONS);
    // Killed in the same tick as the image is sent: it cannot have answered. (The pid is read after run(): between two
    // images the process may have exited idle on a slow machine, and run() started a new one.)
    const running = heavy.run(gif, GIF, OPTIONS);
    const first = heavy.pid!;
    process.kill(first, 'SIGKILL');
    const error = (await running.catch((e: unknown) => e)) as AppError;
    expect(error).toBeInstanceOf(AppError);
    expect(error.code).toBe('processing_failed');

    const again = await heavy.run(gif, GIF, OPTIONS);
    expect(again.pages).toBe(12);
    expect(heavy.pid).not.toBe(first);
  });

  it('should kill a process that stops answering and fail its image with the timeout message', async () => {
    const gif = await animation(64, 12);
    await heavy.run(gif, GIF, OPTIONS);
    const stuck = heavy.pid!;
    process.kill(stuck, 'SIGSTOP');
    const error = (await heavy
      .run(gif, GIF, { ...OPTIONS, timeoutSeconds: 1 })
      .catch((e: unknown) => e)) as AppError;
    expect(error).toBeInstanceOf(AppError);
    expect(error.code).toBe('processing_failed');
    expect(error.message).toContain('longer than 1 s');
    // Killed, not left stopped: the process is gone and the next image gets a new one.
    for (let i = 0; i < 100 && heavy.pid === stuck; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(heavy.pid).toBeUndefined();
    expect(() => process.kill(stuck, 0)).toThrow();
    await expect(heavy.run(gif, GIF, OPTIONS)).resolves.toMatchObject({ pages: 12 });
  }, 30_000);

  it('should let an idle process exit, and start a new one for the next image', async () => {
    const quick = new HeavyImageProcess(19, 0, 200);
    try {
      const gif = await animation(16, 2);
      await quick.run(gif, GIF, OPTIONS);
      const first = quick.pid!;
      for (let i = 0; i < 100 && quick.pid !== undefined; i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(quick.pid).toBeUndefined();
      await expect(quick.run(gif, GIF, OPTIONS)).resolves.toMatchObject({ pages: 2 });
      expect(quick.pid).not.toBe(first);
    } finally {
      quick.close();
    }
  });

  it('should refuse work once closed', async () => {
    heavy.close();
    await expect(heavy.run(await animation(8, 2), GIF, OPTIONS)).rejects.toMatchObject({
      code: 'unavailable',
    });
  });
});

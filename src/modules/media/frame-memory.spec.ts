import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { decodeAllFrames, decodeFrame, type RawImage } from './decode';
import { ownDecoded, releaseFrames } from './frame-memory';

const ROOT = join(__dirname, '..', '..', '..');

/** The allocator settings `npm start` runs the service with (package.json), as NAME=value words. */
function startAllocatorSettings(): string[] {
  const { scripts } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
    scripts: { start: string };
  };
  const settings = scripts.start.match(/\b[A-Z_]+=\S+/g) ?? [];
  expect(settings).toContainEqual(expect.stringMatching(/^MALLOC_MMAP_THRESHOLD_=\d+$/));
  return settings;
}

/**
 * Whether freed memory leaves a process depends on its allocator's state: in a jest worker that has run other files
 * before, glibc's malloc may serve a 36 MB frame from memory it keeps after a free. So the child decodes and frees the
 * frame with the allocator settings the service runs with (a fixed mmap threshold of 16 MB: the frame is a mapping of
 * its own, unmapped when freed), and prints what it saw. Node calls a buffer's free callback on a later turn of the
 * event loop, so it waits for the drop for up to 2 s.
 */
const RESIDENT_CHILD = `
const { readFileSync } = require('node:fs');
const sharp = require('sharp');
const { decodeFrame } = require(${JSON.stringify(join(__dirname, 'decode'))});
const { releaseFrames } = require(${JSON.stringify(join(__dirname, 'frame-memory'))});
const resident = () => Number(readFileSync('/proc/self/statm', 'utf8').split(' ')[1]) * 4096;
const turn = () => new Promise((resolve) => setTimeout(resolve, 10));
(async () => {
  const jpeg = await sharp({ create: { width: 4000, height: 3000, channels: 3, background: '#808080' } }).jpeg().toBuffer();
  const frame = await decodeFrame(jpeg, 0);
  const length = frame.data.length;
  const first = frame.data[0];
  for (let i = 0; i < 5; i++) await turn();
  const held = resident();
  const freed = releaseFrames([frame]);
  let drop = 0;
  for (let i = 0; i < 200 && drop <= 30000000; i++) {
    await turn();
    drop = held - resident();
  }
  console.log(JSON.stringify({ length, first, freed, after: frame.data.length, drop }));
})();
`;

/** Node calls a buffer's free callback on the event loop's next turns, not inside the detach. */
async function turns(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** A GIF of `count` frames of 8×8, each a plain grey. */
async function gif(count: number): Promise<Buffer> {
  const frames = await Promise.all(
    Array.from({ length: count }, (_, i) =>
      sharp({ create: { width: 8, height: 8, channels: 3, background: { r: i * 40, g: i * 40, b: i * 40 } } })
        .png()
        .toBuffer(),
    ),
  );
  return sharp(frames, { join: { animated: true } })
    .gif()
    .toBuffer();
}

describe('releaseFrames', () => {
  it("frees a decoded frame's memory at once, not at V8's next collection", async () => {
    // env(1) adds the settings to what this process has (PATH and the rest).
    const { stdout } = await promisify(execFile)(
      'env',
      [
        ...startAllocatorSettings(),
        process.execPath,
        '-r',
        'ts-node/register/transpile-only',
        '-e',
        RESIDENT_CHILD,
      ],
      { cwd: ROOT },
    );
    const seen = JSON.parse(stdout) as {
      length: number;
      first: number;
      freed: number;
      after: number;
      drop: number;
    };
    expect(seen.length).toBe(4000 * 3000 * 3);
    expect(seen.first).toBe(128);
    expect(seen.freed).toBe(4000 * 3000 * 3);
    // The view reads empty (its memory is not there to read), and the process holds about 36 MB less.
    expect(seen.after).toBe(0);
    expect(seen.drop).toBeGreaterThan(30_000_000);
  });

  it("frees an animation's one buffer once, through the views of its frames", async () => {
    const frames = await decodeAllFrames(await gif(5), 3);
    expect(frames.map((f) => f.data.length)).toEqual([256, 256, 256]);

    expect(releaseFrames(frames)).toBe(5 * 8 * 8 * 4);

    expect(frames.map((f) => f.data.length)).toEqual([0, 0, 0]);
    expect(releaseFrames(frames)).toBe(0);
  });

  it('leaves memory it did not decode alone: a buffer of its own, a slice of a shared one, prepared inputs', async () => {
    const own: RawImage = { data: Buffer.alloc(64 * 64 * 3, 7), width: 64, height: 64, channels: 3 };
    // A small Buffer.from shares Node's pool with other buffers: detaching it would empty them too.
    const pooled = Buffer.from([1, 2, 3]);
    const neighbour = Buffer.from([4, 5, 6]);
    const slice: RawImage = { data: pooled, width: 1, height: 1, channels: 3 };
    const prepared = { inputs: [new Float32Array(4)] };

    expect(releaseFrames([own, slice, prepared])).toBe(0);
    await turns();

    expect(own.data.length).toBe(64 * 64 * 3);
    expect(own.data[100]).toBe(7);
    expect([...slice.data]).toEqual([1, 2, 3]);
    expect([...neighbour]).toEqual([4, 5, 6]);
    expect(prepared.inputs[0].length).toBe(4);
  });

  it('leaves a buffer V8 will not detach as it is, and frees the frames beside it', async () => {
    // A shared buffer cannot be detached (nor can a WebAssembly memory's): transfer() throws for it.
    const stuck: RawImage = {
      data: ownDecoded(new Uint8Array(new SharedArrayBuffer(65536))),
      width: 128,
      height: 128,
      channels: 4,
    };
    stuck.data[5] = 9;
    const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#204060' } })
      .png()
      .toBuffer();
    const frame = await decodeFrame(png, 0);

    expect(releaseFrames([stuck, frame])).toBe(8 * 8 * 3);

    expect(stuck.data.length).toBe(65536);
    expect(stuck.data[5]).toBe(9);
    expect(frame.data.length).toBe(0);
  });

  it('frees a frame once: a second release of it is nothing', async () => {
    const png = await sharp({ create: { width: 32, height: 16, channels: 4, background: '#10203040' } })
      .png()
      .toBuffer();
    const frame = await decodeFrame(png, 0);

    expect(releaseFrames([frame, frame])).toBe(32 * 16 * 4);
    expect(releaseFrames([frame])).toBe(0);
  });
});

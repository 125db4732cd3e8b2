import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import {
  animatedNoise,
  gradientImage,
  noiseImage,
  PRIVATE_EXIF,
  XMP_PACKET,
} from '../../../test/fixtures/images/image-fixtures';
import { MediaError } from './media-error';
import { DEFAULT_RENDER_LIMITS, renderVariant, toMediaError } from './render-variant';
import type { OutputFormat, SourceMime, VariantSpec } from './variant-params';

const SHARP_FORMAT: Record<OutputFormat, keyof sharp.FormatEnum> = {
  webp: 'webp',
  avif: 'heif',
  jpeg: 'jpeg',
  png: 'png',
  gif: 'gif',
};

const ENCODE: Record<SourceMime, (image: sharp.Sharp) => sharp.Sharp> = {
  'image/png': (image) => image.png(),
  'image/jpeg': (image) => image.jpeg({ quality: 90 }),
  'image/gif': (image) => image.gif(),
  'image/webp': (image) => image.webp({ quality: 90 }),
  'image/avif': (image) => image.avif({ quality: 60, effort: 2 }),
};

function inside(width: number | null, height: number | null, format: OutputFormat): VariantSpec {
  return { width, height, fit: 'inside', format };
}

function cover(width: number, height: number, format: OutputFormat): VariantSpec {
  return { width, height, fit: 'cover', format };
}

async function failure(promise: Promise<unknown>): Promise<MediaError> {
  const error: unknown = await promise.then(
    () => new Error('expected rendering to fail'),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(MediaError);
  return error as MediaError;
}

/** The RGBA value of one pixel of the (first frame of the) image. */
async function pixelAt(image: Buffer, x: number, y: number): Promise<number[]> {
  const { data, info } = await sharp(image).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  const i = (y * info.width + x) * 4;
  return [...data.subarray(i, i + 4)];
}

/** A 400×300 image in the given format (a gradient: GIF's quantiser is slow on noise). */
async function photo(mime: SourceMime, width = 400, height = 300): Promise<Buffer> {
  return ENCODE[mime](gradientImage(width, height)).toBuffer();
}

/** A 4-frame animation, 120×80 per frame, with distinct delays. */
async function animation(mime: 'image/gif' | 'image/webp'): Promise<Buffer> {
  const frames = await animatedNoise(120, 80, 4);
  const options = { loop: 3, delay: [100, 200, 300, 400] };
  return mime === 'image/gif' ? frames.gif(options).toBuffer() : frames.webp(options).toBuffer();
}

describe(renderVariant.name, () => {
  describe('formats in and out', () => {
    const sources: SourceMime[] = ['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/avif'];
    const targets: OutputFormat[] = ['webp', 'avif', 'jpeg', 'png'];

    it.each(sources.flatMap((source) => targets.map((target) => [source, target] as const)))(
      'should render %s as %s at 320×240',
      async (source, target) => {
        const rendered = await renderVariant(await photo(source), source, inside(320, null, target));
        expect(rendered).toMatchObject({ mime: `image/${target}`, width: 320, height: 240, pages: 1 });
        const meta = await sharp(rendered.data).metadata();
        expect(meta.format).toBe(SHARP_FORMAT[target]);
        expect(meta.compression ?? null).toBe(target === 'avif' ? 'av1' : null);
        expect([meta.width, meta.height]).toEqual([320, 240]);
      },
    );

    it('should keep a GIF as GIF when the variant keeps its format', async () => {
      const rendered = await renderVariant(await photo('image/gif'), 'image/gif', inside(128, null, 'gif'));
      expect(rendered).toMatchObject({ mime: 'image/gif', width: 128, height: 96 });
      expect((await sharp(rendered.data).metadata()).format).toBe('gif');
    });
  });

  describe('fit', () => {
    let fullHd: Buffer;
    beforeAll(async () => {
      fullHd = await gradientImage(1920, 1080).jpeg().toBuffer();
    });

    it('should fit 1920×1080 inside w=320 as 320×180', async () => {
      const rendered = await renderVariant(fullHd, 'image/jpeg', inside(320, null, 'webp'));
      expect([rendered.width, rendered.height]).toEqual([320, 180]);
    });

    it('should fit 1920×1080 inside h=256 as 455×256', async () => {
      const rendered = await renderVariant(fullHd, 'image/jpeg', inside(null, 256, 'jpeg'));
      expect([rendered.width, rendered.height]).toEqual([455, 256]);
    });

    it('should fit 1920×1080 inside 320×320 by its wider side, as 320×180', async () => {
      const rendered = await renderVariant(fullHd, 'image/jpeg', inside(320, 320, 'png'));
      expect([rendered.width, rendered.height]).toEqual([320, 180]);
    });

    it('should cover 256×256 exactly', async () => {
      const rendered = await renderVariant(fullHd, 'image/jpeg', cover(256, 256, 'webp'));
      expect([rendered.width, rendered.height]).toEqual([256, 256]);
      const meta = await sharp(rendered.data).metadata();
      expect([meta.width, meta.height]).toEqual([256, 256]);
    });

    it('should never enlarge a 100×50 image inside w=320', async () => {
      const small = await noiseImage(100, 50).png().toBuffer();
      const rendered = await renderVariant(small, 'image/png', inside(320, null, 'webp'));
      expect([rendered.width, rendered.height]).toEqual([100, 50]);
      expect((await sharp(rendered.data).metadata()).width).toBe(100);
    });

    it('should cover a 100×50 image to exactly 256×128, enlarging it', async () => {
      const small = await noiseImage(100, 50).png().toBuffer();
      const rendered = await renderVariant(small, 'image/png', cover(256, 128, 'png'));
      expect([rendered.width, rendered.height]).toEqual([256, 128]);
    });

    it('should re-encode at full size when no side is given', async () => {
      const rendered = await renderVariant(await photo('image/png'), 'image/png', inside(null, null, 'webp'));
      expect([rendered.width, rendered.height]).toEqual([400, 300]);
    });

    it('should crop cover around the interesting region (attention), not the centre', async () => {
      // Flat grey, with a noisy, saturated 200×200 patch at the right edge of a 1000×200 canvas.
      const patch = await sharp({
        create: {
          width: 200,
          height: 200,
          channels: 3,
          background: '#000',
          noise: { type: 'gaussian', mean: 128, sigma: 90 },
        },
      })
        .png()
        .toBuffer();
      const canvas = await sharp({ create: { width: 1000, height: 200, channels: 3, background: '#808080' } })
        .composite([{ input: patch, left: 800, top: 0 }])
        .png()
        .toBuffer();
      const rendered = await renderVariant(canvas, 'image/png', cover(128, 128, 'png'));
      const stats = await sharp(rendered.data).stats();
      // A centre crop would be flat grey (stdev 0); the attention crop lands on the patch.
      expect(stats.channels[0].stdev).toBeGreaterThan(30);
    });
  });

  describe('orientation, colour and metadata', () => {
    it('should apply EXIF orientation', async () => {
      // Stored 200×100 with orientation 6 (rotate 90° clockwise): displayed 100×200.
      const rotated = await gradientImage(200, 100).jpeg().withMetadata({ orientation: 6 }).toBuffer();
      const rendered = await renderVariant(rotated, 'image/jpeg', inside(64, null, 'png'));
      expect([rendered.width, rendered.height]).toEqual([64, 128]);
      expect((await sharp(rendered.data).metadata()).orientation).toBeUndefined();
    });

    it.each(['webp', 'avif', 'jpeg', 'png'] as const)(
      'should write no EXIF, XMP or ICC into %s',
      async (format) => {
        const tagged = await noiseImage(400, 300)
          .jpeg()
          .withExif(PRIVATE_EXIF)
          .withXmp(XMP_PACKET)
          .withIccProfile('p3')
          .toBuffer();
        const before = await sharp(tagged).metadata();
        expect(before.exif).toBeDefined();
        expect(before.xmp).toBeDefined();
        expect(before.icc).toBeDefined();
        const rendered = await renderVariant(tagged, 'image/jpeg', inside(320, null, format));
        const meta = await sharp(rendered.data).metadata();
        expect(meta.exif).toBeUndefined();
        expect(meta.xmp).toBeUndefined();
        expect(meta.iptc).toBeUndefined();
        expect(meta.icc).toBeUndefined();
        for (const secret of ['FixtureCam', 'SERIAL-8350', 'xmpmeta', 'Exif\0']) {
          expect(rendered.data.includes(secret)).toBe(false);
        }
      },
    );

    it('should convert through the embedded ICC profile to sRGB', async () => {
      // sharp stores sRGB (60, 200, 60) as Display P3 numbers and tags the file with the P3 profile.
      const green = sharp({
        create: { width: 64, height: 64, channels: 3, background: { r: 60, g: 200, b: 60 } },
      });
      const p3 = await green.png().withIccProfile('p3').toBuffer();
      const stored = await sharp(p3, { ignoreIcc: true }).raw().toBuffer();
      expect(Math.abs(stored[0] - 60)).toBeGreaterThan(30);
      const rendered = await renderVariant(p3, 'image/png', inside(null, null, 'png'));
      const [r, g, b] = await pixelAt(rendered.data, 32, 32);
      for (const [actual, expected] of [
        [r, 60],
        [g, 200],
        [b, 60],
      ]) {
        expect(Math.abs(actual - expected)).toBeLessThanOrEqual(3);
      }
      expect((await sharp(rendered.data).metadata()).icc).toBeUndefined();
    });

    it('should write 8-bit sRGB from a 16-bit PNG', async () => {
      const deep = await noiseImage(100, 100).toColourspace('rgb16').png().toBuffer();
      expect((await sharp(deep).metadata()).depth).toBe('ushort');
      const rendered = await renderVariant(deep, 'image/png', inside(64, null, 'png'));
      const meta = await sharp(rendered.data).metadata();
      expect(meta.depth).toBe('uchar');
      expect(meta.space).toBe('srgb');
    });

    it('should flatten a transparent image over white for JPEG', async () => {
      const transparent = await sharp({
        create: { width: 64, height: 64, channels: 4, background: { r: 255, g: 0, b: 0, alpha: 0 } },
      })
        .png()
        .toBuffer();
      const rendered = await renderVariant(transparent, 'image/png', inside(null, null, 'jpeg'));
      const [r, g, b] = await pixelAt(rendered.data, 10, 10);
      expect(Math.min(r, g, b)).toBeGreaterThanOrEqual(250);
    });

    it.each(['webp', 'avif', 'png'] as const)('should keep transparency in %s', async (format) => {
      const transparent = await noiseImage(64, 64, 4).png().toBuffer();
      const half = await sharp(transparent)
        .composite([
          {
            input: { create: { width: 32, height: 64, channels: 4, background: '#0000' } },
            left: 0,
            top: 0,
            blend: 'dest-in',
          },
        ])
        .png()
        .toBuffer();
      const rendered = await renderVariant(half, 'image/png', inside(null, null, format));
      expect((await sharp(rendered.data).metadata()).hasAlpha).toBe(true);
      expect((await pixelAt(rendered.data, 5, 5))[3]).toBe(0);
    });
  });

  describe('animations', () => {
    it.each(['image/gif', 'image/webp'] as const)(
      'should render an animated %s as an animated WebP keeping every frame',
      async (source) => {
        const rendered = await renderVariant(await animation(source), source, inside(64, null, 'webp'));
        expect(rendered).toMatchObject({ mime: 'image/webp', width: 64, height: 43, pages: 4 });
        const meta = await sharp(rendered.data, { pages: -1 }).metadata();
        expect(meta.format).toBe('webp');
        expect(meta.pages).toBe(4);
        expect(meta.pageHeight).toBe(43);
        expect(meta.delay).toEqual([100, 200, 300, 400]);
        expect(meta.loop).toBe(3);
      },
    );

    it('should keep an animated GIF animated as GIF when no format is asked', async () => {
      const rendered = await renderVariant(
        await animation('image/gif'),
        'image/gif',
        inside(64, null, 'gif'),
      );
      const meta = await sharp(rendered.data, { pages: -1 }).metadata();
      expect(meta.format).toBe('gif');
      expect(meta.pages).toBe(4);
      expect(meta.width).toBe(64);
      expect(meta.delay).toEqual([100, 200, 300, 400]);
    });

    it('should cover every frame of an animation to exactly w×h', async () => {
      const rendered = await renderVariant(await animation('image/gif'), 'image/gif', cover(64, 64, 'webp'));
      expect(rendered).toMatchObject({ width: 64, height: 64, pages: 4 });
      const meta = await sharp(rendered.data, { pages: -1 }).metadata();
      expect([meta.width, meta.pageHeight, meta.pages]).toEqual([64, 64, 4]);
    });

    it.each(['png', 'jpeg', 'avif'] as const)('should render the first frame only as %s', async (format) => {
      const gif = await animation('image/gif');
      const rendered = await renderVariant(gif, 'image/gif', inside(null, null, format));
      expect(rendered).toMatchObject({ width: 120, height: 80, pages: 1 });
      const meta = await sharp(rendered.data, { pages: -1 }).metadata();
      expect(meta.pages ?? 1).toBe(1);
      expect(meta.height).toBe(80);
      if (format === 'png') {
        // Lossless: the very pixels of frame 1.
        const first = await sharp(gif, { pages: 1 }).ensureAlpha().raw().toBuffer();
        const out = await sharp(rendered.data).ensureAlpha().raw().toBuffer();
        expect(out.equals(first)).toBe(true);
      }
    });

    it('should orient every frame of an animated WebP that still carries EXIF orientation', async () => {
      const tagged = await (await animatedNoise(120, 80, 3))
        .webp()
        .withMetadata({ orientation: 6 })
        .toBuffer();
      expect((await sharp(tagged, { pages: -1 }).metadata()).orientation).toBe(6);
      const rendered = await renderVariant(tagged, 'image/webp', inside(null, null, 'webp'));
      expect(rendered).toMatchObject({ width: 80, height: 120, pages: 3 });
      const meta = await sharp(rendered.data, { pages: -1 }).metadata();
      expect([meta.width, meta.pageHeight, meta.pages, meta.exif]).toEqual([80, 120, 3, undefined]);
    });

    it('should refuse an animation that would exceed the output pixel limit at the asked size', async () => {
      // 4 frames × 256×256 = 262,144 px > 200,000.
      const limits = { ...DEFAULT_RENDER_LIMITS, maxOutputPixels: 200_000 };
      const error = await failure(
        renderVariant(await animation('image/gif'), 'image/gif', cover(256, 256, 'webp'), limits),
      );
      expect(error.code).toBe('bad_request');
      expect(error.message).toBe('At 256×256 px, 4 frames exceed 0.2 megapixels; ask for a smaller size.');
      // Its first frame alone fits.
      const still = await renderVariant(
        await animation('image/gif'),
        'image/gif',
        cover(256, 256, 'png'),
        limits,
      );
      expect(still.pages).toBe(1);
    });
  });

  describe('a still known from its upload row (no header read first)', () => {
    const STILL = { frames: 1 };

    it.each([
      ['image/jpeg', inside(64, null, 'webp')],
      ['image/png', cover(50, 50, 'jpeg')],
      ['image/webp', inside(null, 32, 'png')],
      ['image/avif', inside(128, 128, 'avif')],
    ] as const)('should make the very bytes the full path makes: %s → %j', async (mime, spec) => {
      const input = await photo(mime);
      const full = await renderVariant(input, mime, spec);
      const known = await renderVariant(input, mime, spec, DEFAULT_RENDER_LIMITS, STILL);
      expect(known.data.equals(full.data)).toBe(true);
      expect([known.width, known.height, known.pages]).toEqual([full.width, full.height, 1]);
    });

    it('should apply EXIF orientation', async () => {
      const rotated = await gradientImage(200, 100).jpeg().withMetadata({ orientation: 6 }).toBuffer();
      const rendered = await renderVariant(
        rotated,
        'image/jpeg',
        inside(64, null, 'png'),
        DEFAULT_RENDER_LIMITS,
        STILL,
      );
      expect([rendered.width, rendered.height]).toEqual([64, 128]);
    });

    it('should still refuse bytes that are not of the stated type, and a cover over the output limit', async () => {
      const png = await photo('image/png');
      const wrong = await failure(
        renderVariant(png, 'image/jpeg', inside(64, null, 'webp'), DEFAULT_RENDER_LIMITS, STILL),
      );
      expect(wrong.message).toBe('The stored bytes are not a valid image/jpeg image.');
      const limits = { ...DEFAULT_RENDER_LIMITS, maxOutputPixels: 1000 };
      const tooBig = await failure(renderVariant(png, 'image/png', cover(64, 64, 'png'), limits, STILL));
      expect(tooBig.code).toBe('bad_request');
    });
  });

  describe('from a file (a local original: libvips reads it, the sniffer reads its first bytes alongside)', () => {
    const STILL = { frames: 1 };
    let dir: string;
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'fxf-render-'));
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    const file = (name: string, bytes: Buffer): { path: string } => {
      const path = join(dir, name);
      writeFileSync(path, bytes);
      return { path };
    };

    it.each([
      ['image/jpeg', inside(64, null, 'webp')],
      ['image/png', cover(50, 50, 'jpeg')],
      ['image/gif', inside(64, null, 'png')],
    ] as const)('should make the very bytes it makes from memory: %s → %j', async (mime, spec) => {
      const input = await photo(mime);
      const fromMemory = await renderVariant(input, mime, spec, DEFAULT_RENDER_LIMITS, STILL);
      const fromFile = await renderVariant(
        file(`same.${mime.slice(6)}`, input),
        mime,
        spec,
        DEFAULT_RENDER_LIMITS,
        STILL,
      );
      expect(fromFile.data.equals(fromMemory.data)).toBe(true);
      // The full path (an animation, or frames unknown) reads the whole file and judges it as before.
      const full = await renderVariant(file(`full.${mime.slice(6)}`, input), mime, spec);
      expect(full.data.equals(fromMemory.data)).toBe(true);
    });

    it('should refuse a file that is not of the stated type, though libvips could render it', async () => {
      const png = file('lying.jpg', await photo('image/png'));
      const wrong = await failure(
        renderVariant(png, 'image/jpeg', inside(64, null, 'webp'), DEFAULT_RENDER_LIMITS, STILL),
      );
      expect(wrong.message).toBe('The stored bytes are not a valid image/jpeg image.');
    });

    it('should fail with processing_failed on a file that is not there, or is damaged', async () => {
      const missing = await failure(
        renderVariant(
          { path: join(dir, 'gone.jpg') },
          'image/jpeg',
          inside(64, null, 'webp'),
          DEFAULT_RENDER_LIMITS,
          STILL,
        ),
      );
      expect(missing.code).toBe('processing_failed');
      const whole = await photo('image/jpeg');
      const cut = file('cut.jpg', whole.subarray(0, whole.length >> 1));
      const damaged = await failure(
        renderVariant(cut, 'image/jpeg', inside(64, null, 'webp'), DEFAULT_RENDER_LIMITS, STILL),
      );
      expect(damaged.code).toBe('processing_failed');
    });
  });

  describe('bad input', () => {
    it('should fail on truncated bytes', async () => {
      const jpeg = await photo('image/jpeg');
      const error = await failure(
        renderVariant(jpeg.subarray(0, jpeg.length / 2), 'image/jpeg', inside(64, null, 'png')),
      );
      expect(error.code).toBe('processing_failed');
      expect(error.message).toBe('The image could not be decoded to render this variant.');
      expect(error.cause).toBeInstanceOf(Error);
    });

    it('should fail on bytes that are no image, and on empty input', async () => {
      for (const input of [
        Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>'),
        Buffer.alloc(0),
        Buffer.alloc(64, 0xff),
      ]) {
        expect((await failure(renderVariant(input, 'image/png', inside(64, null, 'png')))).code).toBe(
          'processing_failed',
        );
      }
    });

    it('should fail when the bytes are not of the stated type', async () => {
      const png = await photo('image/png');
      const error = await failure(renderVariant(png, 'image/jpeg', inside(64, null, 'webp')));
      expect(error.code).toBe('processing_failed');
      expect(error.message).toBe('The stored bytes are not a valid image/jpeg image.');
    });

    it('should fail on an image over the input pixel limit before decoding it', async () => {
      const limits = { ...DEFAULT_RENDER_LIMITS, maxInputPixels: 100_000 };
      const error = await failure(
        renderVariant(await photo('image/png', 400, 300), 'image/png', inside(64, null, 'png'), limits),
      );
      expect(error.code).toBe('processing_failed');
    });

    it('should count every frame of an animation against the input pixel limit', async () => {
      // 4 frames × 120×80 = 38,400 px; one frame (9,600 px) would pass.
      const limits = { ...DEFAULT_RENDER_LIMITS, maxInputPixels: 20_000 };
      const error = await failure(
        renderVariant(await animation('image/gif'), 'image/gif', inside(64, null, 'png'), limits),
      );
      expect(error.code).toBe('processing_failed');
      expect(error.message).toBe('The image exceeds the pixel limit (all frames together).');
    });

    it('should map a render that sharp abandoned at its timeout to unavailable', async () => {
      // sharp's timeout is checked while pixels are computed: a huge blur is seconds of work on any machine, so the
      // 1 s limit always stops it, and the error is the one renderVariant sees from a render that ran too long.
      const timedOut: unknown = await sharp({
        create: { width: 6000, height: 6000, channels: 3, background: '#808080' },
      })
        .blur(300)
        .timeout({ seconds: 1 })
        .raw()
        .toBuffer()
        .then(
          () => new Error('expected the blur to time out'),
          (e: unknown) => e,
        );
      expect(String(timedOut)).toContain('timeout');
      const error = toMediaError(timedOut);
      expect(error.code).toBe('unavailable');
      expect(error.message).toBe('Rendering this variant took too long; try again later.');
      expect(error.cause).toBe(timedOut);
    });
  });
});

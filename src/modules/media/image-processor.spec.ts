import sharp from 'sharp';
import {
  animatedNoise,
  animatedWebpCanvas,
  apngChunks,
  gifApplication,
  gifCanvas,
  gifComment,
  gradientImage,
  iptcSegment,
  jpegIccSegments,
  jpegSegment,
  junkProfile,
  noiseImage,
  pngChunk,
  pngClaiming,
  PRIVATE_EXIF,
  webpChunks,
  withGifBlocks,
  withJpegSegments,
  withDamagedPixelData,
  withPngChunks,
  XMP_PACKET,
} from '../../../test/fixtures/images/image-fixtures';
import { AppError } from '../../common/errors/app-error';
import { DEFAULT_IMAGE_OPTIONS } from './image-limits';
import { processImage } from './image-processor';
import type { ImageType } from './image.types';

const PNG: ImageType = { ext: 'png', mime: 'image/png' };
const JPG: ImageType = { ext: 'jpg', mime: 'image/jpeg' };
const GIF: ImageType = { ext: 'gif', mime: 'image/gif' };
const WEBP: ImageType = { ext: 'webp', mime: 'image/webp' };
const AVIF: ImageType = { ext: 'avif', mime: 'image/avif' };

async function failure(promise: Promise<unknown>): Promise<AppError> {
  const error: unknown = await promise.then(
    () => new Error('expected processing to fail'),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(AppError);
  return error as AppError;
}

function pixels(image: Buffer): Promise<Buffer> {
  return sharp(image, { pages: -1 }).raw().toBuffer();
}

function expectNoMetadata(meta: sharp.Metadata): void {
  expect(meta.exif).toBeUndefined();
  expect(meta.xmp).toBeUndefined();
  expect(meta.iptc).toBeUndefined();
  expect(meta.comments).toBeUndefined();
  expect(meta.orientation ?? 1).toBe(1);
}

function expectNoPrivateStrings(image: Buffer): void {
  for (const secret of [
    'SERIAL-8350',
    'FixtureCam',
    'xmpmeta',
    'Exif\0',
    'secret comment',
    'Jane Photographer',
  ]) {
    expect(image.includes(secret)).toBe(false);
  }
}

describe(processImage.name, () => {
  describe('limits and damage', () => {
    it('should reject a truncated PNG', async () => {
      const png = await noiseImage(64, 64).png().toBuffer();
      const error = await failure(processImage(png.subarray(0, png.length - 300), PNG));
      expect(error.code).toBe('processing_failed');
    });

    it('should reject a 100000×100000 PNG header without allocating its pixels', async () => {
      const started = Date.now();
      const error = await failure(processImage(pngClaiming(100_000, 100_000), PNG));
      expect(error.code).toBe('processing_failed');
      expect(Date.now() - started).toBeLessThan(500);
    });

    it('should reject an image over 16384 px on a side, under 100 megapixels', async () => {
      const wide = await sharp({ create: { width: 16385, height: 2, channels: 3, background: '#fff' } })
        .png()
        .toBuffer();
      const error = await failure(processImage(wide, PNG));
      expect(error.code).toBe('processing_failed');
      expect(error.message).toContain('16384');
    });

    it('should decode every pixel: a PNG with damaged image data in a sound container fails', async () => {
      const png = await noiseImage(128, 128).png().toBuffer();
      const error = await failure(processImage(withDamagedPixelData(png), PNG));
      expect(error.code).toBe('processing_failed');
    });

    it('should reject a JPEG whose tables are corrupt', async () => {
      const jpeg = await noiseImage(64, 64).jpeg().toBuffer();
      const sos = jpeg.indexOf(Buffer.from([0xff, 0xda]));
      const corrupt = Buffer.from(jpeg);
      corrupt.fill(0x5a, sos - 40, sos); // the end of the Huffman tables
      const error = await failure(processImage(corrupt, JPG));
      expect(error.code).toBe('processing_failed');
    });

    it('should reject a truncated JPEG', async () => {
      const jpeg = await noiseImage(64, 64).jpeg().toBuffer();
      const error = await failure(processImage(jpeg.subarray(0, jpeg.length - 500), JPG));
      expect(error.code).toBe('processing_failed');
    });

    it('should reject an animated GIF whose frames total over 100 megapixels', async () => {
      const error = await failure(processImage(gifCanvas(8000, 8000, 2), GIF));
      expect(error.code).toBe('processing_failed');
    });

    it('should reject an animated WebP whose frames total over 100 megapixels', async () => {
      const error = await failure(processImage(await animatedWebpCanvas(8000, 8000, 2), WEBP));
      expect(error.code).toBe('processing_failed');
    });

    it('should reject an APNG whose frames total over 100 megapixels', async () => {
      const error = await failure(processImage(pngClaiming(8000, 8000, ...apngChunks(2, 8000, 8000)), PNG));
      expect(error.code).toBe('processing_failed');
      expect(error.message).toContain('100 megapixels');
    });

    it('should judge a GIF by its logical screen, which libvips ignores over 2048 px', async () => {
      expect(await processImage(gifCanvas(5000, 5000, 4), GIF)).toMatchObject({ pages: 4 });
      const error = await failure(processImage(gifCanvas(5000, 5000, 5), GIF));
      expect(error.code).toBe('processing_failed');
    });

    it.each([
      ['png', PNG, Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])],
      ['jpg', JPG, Buffer.from([0xff, 0xd8, 0xff])],
      ['gif', GIF, Buffer.from('GIF89a')],
      ['webp', WEBP, Buffer.from('RIFF\x00\x10\x00\x00WEBPVP8 ', 'latin1')],
      ['avif', AVIF, Buffer.from('\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf', 'latin1')],
    ])(
      'should answer processing_failed for random bytes after a %s signature',
      async (_, type, signature) => {
        let seed = 7;
        const noise = Buffer.alloc(4096, 0).map(() => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24);
        const error = await failure(processImage(Buffer.concat([signature, noise]), type));
        expect(error.code).toBe('processing_failed');
      },
    );

    it('should reject bytes of another format than the type claimed', async () => {
      const gif = await noiseImage(8, 8).gif().toBuffer();
      const error = await failure(processImage(gif, PNG));
      expect(error.code).toBe('processing_failed');
    });
  });

  describe('frame cap', () => {
    it('should refuse an animated GIF with more frames than maxFrames, naming the cap', async () => {
      const gif = await (await animatedNoise(8, 8, 6)).gif().toBuffer();
      const options = { maxFrames: 5, maxIccBytes: 65536, timeoutSeconds: 20 };
      const error = await failure(processImage(gif, GIF, options));
      expect(error.code).toBe('processing_failed');
      expect(error.message).toBe('The animation has 6 frames; at most 5 frames are accepted.');
      expect(await processImage(gif, GIF, { ...options, maxFrames: 6 })).toMatchObject({ pages: 6 });
    });

    it('should refuse an animated WebP with more frames than maxFrames', async () => {
      const webp = await (await animatedNoise(8, 8, 3)).webp().toBuffer();
      const error = await failure(
        processImage(webp, WEBP, { maxFrames: 2, maxIccBytes: 65536, timeoutSeconds: 20 }),
      );
      expect(error.message).toContain('at most 2 frames');
    });
  });

  describe('JPEG', () => {
    it('should not carry 1 MB of junk posing as an ICC profile through a re-encode (orientation 6)', async () => {
      const oriented = await noiseImage(64, 32).jpeg().withMetadata({ orientation: 6 }).toBuffer();
      const payload = junkProfile(1024 * 1024);
      const input = withJpegSegments(oriented, ...jpegIccSegments(payload));
      expect((await sharp(input).metadata()).icc?.length).toBeGreaterThan(900_000);

      const result = await processImage(input, JPG);

      const after = await sharp(result.data).metadata();
      expect(after.icc).toBeUndefined();
      expect(result.data.length).toBeLessThan(100_000);
      expect(result).toMatchObject({ width: 32, height: 64 });
    });

    it('should apply orientation 6, drop EXIF with GPS, and keep the ICC profile', async () => {
      const input = await noiseImage(64, 32)
        .jpeg()
        .withExif(PRIVATE_EXIF)
        .withMetadata({ orientation: 6 })
        .withIccProfile('p3')
        .toBuffer();
      const before = await sharp(input).metadata();
      expect(before).toMatchObject({ orientation: 6, width: 64, height: 32 });

      const result = await processImage(input, JPG);

      const after = await sharp(result.data).metadata();
      expectNoMetadata(after);
      expectNoPrivateStrings(result.data);
      expect(after).toMatchObject({ format: 'jpeg', width: 32, height: 64 });
      expect(result).toMatchObject({ width: 32, height: 64, pages: 1 });
      expect(after.icc).toEqual(before.icc);
    });

    it('should drop EXIF, XMP, IPTC and comments without re-encoding the pixels', async () => {
      const plain = await noiseImage(48, 40)
        .jpeg()
        .withExif(PRIVATE_EXIF)
        .withXmp(XMP_PACKET)
        .withIccProfile('p3')
        .toBuffer();
      const input = withJpegSegments(
        plain,
        jpegSegment(0xfe, 'secret comment'),
        iptcSegment('Jane Photographer'),
      );
      const before = await sharp(input).metadata();
      expect(before.exif && before.xmp && before.iptc).toBeTruthy();

      const result = await processImage(input, JPG);

      const after = await sharp(result.data).metadata();
      expectNoMetadata(after);
      expectNoPrivateStrings(result.data);
      expect(after.icc).toEqual(before.icc);
      expect(await pixels(result.data)).toEqual(await pixels(input));
      expect(result).toMatchObject({ width: 48, height: 40, pages: 1 });
    });

    it('should refuse a JPEG whose frame header is over the limits before any decode', async () => {
      const plain = await noiseImage(40, 30).jpeg().toBuffer();
      const sof = plain.indexOf(Buffer.from([0xff, 0xc0]));
      const claiming = Buffer.from(plain);
      claiming.writeUInt16BE(20_000, sof + 7); // the width
      const error = await failure(processImage(claiming, JPG, { ...DEFAULT_IMAGE_OPTIONS, reviewFrames: 1 }));
      expect(error.code).toBe('processing_failed');
      expect(error.message).toBe('The image is 20000×30 px; at most 16384 px a side.');
    });

    it('should keep the entropy-coded data byte for byte', async () => {
      const plain = await noiseImage(40, 40).jpeg({ progressive: true }).toBuffer();
      const input = withJpegSegments(plain, jpegSegment(0xe1, 'Exif\0\0junk'));
      const { data } = await processImage(input, JPG);
      const firstScan = (image: Buffer) => image.subarray(image.indexOf(Buffer.from([0xff, 0xda])));
      expect(firstScan(data)).toEqual(firstScan(plain));
    });
  });

  describe('PNG', () => {
    it('should drop eXIf, tEXt, iTXt and tIME chunks without re-encoding the pixels', async () => {
      const plain = await noiseImage(40, 30, 4).png().withIccProfile('p3').toBuffer();
      const exif = (await sharp(await noiseImage(8, 8).jpeg().withExif(PRIVATE_EXIF).toBuffer()).metadata())
        .exif!;
      const input = withPngChunks(
        plain,
        pngChunk('eXIf', exif.subarray(6)), // PNG stores the TIFF structure without JPEG's "Exif\0\0"
        pngChunk('tEXt', 'Comment\0secret comment'),
        pngChunk('iTXt', `XML:com.adobe.xmp\0\0\0\0\0${XMP_PACKET}`),
        pngChunk('tIME', Buffer.from([0x07, 0xea, 5, 1, 11, 59, 0])),
      );
      const before = await sharp(input).metadata();
      expect(before.exif && before.comments).toBeTruthy();

      const result = await processImage(input, PNG);

      const after = await sharp(result.data).metadata();
      expectNoMetadata(after);
      expectNoPrivateStrings(result.data);
      expect(result.data.includes('tIME')).toBe(false);
      expect(after.icc).toEqual(before.icc);
      expect(await pixels(result.data)).toEqual(await pixels(input));
    });

    it('should apply an eXIf orientation losslessly', async () => {
      const input = await gradientImage(30, 20).png().withMetadata({ orientation: 8 }).toBuffer();

      const result = await processImage(input, PNG);

      expectNoMetadata(await sharp(result.data).metadata());
      expect(result).toMatchObject({ width: 20, height: 30 });
      expect(await pixels(result.data)).toEqual(await sharp(input).rotate().raw().toBuffer());
    });

    it('should keep 16 bits per channel when it has to re-encode', async () => {
      const input = await gradientImage(30, 20)
        .toColourspace('rgb16')
        .png()
        .withMetadata({ orientation: 6 })
        .toBuffer();
      expect((await sharp(input).metadata()).depth).toBe('ushort');

      const result = await processImage(input, PNG);

      expect(await sharp(result.data).metadata()).toMatchObject({ depth: 'ushort', width: 20, height: 30 });
    });
  });

  describe('WebP', () => {
    it('should drop EXIF and XMP chunks, clear their VP8X flags, and keep the pixels and ICC', async () => {
      const input = await noiseImage(40, 30)
        .webp()
        .withExif(PRIVATE_EXIF)
        .withXmp(XMP_PACKET)
        .withIccProfile('p3')
        .toBuffer();
      const before = await sharp(input).metadata();
      expect(webpChunks(input).map(([fourcc]) => fourcc)).toEqual(expect.arrayContaining(['EXIF', 'XMP ']));

      const result = await processImage(input, WEBP);

      const chunks = webpChunks(result.data);
      expect(chunks.map(([fourcc]) => fourcc)).toEqual(['VP8X', 'ICCP', 'VP8 ']);
      expect(chunks[0][1][0] & 0x0c).toBe(0);
      expect(result.data.readUInt32LE(4)).toBe(result.data.length - 8);
      const after = await sharp(result.data).metadata();
      expectNoMetadata(after);
      expectNoPrivateStrings(result.data);
      expect(after.icc).toEqual(before.icc);
      expect(await pixels(result.data)).toEqual(await pixels(input));
    });

    it.each([2, 3, 4, 5, 6, 7, 8])(
      'should apply orientation %i to every frame of an animation',
      async (orientation) => {
        const frame = await gradientImage(24, 16).ensureAlpha().raw().toBuffer();
        const flipped = await gradientImage(24, 16).flip().ensureAlpha().raw().toBuffer();
        const input = await sharp(Buffer.concat([frame, flipped]), {
          raw: { width: 24, height: 32, channels: 4, pageHeight: 16 },
        })
          .webp({ lossless: true, delay: [50, 70], loop: 2 })
          .withMetadata({ orientation })
          .toBuffer();
        expect(await sharp(input, { pages: -1 }).metadata()).toMatchObject({ pages: 2, orientation });
        const expected = await Promise.all(
          [frame, flipped].map(async (raw) => {
            const still = await sharp(raw, { raw: { width: 24, height: 16, channels: 4 } })
              .png()
              .withMetadata({ orientation })
              .toBuffer();
            return sharp(still).rotate().raw().toBuffer();
          }),
        );

        const result = await processImage(input, WEBP);

        const [width, height] = orientation >= 5 ? [16, 24] : [24, 16];
        expect(result).toMatchObject({ width, height, pages: 2 });
        const after = await sharp(result.data, { pages: -1 }).metadata();
        expectNoMetadata(after);
        expect(after).toMatchObject({ pages: 2, width, pageHeight: height, delay: [50, 70], loop: 2 });
        const decoded = await sharp(result.data, { pages: -1 }).ensureAlpha().raw().toBuffer();
        const frameBytes = width * height * 4;
        expected.forEach((want, i) => {
          const got = decoded.subarray(i * frameBytes, (i + 1) * frameBytes);
          const meanError = got.reduce((sum, value, j) => sum + Math.abs(value - want[j]), 0) / frameBytes;
          expect(meanError).toBeLessThan(2); // lossy WebP; a wrong orientation is off by tens
        });
      },
    );
  });

  describe('GIF', () => {
    it('should drop comments and XMP, keeping frames, timing and looping', async () => {
      const animation = await (await animatedNoise(20, 20, 3))
        .gif({ delay: [40, 50, 60], loop: 0 })
        .toBuffer();
      const input = withGifBlocks(
        animation,
        gifComment('secret comment'),
        gifApplication('XMP DataXMP', XMP_PACKET),
      );

      const result = await processImage(input, GIF);

      expectNoPrivateStrings(result.data);
      expect(result.data).toEqual(animation);
      expect(result).toMatchObject({ width: 20, height: 20, pages: 3 });
      const after = await sharp(result.data, { pages: -1 }).metadata();
      expect(after).toMatchObject({ pages: 3, delay: [40, 50, 60], loop: 0 });
    });
  });

  describe('AVIF', () => {
    it('should re-encode without EXIF or XMP, keeping the ICC profile', async () => {
      const input = await noiseImage(40, 30)
        .avif()
        .withExif(PRIVATE_EXIF)
        .withXmp(XMP_PACKET)
        .withIccProfile('p3')
        .toBuffer();
      const before = await sharp(input).metadata();
      expect(before.exif && before.xmp).toBeTruthy();

      const result = await processImage(input, AVIF);

      const after = await sharp(result.data).metadata();
      expect(after).toMatchObject({ format: 'heif', compression: 'av1', width: 40, height: 30 });
      expectNoMetadata(after);
      expectNoPrivateStrings(result.data);
      expect(after.icc).toEqual(before.icc);
      expect(result).toMatchObject({ width: 40, height: 30, pages: 1 });
    });
  });
});

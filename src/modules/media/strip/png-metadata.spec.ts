import {
  apngChunks,
  damagedCopies,
  iccpChunk,
  junkProfile,
  noiseImage,
  PNG_SIGNATURE,
  pngChunk,
  pngClaiming,
  srgbProfile,
  withPngChunks,
} from '../../../../test/fixtures/images/image-fixtures';
import { AppError } from '../../../common/errors/app-error';
import { stripPngMetadata } from './png-metadata';

function chunkTypes(png: Buffer): string[] {
  const types: string[] = [];
  for (let pos = 8; pos + 8 <= png.length; pos += 12 + png.readUInt32BE(pos)) {
    types.push(png.toString('latin1', pos + 4, pos + 8));
  }
  return types;
}

describe(stripPngMetadata.name, () => {
  let plain: Buffer;
  let srgb: Buffer;
  beforeAll(async () => {
    plain = await noiseImage(16, 16, 4).png().toBuffer();
    srgb = await srgbProfile();
  });

  it('should keep critical, colour and animation chunks and drop text, time, EXIF and private chunks', () => {
    const input = withPngChunks(
      plain,
      iccpChunk(srgb),
      pngChunk('gAMA', Buffer.from([0, 0, 0xb1, 0x8f])),
      pngChunk('eXIf', 'MM\0*'),
      pngChunk('tEXt', 'Author\0someone'),
      pngChunk('zTXt', 'Comment\0\0x'),
      pngChunk('iTXt', 'XML:com.adobe.xmp\0\0\0\0\0<x/>'),
      pngChunk('tIME', Buffer.alloc(7)),
      pngChunk('iDOT', Buffer.alloc(28)),
      pngChunk('caBX', 'c2pa manifest'),
      ...apngChunks(1, 16, 16),
    );

    expect(chunkTypes(stripPngMetadata(input))).toEqual([
      'IHDR',
      'iCCP',
      'gAMA',
      'acTL',
      'fcTL',
      'pHYs',
      'IDAT',
      'IEND',
    ]);
  });

  it('should keep a valid iCCP chunk byte for byte and drop a junk, a second or an oversized one', () => {
    const valid = withPngChunks(plain, iccpChunk(srgb));
    expect(stripPngMetadata(valid)).toEqual(valid);
    expect(stripPngMetadata(withPngChunks(plain, iccpChunk(junkProfile(1024 * 1024))))).toEqual(plain);
    expect(stripPngMetadata(withPngChunks(plain, pngChunk('iCCP', 'icc\0\0not zlib')))).toEqual(plain);
    expect(stripPngMetadata(withPngChunks(plain, iccpChunk(srgb), iccpChunk(srgb)))).toEqual(valid);
    expect(stripPngMetadata(valid, { maxFrames: 1000, maxIccBytes: 100 })).toEqual(plain);
  });

  it('should refuse an APNG over the frame cap', () => {
    const apng = withPngChunks(plain, ...apngChunks(5, 16, 16));
    expect(() => stripPngMetadata(apng, { maxFrames: 5, maxIccBytes: 65536 })).not.toThrow();
    expect(() => stripPngMetadata(apng, { maxFrames: 4, maxIccBytes: 65536 })).toThrow(
      expect.objectContaining({
        code: 'processing_failed',
        message: expect.stringContaining('at most 4 frames'),
      }),
    );
  });

  it('should drop what follows IEND', () => {
    expect(stripPngMetadata(Buffer.concat([plain, Buffer.from('trailing')]))).toEqual(plain);
  });

  it('should apply the pixel limit to all APNG frames together', () => {
    expect(() => stripPngMetadata(pngClaiming(8000, 8000, ...apngChunks(1, 8000, 8000)))).not.toThrow();
    expect(() => stripPngMetadata(pngClaiming(8000, 8000, ...apngChunks(2, 8000, 8000)))).toThrow(
      expect.objectContaining({ code: 'processing_failed' }),
    );
  });

  it.each([
    ['a bad signature', () => Buffer.concat([Buffer.from('\x89PNG\r\n\x1a\x00'), plain.subarray(8)])],
    [
      'a chunk longer than the file',
      () => withPngChunks(plain, Buffer.from([0, 1, 0, 0, 0x74, 0x45, 0x58, 0x74])),
    ],
    [
      'a chunk length over 2^31',
      () => withPngChunks(plain, Buffer.from([0xff, 0xff, 0xff, 0xf0, 0x74, 0x45, 0x58, 0x74])),
    ],
    ['a chunk type that is not letters', () => withPngChunks(plain, pngChunk('t\0Xt', 'x'))],
    ['a first chunk other than IHDR', () => Buffer.concat([PNG_SIGNATURE, pngChunk('IEND', '')])],
    ['no IEND', () => plain.subarray(0, plain.length - 12)],
  ])('should answer processing_failed for %s', (_, make) => {
    expect(() => stripPngMetadata(make())).toThrow(expect.objectContaining({ code: 'processing_failed' }));
  });

  it('should only ever return bytes or processing_failed on damaged input', () => {
    const input = withPngChunks(plain, pngChunk('tEXt', 'Author\0someone'), ...apngChunks(2, 16, 16));
    for (const damaged of damagedCopies(input, 300)) {
      try {
        expect(stripPngMetadata(damaged)).toBeInstanceOf(Buffer);
      } catch (error) {
        expect(error).toBeInstanceOf(AppError);
        expect((error as AppError).code).toBe('processing_failed');
      }
    }
  });
});

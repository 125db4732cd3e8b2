import sharp from 'sharp';
import {
  animatedNoise,
  damagedCopies,
  junkProfile,
  riffWebp,
  webpChunk,
  webpChunks,
} from '../../../../test/fixtures/images/image-fixtures';
import { AppError } from '../../../common/errors/app-error';
import { stripWebpMetadata } from './webp-metadata';

describe(stripWebpMetadata.name, () => {
  let animated: Buffer;
  let simple: Buffer;
  beforeAll(async () => {
    animated = await (await animatedNoise(8, 8, 2)).webp({ loop: 0 }).withIccProfile('p3').toBuffer();
    simple = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#123' } })
      .webp()
      .toBuffer();
  });

  function withChunks(webp: Buffer, ...extra: Buffer[]): Buffer {
    const chunks = webpChunks(webp).map(([fourcc, data]) => webpChunk(fourcc, data));
    return riffWebp(chunks[0], ...extra, ...chunks.slice(1));
  }

  it('should keep a valid ICCP chunk, and drop a junk one and clear its VP8X flag', () => {
    expect(stripWebpMetadata(animated)).toEqual(animated);
    const chunks = webpChunks(animated).map(([fourcc, data]) =>
      fourcc === 'ICCP' ? webpChunk('ICCP', junkProfile(200_000)) : webpChunk(fourcc, data),
    );
    const stripped = stripWebpMetadata(riffWebp(...chunks));
    expect(webpChunks(stripped).map(([fourcc]) => fourcc)).not.toContain('ICCP');
    expect(webpChunks(stripped)[0][1][0] & 0x20).toBe(0);
    expect(webpChunks(animated)[0][1][0] & 0x20).toBe(0x20);
  });

  it('should drop EXIF, XMP and unknown chunks, clear their flags and keep the animation', () => {
    const input = withChunks(
      animated,
      webpChunk('EXIF', 'MM\0*'),
      webpChunk('XMP ', '<x/>'),
      webpChunk('ZZZZ', 'odd'),
    );
    const vp8x = Buffer.from(webpChunks(input)[0][1]);
    vp8x[0] |= 0x0c;
    const flagged = riffWebp(
      webpChunk('VP8X', vp8x),
      ...webpChunks(input)
        .slice(1)
        .map(([f, d]) => webpChunk(f, d)),
    );

    const stripped = stripWebpMetadata(flagged);

    expect(stripped).toEqual(animated);
    expect(webpChunks(stripped)[0][1][0] & 0x0c).toBe(0);
  });

  it('should recompute the RIFF size and drop bytes past it', () => {
    const stripped = stripWebpMetadata(
      Buffer.concat([withChunks(simple, webpChunk('EXIF', 'MM\0*\0')), Buffer.from('tail')]),
    );
    expect(stripped).toEqual(simple);
    expect(stripped.readUInt32LE(4)).toBe(stripped.length - 8);
  });

  it('should restore a pad byte left off the last chunk', () => {
    const odd = riffWebp(...webpChunks(simple).map(([f, d]) => webpChunk(f, d)), webpChunk('ALPH', 'abc'));
    const unpadded = Buffer.from(odd.subarray(0, odd.length - 1));
    unpadded.writeUInt32LE(unpadded.length - 8, 4);
    expect(stripWebpMetadata(unpadded)).toEqual(odd);
  });

  it.each([
    ['a bad RIFF header', () => Buffer.concat([Buffer.from('RIFX'), simple.subarray(4)])],
    [
      'a RIFF size past the end',
      () => Buffer.concat([simple.subarray(0, 4), Buffer.from([0xff, 0xff, 0, 0]), simple.subarray(8)]),
    ],
    [
      'a chunk larger than the RIFF',
      () =>
        riffWebp(
          webpChunks(simple).map(([f, d]) => webpChunk(f, d))[0],
          Buffer.from('EXIF\xff\xff\0\0', 'latin1'),
        ),
    ],
    [
      'a first chunk that is not a bitstream',
      () => riffWebp(webpChunk('EXIF', 'x'), ...webpChunks(simple).map(([f, d]) => webpChunk(f, d))),
    ],
    ['a short VP8X', () => riffWebp(webpChunk('VP8X', Buffer.alloc(4)))],
  ])('should answer processing_failed for %s', (_, make) => {
    expect(() => stripWebpMetadata(make())).toThrow(expect.objectContaining({ code: 'processing_failed' }));
  });

  it('should only ever return bytes or processing_failed on damaged input', () => {
    for (const damaged of damagedCopies(withChunks(animated, webpChunk('EXIF', 'MM\0*')), 300)) {
      try {
        expect(stripWebpMetadata(damaged)).toBeInstanceOf(Buffer);
      } catch (error) {
        expect(error).toBeInstanceOf(AppError);
        expect((error as AppError).code).toBe('processing_failed');
      }
    }
  });
});

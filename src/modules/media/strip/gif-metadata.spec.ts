import {
  animatedNoise,
  damagedCopies,
  gifApplication,
  gifCanvas,
  gifComment,
  junkProfile,
  srgbProfile,
  withGifBlocks,
} from '../../../../test/fixtures/images/image-fixtures';
import { AppError } from '../../../common/errors/app-error';
import { stripGifMetadata } from './gif-metadata';

describe(stripGifMetadata.name, () => {
  let animation: Buffer;
  let srgb: Buffer;
  beforeAll(async () => {
    animation = await (await animatedNoise(8, 8, 2)).gif({ loop: 3, delay: [30, 40] }).toBuffer();
    srgb = await srgbProfile();
  });

  it('should drop an ICC extension that holds no valid profile, and refuse more frames than the cap', () => {
    const junk = gifApplication('ICCRGBG1012', junkProfile(100_000));
    expect(stripGifMetadata(withGifBlocks(animation, junk))).toEqual(animation);
    expect(() => stripGifMetadata(animation, { maxFrames: 1, maxIccBytes: 65536 })).toThrow(
      expect.objectContaining({ code: 'processing_failed', message: expect.stringContaining('2 frames') }),
    );
  });

  it('should drop comments and application extensions other than looping and ICC', () => {
    const icc = gifApplication('ICCRGBG1012', srgb);
    const input = withGifBlocks(
      animation,
      gifComment('a comment'),
      gifApplication('XMP DataXMP', '<x:xmpmeta/>'),
      gifApplication('MGK8BIM0000', 'iptc'),
      icc,
    );
    expect(stripGifMetadata(input)).toEqual(withGifBlocks(animation, icc));
  });

  it('should keep a plain-text extension, which is drawn content', () => {
    const plainText = Buffer.concat([
      Buffer.from([0x21, 0x01, 12]),
      Buffer.alloc(12),
      Buffer.from([2, 0x41, 0x42, 0]),
    ]);
    const input = withGifBlocks(animation, plainText);
    expect(stripGifMetadata(input)).toEqual(input);
  });

  it('should drop what follows the trailer and add a missing trailer', () => {
    expect(stripGifMetadata(Buffer.concat([animation, Buffer.from('tail')]))).toEqual(animation);
    expect(stripGifMetadata(animation.subarray(0, animation.length - 1))).toEqual(animation);
  });

  it('should apply the pixel limits to the logical screen over all frames', () => {
    expect(() => stripGifMetadata(gifCanvas(16384, 2, 1))).not.toThrow();
    expect(() => stripGifMetadata(gifCanvas(16385, 2, 1))).toThrow(
      expect.objectContaining({ code: 'processing_failed' }),
    );
    expect(() => stripGifMetadata(gifCanvas(10000, 5000, 3))).toThrow(
      expect.objectContaining({ code: 'processing_failed' }),
    );
  });

  it.each([
    ['a bad header', () => Buffer.concat([Buffer.from('GIF88a'), animation.subarray(6)])],
    ['truncated data sub-blocks', () => animation.subarray(0, animation.length - 20)],
    ['an unknown block', () => withGifBlocks(animation, Buffer.from([0x99]))],
    [
      'a truncated image descriptor',
      () => Buffer.concat([gifCanvas(4, 4, 1).subarray(0, 19), Buffer.from([0x2c, 0, 0])]),
    ],
  ])('should answer processing_failed for %s', (_, make) => {
    expect(() => stripGifMetadata(make())).toThrow(expect.objectContaining({ code: 'processing_failed' }));
  });

  it('should only ever return bytes or processing_failed on damaged input', () => {
    for (const damaged of damagedCopies(withGifBlocks(animation, gifComment('comment')), 300)) {
      try {
        expect(stripGifMetadata(damaged)).toBeInstanceOf(Buffer);
      } catch (error) {
        expect(error).toBeInstanceOf(AppError);
        expect((error as AppError).code).toBe('processing_failed');
      }
    }
  });
});

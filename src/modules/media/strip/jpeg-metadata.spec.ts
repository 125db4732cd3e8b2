import {
  damagedCopies,
  jfifWithThumbnail,
  jpegIccSegments,
  jpegSegment,
  junkProfile,
  noiseImage,
  profileWithTrailer,
  srgbProfile,
  withJpegSegments,
} from '../../../../test/fixtures/images/image-fixtures';
import { AppError } from '../../../common/errors/app-error';
import { stripJpegMetadata } from './jpeg-metadata';

/** The markers of a JPEG up to its first scan, as [marker, payload start]. */
function headerMarkers(jpeg: Buffer): [number, string][] {
  const markers: [number, string][] = [];
  for (let pos = 2; jpeg[pos + 1] !== 0xda; pos += 2 + jpeg.readUInt16BE(pos + 2)) {
    markers.push([jpeg[pos + 1], jpeg.toString('latin1', pos + 4, pos + 9)]);
  }
  return markers;
}

describe(stripJpegMetadata.name, () => {
  let plain: Buffer;
  let srgb: Buffer;
  beforeAll(async () => {
    plain = await noiseImage(32, 24).jpeg().toBuffer();
    srgb = await srgbProfile();
  });

  it('should keep JFIF, ICC_PROFILE and Adobe segments and drop every other APPn and COM', () => {
    const input = withJpegSegments(
      plain,
      jfifWithThumbnail(0, 0),
      jpegSegment(0xe1, 'Exif\0\0II*\0'),
      jpegSegment(0xe1, 'http://ns.adobe.com/xap/1.0/\0<x:xmpmeta/>'),
      ...jpegIccSegments(srgb),
      jpegSegment(0xe2, 'MPF\0II*\0'),
      jpegSegment(0xed, 'Photoshop 3.0\0'),
      jpegSegment(0xee, 'Adobe\0\x64\0\0\0\0\x01'),
      jpegSegment(0xe0, 'JFXX\0\x10thumb'),
      jpegSegment(0xeb, 'JP\0\0c2pa'),
      jpegSegment(0xfe, 'a comment'),
    );

    const markers = headerMarkers(stripJpegMetadata(input)).map(
      ([marker, id]) => `${marker.toString(16)}:${id}`,
    );

    expect(markers.filter((m) => m.startsWith('e') || m.startsWith('fe'))).toEqual([
      'e0:JFIF\0',
      'e2:ICC_P',
      'ee:Adobe',
    ]);
  });

  it('should remove the JFIF thumbnail and keep the JFIF header', () => {
    const stripped = stripJpegMetadata(withJpegSegments(plain, jfifWithThumbnail(4, 3)));
    expect(stripped.subarray(2, 20)).toEqual(
      Buffer.from([0xff, 0xe0, 0, 16, 0x4a, 0x46, 0x49, 0x46, 0, 1, 2, 1, 0, 72, 0, 72, 0, 0]),
    );
  });

  describe('ICC profile', () => {
    it('should keep a valid profile byte for byte, also split over several segments', () => {
      const one = withJpegSegments(plain, ...jpegIccSegments(srgb));
      expect(stripJpegMetadata(one)).toEqual(one);
      const three = withJpegSegments(plain, ...jpegIccSegments(srgb, 200));
      expect(stripJpegMetadata(three)).toEqual(three);
    });

    it('should drop 1 MB of arbitrary bytes posing as a profile', () => {
      const payload = junkProfile(1024 * 1024);
      const stripped = stripJpegMetadata(withJpegSegments(plain, ...jpegIccSegments(payload)));
      expect(stripped).toEqual(plain);
      expect(stripped.includes(payload.subarray(1000, 1100))).toBe(false);
    });

    it('should drop a malformed profile: wrong size field, no acsp, tags outside it, or a trailing payload', () => {
      const wrongSize = Buffer.from(srgb);
      wrongSize.writeUInt32BE(srgb.length + 4, 0);
      const noSignature = Buffer.from(srgb);
      noSignature.write('xxxx', 36, 'latin1');
      const tagOutside = Buffer.from(srgb);
      tagOutside.writeUInt32BE(srgb.length - 4, 128 + 4 + 4);
      for (const bad of [wrongSize, noSignature, tagOutside, profileWithTrailer(srgb, 4096)]) {
        expect(stripJpegMetadata(withJpegSegments(plain, ...jpegIccSegments(bad)))).toEqual(plain);
      }
    });

    it('should drop the segments when they are not numbered 1…n once each', () => {
      const [first, second] = jpegIccSegments(srgb, 300);
      expect(stripJpegMetadata(withJpegSegments(plain, first))).toEqual(plain);
      expect(stripJpegMetadata(withJpegSegments(plain, first, second, second))).toEqual(plain);
      const extra = jpegSegment(0xe2, Buffer.concat([Buffer.from('ICC_PROFILE\0\x01\x01'), junkProfile(64)]));
      expect(stripJpegMetadata(withJpegSegments(plain, ...jpegIccSegments(srgb), extra))).toEqual(plain);
    });

    it('should drop a valid profile over maxIccBytes', () => {
      const input = withJpegSegments(plain, ...jpegIccSegments(srgb));
      expect(stripJpegMetadata(input, { maxFrames: 1000, maxIccBytes: srgb.length - 1 })).toEqual(plain);
      expect(stripJpegMetadata(input, { maxFrames: 1000, maxIccBytes: srgb.length })).toEqual(input);
    });
  });

  it('should drop what follows the end-of-image marker', () => {
    const stripped = stripJpegMetadata(Buffer.concat([plain, Buffer.from('PK\x03\x04 appended archive')]));
    expect(stripped).toEqual(plain);
  });

  it('should accept fill bytes before a marker', () => {
    const input = Buffer.concat([plain.subarray(0, 2), Buffer.from([0xff, 0xff]), plain.subarray(2)]);
    expect(stripJpegMetadata(input)).toEqual(plain);
  });

  it.each([
    ['no SOI', () => plain.subarray(2)],
    [
      'a segment longer than the file',
      () => withJpegSegments(plain, Buffer.from([0xff, 0xe1, 0xff, 0xff, 0])),
    ],
    ['a segment length under 2', () => withJpegSegments(plain, Buffer.from([0xff, 0xe1, 0x00, 0x01]))],
    ['no EOI', () => plain.subarray(0, plain.length - 2)],
    ['a truncated scan', () => plain.subarray(0, plain.length - 40)],
    ['bytes where a marker belongs', () => withJpegSegments(plain, Buffer.from([0x12, 0x34]))],
  ])('should answer processing_failed for %s', (_, make) => {
    expect(() => stripJpegMetadata(make())).toThrow(expect.objectContaining({ code: 'processing_failed' }));
  });

  it('should only ever return bytes or processing_failed on damaged input', () => {
    const input = withJpegSegments(plain, jpegSegment(0xe1, 'Exif\0\0'), jpegSegment(0xfe, 'comment'));
    for (const damaged of damagedCopies(input, 300)) {
      try {
        expect(stripJpegMetadata(damaged)).toBeInstanceOf(Buffer);
      } catch (error) {
        expect(error).toBeInstanceOf(AppError);
        expect((error as AppError).code).toBe('processing_failed');
      }
    }
  });
});

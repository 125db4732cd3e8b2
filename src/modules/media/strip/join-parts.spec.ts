import sharp from 'sharp';
import { jfifWithThumbnail, withJpegSegments } from '../../../../test/fixtures/images/image-fixtures';
import { loopTurnsDuring } from '../../../../test/setup/event-loop';
import { joinParts } from './join-parts';
import { stripJpegParts } from './jpeg-metadata';
import { stripPngParts } from './png-metadata';
import { stripGifParts } from './gif-metadata';

describe('joinParts', () => {
  it('should return the input itself when the parts are all of it, in order', async () => {
    const input = Buffer.from('0123456789');
    const out = await joinParts(input, [input.subarray(0, 3), input.subarray(3, 3), input.subarray(3)]);
    expect(out).toBe(input);
  });

  it('should copy when a piece is missing, reordered, rewritten or from elsewhere', async () => {
    const input = Buffer.from('0123456789');
    const cases: [Buffer[], string][] = [
      [[input.subarray(0, 3), input.subarray(4)], '012456789'],
      [[input.subarray(5), input.subarray(0, 5)], '5678901234'],
      [[input.subarray(0, 9), Buffer.from('9')], '0123456789'],
      [[input.subarray(0, 9)], '012345678'],
    ];
    for (const [parts, expected] of cases) {
      const out = await joinParts(input, parts);
      expect(out).not.toBe(input);
      expect(out.toString()).toBe(expected);
    }
  });

  it('should copy a big image byte for byte, letting the event loop turn every megabyte', async () => {
    const input = Buffer.alloc(5 * 1024 * 1024 + 3);
    for (let i = 0; i < input.length; i += 4096) {
      input[i] = (i >> 12) & 0xff;
    }
    const parts = [input.subarray(0, 10), input.subarray(20)];
    let out: Buffer = Buffer.alloc(0);
    const turns = await loopTurnsDuring(async () => (out = await joinParts(input, parts)));
    expect(Buffer.compare(out, Buffer.concat(parts))).toBe(0);
    expect(turns).toBeGreaterThanOrEqual(4);
  });

  it.each([
    [
      'JPEG',
      stripJpegParts,
      () => sharp({ create: { width: 64, height: 48, channels: 3, background: '#c84' } }).jpeg(),
    ],
    [
      'PNG',
      stripPngParts,
      () => sharp({ create: { width: 64, height: 48, channels: 4, background: '#c84a' } }).png(),
    ],
    [
      'GIF',
      stripGifParts,
      () => sharp({ create: { width: 64, height: 48, channels: 3, background: '#c84' } }).gif(),
    ],
  ] as const)(
    'should store a %s without metadata as the uploaded buffer itself',
    async (_name, strip, make) => {
      const input = await make().toBuffer();
      expect(await joinParts(input, strip(input))).toBe(input);
    },
  );

  it('should store a JPEG whose JFIF header has no thumbnail as the uploaded buffer itself', async () => {
    const clean = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#c84' } })
      .jpeg()
      .toBuffer();
    const jfif = withJpegSegments(clean, jfifWithThumbnail(0, 0));
    expect(await joinParts(jfif, stripJpegParts(jfif))).toBe(jfif);
    // A thumbnail (3 × 2 pixels here) is a copy of the picture: that file is copied without it.
    const withThumbnail = withJpegSegments(clean, jfifWithThumbnail(3, 2));
    const out = await joinParts(withThumbnail, stripJpegParts(withThumbnail));
    expect(out).not.toBe(withThumbnail);
    expect(Buffer.compare(out, jfif)).toBe(0);
  });

  it('should copy a JPEG whose comment is stripped, without the comment', async () => {
    const clean = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#c84' } })
      .jpeg()
      .toBuffer();
    const text = Buffer.from('secret comment');
    const com = Buffer.concat([Buffer.from([0xff, 0xfe, 0, text.length + 2]), text]);
    const input = Buffer.concat([clean.subarray(0, 2), com, clean.subarray(2)]);
    const out = await joinParts(input, stripJpegParts(input));
    expect(out).not.toBe(input);
    expect(Buffer.compare(out, clean)).toBe(0);
  });
});

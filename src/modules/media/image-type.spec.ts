import sharp from 'sharp';
import {
  apngChunks,
  noiseImage,
  PNG_SIGNATURE,
  pngChunk,
  withPngChunks,
} from '../../../test/fixtures/images/image-fixtures';
import { sniffImageType } from './image-type';

function ftyp(major: string, ...compatible: string[]): Buffer {
  const box = Buffer.alloc(16 + 4 * compatible.length);
  box.writeUInt32BE(box.length, 0);
  box.write(`ftyp${major}`, 4, 'latin1');
  compatible.forEach((brand, i) => box.write(brand, 16 + 4 * i, 'latin1'));
  return Buffer.concat([box, Buffer.alloc(64)]);
}

describe(sniffImageType.name, () => {
  it.each([
    ['png', 'image/png', () => noiseImage(8, 8).png().toBuffer()],
    ['jpg', 'image/jpeg', () => noiseImage(8, 8).jpeg().toBuffer()],
    ['gif', 'image/gif', () => noiseImage(8, 8).gif().toBuffer()],
    ['webp', 'image/webp', () => noiseImage(8, 8).webp().toBuffer()],
    ['avif', 'image/avif', () => noiseImage(8, 8).avif().toBuffer()],
  ])('should detect %s from its bytes', async (ext, mime, make) => {
    expect(await sniffImageType(await make())).toEqual({ ext, mime });
  });

  it('should call an animated PNG a PNG', async () => {
    const apng = withPngChunks(await noiseImage(8, 8).png().toBuffer(), ...apngChunks(1, 8, 8));
    expect(await sniffImageType(apng)).toEqual({ ext: 'png', mime: 'image/png' });
  });

  it('should detect a PNG from the first 4100 bytes when a large chunk precedes the image data', async () => {
    const png = withPngChunks(await noiseImage(8, 8).png().toBuffer(), pngChunk('iCCP', Buffer.alloc(9000)));
    expect(await sniffImageType(png.subarray(0, 4100))).toMatchObject({ ext: 'png' });
  });

  it.each([
    ['the signature alone', PNG_SIGNATURE],
    ['a damaged first chunk', Buffer.concat([PNG_SIGNATURE, Buffer.alloc(16, 0xff)])],
  ])('should leave a PNG with %s to the decoder', async (_, bytes) => {
    expect(await sniffImageType(bytes)).toMatchObject({ ext: 'png' });
  });

  it.each([
    ['an AVIF sequence', ftyp('avis', 'avis', 'msf1', 'miaf')],
    ['a generic HEIF brand listing avif', ftyp('mif1', 'mif1', 'avif', 'miaf')],
  ])('should detect %s as AVIF', async (_, bytes) => {
    expect(await sniffImageType(bytes)).toEqual({ ext: 'avif', mime: 'image/avif' });
  });

  it.each([
    ['empty', Buffer.alloc(0)],
    ['one byte', Buffer.from([0xff])],
    ['text', Buffer.from('hello, this is not an image\n')],
    [
      'SVG',
      Buffer.from('<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>'),
    ],
    ['HEIC', ftyp('heic', 'mif1', 'heic')],
    ['HEIF without avif', ftyp('mif1', 'mif1', 'heic')],
    ['MP4', ftyp('isom', 'isom', 'avc1')],
  ])('should answer null for %s', async (_, bytes) => {
    expect(await sniffImageType(bytes)).toBeNull();
  });

  it('should answer null for TIFF, which sharp could decode', async () => {
    expect(
      await sniffImageType(
        await sharp({ create: { width: 8, height: 8, channels: 3, background: '#000' } })
          .tiff()
          .toBuffer(),
      ),
    ).toBeNull();
  });
});

import sharp from 'sharp';
import {
  gradientImage,
  iccpChunk,
  jpegIccSegments,
  junkProfile,
  noiseImage,
  pngChunk,
  PRIVATE_EXIF,
  profileWithTrailer,
  riffWebp,
  srgbProfile,
  webpChunk,
  webpChunks,
  withJpegSegments,
  withPngChunks,
  XMP_PACKET,
} from '../fixtures/images/image-fixtures';
import { bearer, makeKey } from '../setup/factories';
import { createTestApp, type TestApp } from '../setup/test-app';

/** Metadata is judged on the bytes the direct link serves, after a real upload. */
describe('Metadata stripping through the upload API (e2e)', () => {
  let t: TestApp;
  let token: string;

  beforeAll(async () => {
    t = await createTestApp();
    token = (await makeKey(t)).token;
  });
  afterAll(() => t.close());

  async function roundTrip(
    bytes: Buffer,
    name: string,
  ): Promise<{ body: Record<string, any>; served: Buffer }> {
    const res = await t.http
      .post('/api/v1/upload')
      .set(...bearer(token))
      .attach('file', bytes, name)
      .expect(200);
    const served = await t.http
      .get(`/images/${res.body.filename}`)
      .buffer(true)
      .parse((r, cb) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c));
        r.on('end', () => cb(null, Buffer.concat(chunks)));
      })
      .expect(200);
    return { body: res.body, served: served.body as Buffer };
  }

  it('should drop EXIF GPS and apply Orientation=6 of a JPEG, keeping its ICC profile', async () => {
    const input = await gradientImage(64, 32)
      .jpeg()
      .withIccProfile('p3')
      .withExif(PRIVATE_EXIF)
      .withMetadata({ orientation: 6 })
      .toBuffer();
    expect((await sharp(input).metadata()).orientation).toBe(6);
    const { body, served } = await roundTrip(input, 'gps.jpg');
    const meta = await sharp(served).metadata();
    expect(meta.exif).toBeUndefined();
    expect(meta.xmp).toBeUndefined();
    expect(meta.orientation ?? 1).toBe(1);
    expect(meta.icc).toBeDefined();
    expect([body.width, body.height]).toEqual([32, 64]);
    expect([meta.width, meta.height]).toEqual([32, 64]);
    expect(served.includes(Buffer.from('SERIAL-8350'))).toBe(false);
    expect(body.size).toBe(served.length);
  });

  it('should keep the pixels of an Orientation=1 JPEG identical while removing EXIF and XMP', async () => {
    const input = await noiseImage(48, 40)
      .jpeg({ quality: 85 })
      .withExif(PRIVATE_EXIF)
      .withXmp(XMP_PACKET)
      .toBuffer();
    const { served } = await roundTrip(input, 'plain.jpg');
    const meta = await sharp(served).metadata();
    expect(meta.exif).toBeUndefined();
    expect(meta.xmp).toBeUndefined();
    const [before, after] = await Promise.all([
      sharp(input).raw().toBuffer(),
      sharp(served).raw().toBuffer(),
    ]);
    expect(after.equals(before)).toBe(true);
  });

  it('should remove eXIf and tEXt chunks from a PNG', async () => {
    const base = await noiseImage(20, 20).png().toBuffer();
    const exif = await sharp(base).withExif(PRIVATE_EXIF).png().toBuffer();
    const input = withPngChunks(exif, pngChunk('tEXt', 'Comment\0secret location'));
    const { served } = await roundTrip(input, 'meta.png');
    expect(served.includes(Buffer.from('eXIf'))).toBe(false);
    expect(served.includes(Buffer.from('tEXt'))).toBe(false);
    expect(served.includes(Buffer.from('secret location'))).toBe(false);
    const [before, after] = await Promise.all([
      sharp(input).raw().toBuffer(),
      sharp(served).raw().toBuffer(),
    ]);
    expect(after.equals(before)).toBe(true);
  });

  it('should remove the EXIF chunk of a WebP', async () => {
    const plain = await noiseImage(24, 24).webp({ lossless: true }).toBuffer();
    const withExif = await sharp(plain).withExif(PRIVATE_EXIF).webp({ lossless: true }).toBuffer();
    const chunks = webpChunks(withExif).map(([fourcc]) => fourcc);
    expect(chunks).toContain('EXIF');
    const input = riffWebp(...webpChunks(withExif).map(([fourcc, data]) => webpChunk(fourcc, data)));
    const { served, body } = await roundTrip(input, 'meta.webp');
    expect(body.mime).toBe('image/webp');
    expect(webpChunks(served).map(([fourcc]) => fourcc)).not.toContain('EXIF');
    expect(served.includes(Buffer.from('SERIAL-8350'))).toBe(false);
    const [before, after] = await Promise.all([
      sharp(input).raw().toBuffer(),
      sharp(served).raw().toBuffer(),
    ]);
    expect(after.equals(before)).toBe(true);
  });

  describe('ICC profiles (MAX_ICC_BYTES, default 64 KB)', () => {
    it('should keep a valid sRGB profile byte for byte', async () => {
      const srgb = await srgbProfile();
      const input = withJpegSegments(await noiseImage(40, 30).jpeg().toBuffer(), ...jpegIccSegments(srgb));
      const { served } = await roundTrip(input, 'srgb.jpg');
      expect(served.equals(input)).toBe(true);
      expect((await sharp(served).metadata()).icc).toEqual(srgb);
    });

    it('should not store 1 MB of arbitrary bytes carried as a JPEG ICC profile', async () => {
      const plain = await noiseImage(40, 30).jpeg().toBuffer();
      const payload = junkProfile(1024 * 1024);
      const { served, body } = await roundTrip(
        withJpegSegments(plain, ...jpegIccSegments(payload)),
        'junk.jpg',
      );
      expect(served.equals(plain)).toBe(true);
      expect(body.size).toBe(plain.length);
      expect(served.includes(payload.subarray(5000, 5064))).toBe(false);
      expect((await sharp(served).metadata()).icc).toBeUndefined();
    });

    it('should drop a malformed profile from a PNG and keep its pixels', async () => {
      const plain = await noiseImage(20, 20).png().toBuffer();
      const malformed = profileWithTrailer(await srgbProfile(), 30_000);
      const { served } = await roundTrip(withPngChunks(plain, iccpChunk(malformed)), 'bad-icc.png');
      expect(served.equals(plain)).toBe(true);
    });
  });
});

import sharp from 'sharp';
import { createColourModelApp } from '../fixtures/moderation/make-colour-model';
import { bearer, makeKey } from '../setup/factories';
import { sql } from '../setup/db';
import type { TestApp } from '../setup/test-app';
import type { ReviewFrame } from '../../src/modules/media/decode';
import { ModerationService } from '../../src/modules/moderation/moderation.service';
import { ImagePool, THREAD_STILL_PIXELS } from '../../src/modules/uploads/image-pool.service';

/** A JPEG of 2500×2000 (5 MP decoded: over THREAD_STILL_PIXELS, not heavy) of one colour, with EXIF when asked. */
function largeJpeg(colour: { r: number; g: number; b: number }, orientation?: number): Promise<Buffer> {
  const image = sharp({ create: { width: 2500, height: 2000, channels: 3, background: colour } });
  return (orientation ? image.withMetadata({ orientation }) : image).jpeg().toBuffer();
}

/**
 * Issue 14: a large still is decoded and stripped in the image thread, and its review runs on the inputs the thread
 * made. Through the real pipeline and the colour model (red → Porn): what the upload answers, stores and records is
 * what it was when the decode ran on the event loop's thread.
 */
describe('Large stills through the image thread (e2e)', () => {
  let t: TestApp;
  let token: string;
  let userId: string;
  const reviewed: string[] = [];

  beforeAll(async () => {
    t = await createColourModelApp();
    ({
      token,
      user: { id: userId },
    } = await makeKey(t));
    const moderation = t.app.get(ModerationService);
    const review = moderation.review.bind(moderation);
    moderation.review = (frames: readonly ReviewFrame[]) => {
      reviewed.push(frames.map((f) => ('inputs' in f ? `inputs ×${f.inputs.length}` : 'pixels')).join());
      return review(frames);
    };
  });
  afterAll(async () => {
    await t.close();
  });
  beforeEach(() => {
    reviewed.length = 0;
  });

  const upload = (bytes: Buffer, name = 'large.jpg') =>
    t.http
      .post('/api/v1/upload')
      .set(...bearer(token))
      .attach('file', bytes, name);
  const served = async (filename: string): Promise<Buffer> =>
    (
      await t.http
        .get(`/images/${filename}`)
        .buffer(true)
        .parse((r, cb) => {
          const chunks: Buffer[] = [];
          r.on('data', (c: Buffer) => chunks.push(c));
          r.on('end', () => cb(null, Buffer.concat(chunks)));
        })
        .expect(200)
    ).body as Buffer;

  it('should store a large still as uploaded, reviewed from the thread’s inputs', async () => {
    expect(2500 * 2000).toBeGreaterThan(THREAD_STILL_PIXELS);
    const bytes = await largeJpeg({ r: 20, g: 40, b: 200 });
    const res = await upload(bytes).expect(200);
    expect(res.body).toMatchObject({
      ok: true,
      mime: 'image/jpeg',
      width: 2500,
      height: 2000,
      size: bytes.length,
    });
    expect(reviewed).toEqual(['inputs ×1']);
    expect(t.app.get(ImagePool).imageThreadId).toBeDefined();
    expect((await served(res.body.filename)).equals(bytes)).toBe(true);
    const [row] = await sql<{ scores: Record<string, number> }>(
      t,
      'select scores from uploads where filename = $1',
      [res.body.filename],
    );
    expect(row.scores.neutral).toBeGreaterThan(0.9);
  });

  it('should apply the EXIF orientation of a large still and store it without EXIF', async () => {
    const res = await upload(await largeJpeg({ r: 30, g: 160, b: 60 }, 6)).expect(200);
    expect(res.body).toMatchObject({ width: 2000, height: 2500 });
    expect(reviewed).toEqual(['inputs ×1']);
    const meta = await sharp(await served(res.body.filename)).metadata();
    expect([meta.width, meta.height, meta.exif, meta.orientation]).toEqual([
      2000,
      2500,
      undefined,
      undefined,
    ]);
  });

  it('should reject a large red still with 415 nsfw_rejected and keep nothing', async () => {
    const before = await sql(t, 'select id from uploads where owner_id = $1', [userId]);
    const res = await upload(await largeJpeg({ r: 230, g: 20, b: 20 }));
    expect(res.status).toBe(415);
    expect(res.body).toEqual({
      ok: false,
      code: 'nsfw_rejected',
      error: 'Explicit content detected. This image cannot be hosted.',
    });
    expect(reviewed).toEqual(['inputs ×1']);
    expect(await sql(t, 'select id from uploads where owner_id = $1', [userId])).toHaveLength(before.length);
  });

  it('should answer 415 processing_failed for a large still that does not decode', async () => {
    const bytes = await largeJpeg({ r: 10, g: 10, b: 10 });
    const res = await upload(bytes.subarray(0, Math.floor(bytes.length * 0.6)));
    expect(res.status).toBe(415);
    expect(res.body).toMatchObject({ ok: false, code: 'processing_failed' });
    expect(reviewed).toEqual([]);
  });
});

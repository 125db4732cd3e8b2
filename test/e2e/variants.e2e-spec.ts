import { createHash } from 'node:crypto';
import sharp from 'sharp';
import { JanitorService } from '../../src/modules/uploads/janitor.service';
import { VariantsService } from '../../src/modules/delivery/variants.service';
import { DEFAULT_VARIANT_SIZES } from '../../src/modules/media/variant-params';
import { bearer, makeKey } from '../setup/factories';
import { sql, storedFiles } from '../setup/db';
import { createTestApp, type TestApp } from '../setup/test-app';

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

let seed = 0;

/** A noisy photo-like image, different every call (uploads of identical bytes share one filename). */
async function photo(
  width: number,
  height: number,
  format: 'png' | 'jpeg' | 'webp' | 'avif' | 'gif',
): Promise<Buffer> {
  const raw = Buffer.alloc(width * height * 3);
  seed++;
  for (let i = 0; i < raw.length; i++) {
    raw[i] = (i * 37 + ((i / 3) % width) * 5 + seed * 11) & 0xff;
  }
  return sharp(raw, { raw: { width, height, channels: 3 } })
    .toFormat(format)
    .toBuffer();
}

/** An animated GIF of `frames` solid-colour frames. */
async function animatedGif(frames: number, width: number, height: number): Promise<Buffer> {
  const raw = Buffer.alloc(width * height * frames * 4);
  for (let f = 0; f < frames; f++) {
    for (let p = 0; p < width * height; p++) {
      const o = (f * width * height + p) * 4;
      raw[o] = (f * 80) & 0xff;
      raw[o + 1] = 100;
      raw[o + 2] = 255 - f * 60;
      raw[o + 3] = 255;
    }
  }
  return sharp(raw, { raw: { width, height: height * frames, channels: 4, pageHeight: height } })
    .gif({ delay: Array(frames).fill(100), loop: 0 })
    .toBuffer();
}

describe('Variants on the direct link (e2e)', () => {
  let t: TestApp;
  let token: string;

  beforeAll(async () => {
    t = await createTestApp();
    ({ token } = await makeKey(t));
  });
  afterAll(() => t.close());

  async function upload(bytes: Buffer): Promise<{ filename: string; delete_url: string }> {
    const res = await t.http
      .post('/api/v1/upload')
      .set(...bearer(token))
      .attach('file', bytes, 'x')
      .expect(200);
    return res.body as { filename: string; delete_url: string };
  }

  /** The stored variant files of an upload, once every variant rendered so far is stored (that follows the answer). */
  const variantFiles = async (filename: string): Promise<string[]> => {
    await t.app.get(VariantsService).idle();
    return storedFiles(t).filter((f) => f.startsWith(`${filename}__`));
  };

  it('should default VARIANT_SIZES to the media default', () => {
    expect(t.config.variantSizes).toEqual(DEFAULT_VARIANT_SIZES);
  });

  it('should serve the original byte for byte without parameters (and with unrelated ones)', async () => {
    const bytes = await photo(100, 80, 'png');
    const { filename } = await upload(bytes);
    const plain = await t.http.get(`/images/${filename}`).expect(200);
    const busted = await t.http.get(`/images/${filename}?v=3`).expect(200);
    const stored = await t.http.get(`/images/${filename}?format=png`).expect(200);
    expect(busted.body).toEqual(plain.body);
    expect(stored.body).toEqual(plain.body);
    expect(plain.headers.vary ?? '').not.toMatch(/accept/i);
    expect(await variantFiles(filename)).toEqual([]);
  });

  it.each([
    ['png', 'webp'],
    ['png', 'jpeg'],
    ['jpeg', 'png'],
    ['jpeg', 'avif'],
    ['webp', 'jpeg'],
    ['avif', 'png'],
    ['gif', 'webp'],
  ] as const)('should turn a %s into a %s at w=64', async (from, to) => {
    const { filename } = await upload(await photo(200, 100, from));
    const res = await t.http.get(`/images/${filename}?w=64&format=${to}`).expect(200);
    expect(res.headers['content-type']).toBe(`image/${to}`);
    const meta = await sharp(res.body as Buffer).metadata();
    expect(meta.format).toBe(to === 'avif' ? 'heif' : to);
    expect([meta.width, meta.height]).toEqual([64, 32]);
    expect(meta.exif).toBeUndefined();
    expect(res.headers.etag).toBe(`"${sha256(res.body as Buffer)}"`);
    expect(res.headers['cache-control']).toBe('public, max-age=86400');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['content-security-policy']).toContain('sandbox');
    expect(Number(res.headers['content-length'])).toBe((res.body as Buffer).length);
  });

  it('should keep the original format when only a size is asked', async () => {
    const { filename } = await upload(await photo(300, 200, 'jpeg'));
    const res = await t.http.get(`/images/${filename}?h=128`).expect(200);
    expect(res.headers['content-type']).toBe('image/jpeg');
    const meta = await sharp(res.body as Buffer).metadata();
    expect([meta.width, meta.height]).toEqual([192, 128]);
  });

  it('should fit inside without enlarging, and cover to exactly w×h', async () => {
    const { filename } = await upload(await photo(300, 100, 'png'));
    const inside = await t.http.get(`/images/${filename}?w=128&h=128&format=png`).expect(200);
    expect(await sizeOf(inside.body)).toEqual([128, 43]);
    const never = await t.http.get(`/images/${filename}?w=640&format=png&fit=inside`).expect(200);
    expect(await sizeOf(never.body)).toEqual([300, 100]);
    const cover = await t.http.get(`/images/${filename}?w=128&h=128&fit=cover&format=png`).expect(200);
    expect(await sizeOf(cover.body)).toEqual([128, 128]);
    const enlarged = await t.http.get(`/images/${filename}?w=640&h=480&fit=cover&format=png`).expect(200);
    expect(await sizeOf(enlarged.body)).toEqual([640, 480]);
  });

  it('should negotiate format=auto from Accept and answer Vary: Accept', async () => {
    const { filename } = await upload(await photo(200, 100, 'jpeg'));
    const url = `/images/${filename}?w=64&format=auto`;
    const avif = await t.http.get(url).set('Accept', 'image/avif,image/webp,*/*').expect(200);
    expect(avif.headers['content-type']).toBe('image/avif');
    expect(avif.headers.vary).toMatch(/Accept/);
    const webp = await t.http.get(url).set('Accept', 'image/webp,image/*').expect(200);
    expect(webp.headers['content-type']).toBe('image/webp');
    expect(webp.headers.vary).toMatch(/Accept/);
    const plain = await t.http.get(url).set('Accept', 'image/*').expect(200);
    expect(plain.headers['content-type']).toBe('image/jpeg');
    expect(plain.headers.vary).toMatch(/Accept/);
    // Same as asking for webp by name: one stored file, one ETag.
    const named = await t.http.get(`/images/${filename}?format=webp&w=64`).expect(200);
    expect(named.headers.etag).toBe(webp.headers.etag);
    expect((await variantFiles(filename)).sort()).toEqual(
      [
        `${filename}__w64_h0_inside_avif`,
        `${filename}__w64_h0_inside_jpeg`,
        `${filename}__w64_h0_inside_webp`,
      ].sort(),
    );
  });

  it('should map every spelling of the same variant to one stored file and one ETag', async () => {
    const { filename } = await upload(await photo(200, 100, 'png'));
    const a = await t.http.get(`/images/${filename}?w=128&format=webp`).expect(200);
    const b = await t.http.get(`/images/${filename}?format=webp&fit=inside&w=128`).expect(200);
    const c = await t.http.get(`/images/${filename}?fit=inside&w=128&utm_source=x&format=webp`).expect(200);
    expect(b.headers.etag).toBe(a.headers.etag);
    expect(c.headers.etag).toBe(a.headers.etag);
    expect(await variantFiles(filename)).toEqual([`${filename}__w128_h0_inside_webp`]);
    const rows = await sql(t, 'select key, sha256 from upload_variants');
    expect(
      rows.filter((r) => r.key === 'w128_h0_inside_webp' && `"${r.sha256}"` === a.headers.etag),
    ).toHaveLength(1);
  });

  it.each([
    ['w=100', /w must be one of 64, 128/],
    ['w=0320', /w must be one of/],
    ['h=abc', /h must be one of/],
    ['w=64&w=128', /w must be given once/],
    ['fit=fill&w=64', /fit must be one of inside, cover/],
    ['fit=cover&w=64', /fit=cover needs both w and h/],
    ['format=gif', /format must be one of webp, avif, jpeg, png, auto/],
    ['format=WEBP', /format must be one of/],
  ])('should refuse ?%s with 400 bad_request naming the allowed values', async (query, message) => {
    const { filename } = await upload(await photo(40, 30, 'png'));
    const res = await t.http.get(`/images/${filename}?${query}`).expect(400);
    expect(res.body).toEqual({ ok: false, code: 'bad_request', error: expect.stringMatching(message) });
    expect(await variantFiles(filename)).toEqual([]);
  });

  it('should link a working thumbnail_url from the upload answer', async () => {
    const res = await t.http
      .post('/api/v1/upload')
      .set(...bearer(token))
      .attach('file', await photo(640, 480, 'jpeg'), 'x')
      .expect(200);
    const thumb = new URL(res.body.thumbnail_url as string);
    expect(thumb.search).toBe('?w=320&format=auto');
    const served = await t.http
      .get(`${thumb.pathname}${thumb.search}`)
      .set('Accept', 'image/webp')
      .expect(200);
    expect(served.headers['content-type']).toBe('image/webp');
    expect(await sizeOf(served.body)).toEqual([320, 240]);
  });

  it('should answer 404 for a variant of an image that does not exist', async () => {
    const res = await t.http.get('/images/FIXITFY-AAAAAAAAAAAA.png?w=64').expect(404);
    expect(res.body).toMatchObject({ ok: false, code: 'not_found' });
  });

  it('should render concurrent first requests once', async () => {
    const { filename } = await upload(await photo(800, 600, 'jpeg'));
    const service = t.app.get(VariantsService);
    const before = service.renders;
    const answers = await Promise.all(
      Array.from({ length: 8 }, () => t.http.get(`/images/${filename}?w=320&format=webp`)),
    );
    expect(answers.map((r) => r.status)).toEqual(Array(8).fill(200));
    expect(new Set(answers.map((r) => r.headers.etag)).size).toBe(1);
    expect(service.renders - before).toBe(1);
    expect(await variantFiles(filename)).toHaveLength(1);
  });

  it('should answer 304 and 206 on a variant', async () => {
    const { filename } = await upload(await photo(200, 100, 'png'));
    const url = `/images/${filename}?w=64&format=webp`;
    const full = await t.http.get(url).expect(200);
    const body = full.body as Buffer;
    await t.http.get(url).set('If-None-Match', full.headers.etag).expect(304);
    const part = await t.http.get(url).set('Range', 'bytes=0-9').expect(206);
    expect(part.headers['content-range']).toBe(`bytes 0-9/${body.length}`);
    expect(part.body as Buffer).toEqual(body.subarray(0, 10));
    const head = await t.http.head(url).expect(200);
    expect(head.headers.etag).toBe(full.headers.etag);
    expect(Number(head.headers['content-length'])).toBe(body.length);
  });

  it('should answer the request that makes a variant like one that reads it back: 206, HEAD, the same headers', async () => {
    const { filename } = await upload(await photo(200, 100, 'png'));
    const url = `/images/${filename}?w=128&format=webp`;
    // The first request renders (and answers from the rendered bytes): a range of them.
    const part = await t.http.get(url).set('Range', 'bytes=5-14').expect(206);
    // The second reads the stored file.
    const full = await t.http.get(url).expect(200);
    const body = full.body as Buffer;
    expect(part.headers['content-range']).toBe(`bytes 5-14/${body.length}`);
    expect(part.body as Buffer).toEqual(body.subarray(5, 15));
    const headers = (r: { headers: Record<string, string> }) => {
      const {
        date: _date,
        'x-request-id': _id,
        'content-length': _len,
        'content-range': _range,
        ...rest
      } = r.headers;
      return rest;
    };
    expect(headers(part)).toEqual(headers(full));

    const { filename: other } = await upload(await photo(210, 100, 'png'));
    const head = await t.http.head(`/images/${other}?w=128&format=webp`).expect(200);
    const made = await t.http.get(`/images/${other}?w=128&format=webp`).expect(200);
    expect(head.headers.etag).toBe(made.headers.etag);
    expect(Number(head.headers['content-length'])).toBe((made.body as Buffer).length);
    expect(head.text ?? '').toBe('');
  });

  it('should remove the variants with the upload and answer 404 at once', async () => {
    const { filename, delete_url } = await upload(await photo(200, 100, 'png'));
    await t.http.get(`/images/${filename}?w=64&format=webp`).expect(200);
    await t.http.get(`/images/${filename}?w=128&format=jpeg`).expect(200);
    expect(await variantFiles(filename)).toHaveLength(2);
    await t.http.post(new URL(delete_url).pathname).expect(200);
    expect(await variantFiles(filename)).toEqual([]);
    await t.http.get(`/images/${filename}?w=64&format=webp`).expect(404);
  });

  it('should keep every frame of an animated GIF as animated WebP, and the first frame as PNG', async () => {
    const { filename } = await upload(await animatedGif(3, 100, 80));
    const anim = await t.http.get(`/images/${filename}?w=64&format=webp`).expect(200);
    const meta = await sharp(anim.body as Buffer, { pages: -1 }).metadata();
    expect(meta.pages).toBe(3);
    expect([meta.width, meta.pageHeight]).toEqual([64, 51]);
    const still = await t.http.get(`/images/${filename}?w=64&format=png`).expect(200);
    expect((await sharp(still.body as Buffer).metadata()).pages ?? 1).toBe(1);
  });
});

describe('format=auto and the frame count kept at upload (e2e)', () => {
  let t: TestApp;
  let token: string;
  const CHROME = 'image/avif,image/webp,image/apng,image/*,*/*;q=0.8';

  beforeAll(async () => {
    t = await createTestApp();
    ({ token } = await makeKey(t));
  });
  afterAll(() => t.close());

  async function upload(bytes: Buffer): Promise<string> {
    const res = await t.http
      .post('/api/v1/upload')
      .set(...bearer(token))
      .attach('file', bytes, 'x')
      .expect(200);
    return (res.body as { filename: string }).filename;
  }

  const pagesOf = async (filename: string): Promise<number | null> =>
    (await sql<{ pages: number | null }>(t, 'select pages from uploads where filename = $1', [filename]))[0]
      .pages;

  it('should store the frame count of each upload', async () => {
    expect(await pagesOf(await upload(await photo(120, 90, 'jpeg')))).toBe(1);
    expect(await pagesOf(await upload(await photo(120, 90, 'gif')))).toBe(1);
    expect(await pagesOf(await upload(await animatedGif(4, 60, 40)))).toBe(4);
  });

  it('should give a still GIF as AVIF to a client that accepts it', async () => {
    const filename = await upload(await photo(200, 100, 'gif'));
    const res = await t.http.get(`/images/${filename}?w=64&format=auto`).set('Accept', CHROME).expect(200);
    expect(res.headers['content-type']).toBe('image/avif');
    expect(res.headers.vary).toMatch(/accept/i);
    const meta = await sharp(res.body as Buffer).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['heif', 64, 32]);
  });

  it('should give a still WebP as AVIF to a client that accepts it', async () => {
    const filename = await upload(await photo(200, 100, 'webp'));
    const res = await t.http.get(`/images/${filename}?w=64&format=auto`).set('Accept', CHROME).expect(200);
    expect(res.headers['content-type']).toBe('image/avif');
  });

  it('should keep an animated GIF animated: WebP with every frame, never AVIF', async () => {
    const filename = await upload(await animatedGif(3, 100, 80));
    const res = await t.http.get(`/images/${filename}?w=64&format=auto`).set('Accept', CHROME).expect(200);
    expect(res.headers['content-type']).toBe('image/webp');
    expect(res.headers.vary).toMatch(/accept/i);
    expect((await sharp(res.body as Buffer, { pages: -1 }).metadata()).pages).toBe(3);
  });

  it('should keep an animated GIF a GIF for a client that takes neither AVIF nor WebP', async () => {
    const filename = await upload(await animatedGif(3, 100, 80));
    const res = await t.http.get(`/images/${filename}?w=64&format=auto`).set('Accept', 'image/*').expect(200);
    expect(res.headers['content-type']).toBe('image/gif');
    expect((await sharp(res.body as Buffer, { pages: -1 }).metadata()).pages).toBe(3);
  });

  it('should treat a GIF whose frame count is unknown (recorded before it was kept) as possibly animated', async () => {
    const filename = await upload(await photo(200, 100, 'gif'));
    await sql(t, 'update uploads set pages = null where filename = $1', [filename]);
    const res = await t.http.get(`/images/${filename}?w=64&format=auto`).set('Accept', CHROME).expect(200);
    expect(res.headers['content-type']).toBe('image/webp');
  });
});

describe('Variants across instances and under load (e2e)', () => {
  let t: TestApp;
  let t2: TestApp;
  let token: string;

  beforeAll(async () => {
    t = await createTestApp({ env: { VARIANT_RENDER_CONCURRENCY: '1', VARIANT_QUEUE_LIMIT: '0' } });
    t2 = await createTestApp({ shareWith: t });
    ({ token } = await makeKey(t));
  });
  afterAll(async () => {
    await t2.close();
    await t.close();
  });

  async function upload(bytes: Buffer): Promise<string> {
    const res = await t.http
      .post('/api/v1/upload')
      .set(...bearer(token))
      .attach('file', bytes, 'x')
      .expect(200);
    return (res.body as { filename: string }).filename;
  }

  it('should render concurrent first requests on two instances once', async () => {
    const filename = await upload(await photo(800, 600, 'jpeg'));
    const a = t.app.get(VariantsService);
    const b = t2.app.get(VariantsService);
    const before = a.renders + b.renders;
    const answers = await Promise.all(
      Array.from({ length: 6 }, (_, i) => (i % 2 ? t2 : t).http.get(`/images/${filename}?w=480&format=webp`)),
    );
    expect(answers.map((r) => r.status)).toEqual(Array(6).fill(200));
    expect(new Set(answers.map((r) => r.headers.etag)).size).toBe(1);
    expect(a.renders + b.renders - before).toBe(1);
    expect(storedFiles(t).filter((f) => f.startsWith(`${filename}__`))).toHaveLength(1);
  });

  it('should answer 503 unavailable with Retry-After past the render queue, and render once a slot is free', async () => {
    const filename = await upload(await photo(100, 80, 'png'));
    const service = t.app.get(VariantsService);
    const release = await service.slot(); // the only slot (VARIANT_RENDER_CONCURRENCY=1, VARIANT_QUEUE_LIMIT=0)
    try {
      const res = await t.http.get(`/images/${filename}?w=64&format=webp`).expect(503);
      expect(res.body).toEqual({ ok: false, code: 'unavailable', error: expect.any(String) });
      expect(res.headers['retry-after']).toBe('1');
      // An original needs no render and is still served.
      await t.http.get(`/images/${filename}`).expect(200);
    } finally {
      release();
    }
    await t.http.get(`/images/${filename}?w=64&format=webp`).expect(200);
  });

  it('should let the janitor remove variants whose upload is gone and keep those of live uploads', async () => {
    const gone = await upload(await photo(100, 80, 'png'));
    const live = await upload(await photo(100, 80, 'png'));
    await t.http.get(`/images/${gone}?w=64&format=webp`).expect(200);
    await t.http.get(`/images/${live}?w=64&format=webp`).expect(200);
    // Deleted behind the API's back (as if the process died before removing files).
    await sql(t, 'update uploads set deleted_at = now() where filename = $1', [gone]);
    await t.app.get(JanitorService).sweep(Date.now() + 7 * 24 * 3600 * 1000);
    const files = storedFiles(t);
    expect(files.filter((f) => f.startsWith(gone))).toEqual([]);
    expect(files.filter((f) => f.startsWith(live)).sort()).toEqual(
      [live, `${live}__w64_h0_inside_webp`].sort(),
    );
  });
});

async function sizeOf(body: unknown): Promise<[number | undefined, number | undefined]> {
  const meta = await sharp(body as Buffer).metadata();
  return [meta.width, meta.height];
}

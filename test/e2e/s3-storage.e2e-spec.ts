import sharp from 'sharp';
import { createHash } from 'node:crypto';
import { DEPENDENCY_RETRY_AFTER_SECONDS } from '../../src/common/errors/dependency-failure';
import { VariantsService } from '../../src/modules/delivery/variants.service';
import { png } from '../fixtures/sample-images';
import { sql, storedFiles } from '../setup/db';
import { bearer, makeKey } from '../setup/factories';
import { S3FaultProxy, TestS3 } from '../setup/s3-server';
import { createTestApp, type TestApp } from '../setup/test-app';

/**
 * The service on an S3 store that fails for real (an HTTP proxy in front of s3rver answering 500 or never
 * answering, or sending less of an object than it has): writes → 500 storage_failed with nothing recorded or left;
 * reads → 503 unavailable; a hung store holds up only the requests that need it; /readyz says so. And
 * IMAGES_REDIRECT_BASE_URL.
 */
describe('S3 storage under faults (e2e)', () => {
  let s3: TestS3;
  let proxy: S3FaultProxy;
  let t: TestApp;

  beforeAll(async () => {
    s3 = await TestS3.start();
    proxy = await S3FaultProxy.start(s3);
    t = await createTestApp({
      env: { ...s3.env({ endpoint: proxy.endpoint, timeoutMs: 1500 }), S3_MAX_ATTEMPTS: '2' },
    });
  });
  afterEach(() => proxy.restore());
  afterAll(async () => {
    await t?.close();
    await proxy.close();
    await s3.close();
  });

  const upload = async (key: string, seed: number) =>
    t.http
      .post('/api/v1/upload')
      .set(...bearer(key))
      .attach('file', await png(seed), 'a.png');

  for (const mode of ['fail', 'hang'] as const) {
    it(`should answer 500 storage_failed, record no row and leave no object when the store ${mode === 'fail' ? 'answers 500' : 'never answers'} on write`, async () => {
      const key = await makeKey(t);
      const before = storedFiles(t);
      proxy.on(['PUT'], mode);
      const res = await upload(key.token, mode === 'fail' ? 11 : 12);
      expect(res.status).toBe(500);
      expect(res.body).toEqual({ ok: false, code: 'storage_failed', error: expect.any(String) });
      expect(JSON.stringify(res.body)).not.toMatch(/s3|amazon|127\.0\.0\.1|InternalError/i);
      expect(await sql(t, 'select 1 from uploads where owner_id = $1', [key.user.id])).toHaveLength(0);
      expect(storedFiles(t)).toEqual(before);
      proxy.restore();
      expect((await upload(key.token, mode === 'fail' ? 11 : 12)).status).toBe(200);
    });
  }

  it('should answer 503 unavailable on /images when the store fails or hangs on read, and serve again after', async () => {
    const key = await makeKey(t);
    const up = await upload(key.token, 13);
    expect(up.status).toBe(200);
    const path = `/images/${up.body.filename}`;
    for (const mode of ['fail', 'hang'] as const) {
      proxy.on(['GET'], mode);
      for (const res of [await t.http.get(path), await t.http.head(path), await t.http.get(`${path}?w=64`)]) {
        expect(res.status).toBe(503);
        expect(res.headers['cache-control']).toMatch(/no-store/);
        expect(res.headers['etag']).toBeUndefined();
      }
      const body = (await t.http.get(path)).body as unknown;
      expect(body).toEqual({ ok: false, code: 'unavailable', error: expect.any(String) });
    }
    proxy.restore();
    const ok = await t.http.get(path);
    expect(ok.status).toBe(200);
    expect(ok.headers['etag']).toBe(`"${await storedSha(up.body.filename)}"`);
  });

  for (const mode of ['short', 'cut'] as const) {
    it(`should answer 503 unavailable with Retry-After, and keep nothing in memory, when the store ${mode === 'short' ? 'sends fewer bytes than the image has' : 'drops the connection mid-object'}`, async () => {
      const key = await makeKey(t);
      const up = await upload(key.token, mode === 'short' ? 17 : 18);
      expect(up.status).toBe(200);
      const path = `/images/${up.body.filename}`;
      proxy.on(['GET'], mode);
      const gets = proxy.seen.filter((m) => m === 'GET').length;
      // A small object of a remote store: read whole (for the delivery cache) before anything is sent.
      const res = await t.http.get(path);
      expect(proxy.seen.filter((m) => m === 'GET').length).toBeGreaterThan(gets);
      expect(res.status).toBe(503);
      expect(res.body).toEqual({
        ok: false,
        code: 'unavailable',
        error: 'The stored image could not be read; try again shortly.',
      });
      expect(res.headers['retry-after']).toBe(String(DEPENDENCY_RETRY_AFTER_SECONDS));
      expect(res.headers['cache-control']).toBe('no-store');
      expect(res.headers['etag']).toBeUndefined();
      // The short bytes were not kept: once the store answers whole again, the whole image is served.
      proxy.restore();
      const ok = await t.http.get(path).buffer(true);
      expect(ok.status).toBe(200);
      const bytes = ok.body as Buffer;
      expect(bytes.length).toBe(up.body.size);
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(await storedSha(up.body.filename));
    });
  }

  it('should answer a small object it has served from memory while the store is down, and 404 at once after a delete', async () => {
    const key = await makeKey(t);
    const up = await upload(key.token, 21);
    expect(up.status).toBe(200);
    const path = `/images/${up.body.filename}`;
    const first = await t.http.get(path).buffer(true).expect(200);
    proxy.on(['GET', 'HEAD'], 'fail');
    // Kept by ETag for DELIVERY_CACHE_SECONDS: the same answer without asking the store.
    const again = await t.http.get(path).buffer(true).expect(200);
    expect(Buffer.compare(again.body as Buffer, first.body as Buffer)).toBe(0);
    expect(again.headers.etag).toBe(first.headers.etag);
    const part = await t.http.get(path).set('Range', 'bytes=0-9').buffer(true).expect(206);
    expect(part.body as Buffer).toEqual((first.body as Buffer).subarray(0, 10));
    await t.http.get(path).set('If-None-Match', first.headers.etag).expect(304);
    // Deleted: gone on every instance at once, memory included.
    await t.http
      .delete(`/api/v1/uploads/${up.body.filename}`)
      .set(...bearer(key.token))
      .expect(200);
    const gone = await t.http.get(path);
    expect(gone.status).toBe(404);
    expect(gone.body).toEqual({ ok: false, code: 'not_found', error: expect.any(String) });
  });

  it('should keep answering other requests while the store hangs, and say storage on /readyz', async () => {
    const key = await makeKey(t);
    const up = await upload(key.token, 14);
    proxy.on(['GET', 'PUT', 'HEAD'], 'hang');
    // Requests that need the store wait for it (up to S3_TIMEOUT_MS)…
    const stuck = [t.http.get(`/images/${up.body.filename}`), upload(key.token, 15), upload(key.token, 16)];
    // …the rest of the service answers meanwhile.
    const started = Date.now();
    const others = await Promise.all([
      t.http.get('/healthz'),
      t.http.get('/api/v1/me').set(...bearer(key.token)),
      t.http.get('/api/v1/uploads').set(...bearer(key.token)),
    ]);
    const othersMs = Date.now() - started;
    expect(others.map((r) => r.status)).toEqual([200, 200, 200]);
    const ready = await t.http.get('/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body).toEqual({ ok: false, code: 'unavailable', error: expect.stringContaining('storage') });
    const [image, a, b] = await Promise.all(stuck);
    expect([image.status, a.status, b.status]).toEqual([503, 500, 500]);
    // Not a timing assertion on the service: only that the others did not wait out the store's deadline.
    expect(othersMs).toBeLessThan(1500);
    proxy.restore();
    expect((await t.http.get('/readyz')).status).toBe(200);
  });

  async function storedSha(filename: string): Promise<string> {
    const rows = await sql<{ stored_sha256: string }>(
      t,
      'select stored_sha256 from uploads where filename = $1',
      [filename],
    );
    return rows[0].stored_sha256;
  }
});

describe('IMAGES_REDIRECT_BASE_URL (e2e)', () => {
  let s3: TestS3;
  let proxy: S3FaultProxy;
  let t: TestApp;
  const base = 'https://cdn.example.test/fxf';

  beforeAll(async () => {
    s3 = await TestS3.start();
    proxy = await S3FaultProxy.start(s3);
    t = await createTestApp({
      env: { ...s3.env({ endpoint: proxy.endpoint }), IMAGES_REDIRECT_BASE_URL: `${base}/` },
    });
  });
  afterEach(() => proxy.restore());
  afterAll(async () => {
    await t?.close();
    await proxy.close();
    await s3.close();
  });

  it('should answer 302 to the object at the CDN for originals and variants, after the same checks', async () => {
    const key = await makeKey(t);
    const up = await t.http
      .post('/api/v1/upload')
      .set(...bearer(key.token))
      .attach('file', await png(21), 'a.png');
    expect(up.status).toBe(200);
    const { filename } = up.body as { filename: string };
    for (const res of [await t.http.get(`/images/${filename}`), await t.http.head(`/images/${filename}`)]) {
      expect(res.status).toBe(302);
      expect(res.headers['location']).toBe(`${base}/${filename}`);
      expect(res.headers['cache-control']).toBe('public, max-age=300');
    }
    const variant = await t.http.get(`/images/${filename}?w=64&format=webp`);
    expect(variant.status).toBe(302);
    expect(variant.headers['location']).toBe(`${base}/${filename}__w64_h0_inside_webp`);
    // The variant was rendered and stored first: the CDN finds it under that key.
    expect(storedFiles(t).sort()).toEqual([filename, `${filename}__w64_h0_inside_webp`].sort());
    // The object the CDN would fetch is there with its type (what a public bucket serves).
    const direct = await fetch(
      `${s3.endpoint}/${s3.bucket}/${t.config.s3.prefix}${filename}__w64_h0_inside_webp`,
    );
    expect(direct.headers.get('content-type')).toBe('image/webp');

    const bad = await t.http.get(`/images/${filename}?w=100`);
    expect(bad.status).toBe(400);
    expect(bad.body.code).toBe('bad_request');
    const unknown = await t.http.get('/images/FIXITFY-AAAAAAAAAAAA.png');
    expect(unknown.status).toBe(404);
    expect(unknown.body.code).toBe('not_found');
    await t.http
      .delete(`/api/v1/uploads/${filename}`)
      .set(...bearer(key.token))
      .expect(200);
    const gone = await t.http.get(`/images/${filename}`);
    expect(gone.status).toBe(404);
    expect(gone.headers['location']).toBeUndefined();
  });

  it("should write an expiring upload's objects no-cache, so what reads the bucket directly never keeps them past the expiry", async () => {
    const key = await makeKey(t);
    const objectHeaders = (storageKey: string) =>
      fetch(`${s3.endpoint}/${s3.bucket}/${t.config.s3.prefix}${storageKey}`).then((r) => r.headers);
    const expiring = await t.http
      .post('/api/v1/upload')
      .set(...bearer(key.token))
      .field('expires_in', '3600')
      .attach('file', await png(23), 'a.png');
    const lasting = await t.http
      .post('/api/v1/upload')
      .set(...bearer(key.token))
      .attach('file', await png(24), 'a.png');
    expect([expiring.status, lasting.status]).toEqual([200, 200]);
    for (const { filename } of [expiring.body, lasting.body] as { filename: string }[]) {
      expect((await t.http.get(`/images/${filename}?w=64&format=webp`)).status).toBe(302);
    }
    const e = (expiring.body as { filename: string }).filename;
    const l = (lasting.body as { filename: string }).filename;

    // A max-age counts from each fetch: an hour before the expiry it would let a CDN keep the image a day past it.
    for (const storageKey of [e, `${e}__w64_h0_inside_webp`]) {
      expect((await objectHeaders(storageKey)).get('cache-control')).toBe('public, no-cache');
    }
    for (const storageKey of [l, `${l}__w64_h0_inside_webp`]) {
      expect((await objectHeaders(storageKey)).get('cache-control')).toBe('public, max-age=86400');
    }
  });

  it('should answer a variant it could not store with its bytes, not a 302 to a missing object, and store it next time', async () => {
    const key = await makeKey(t);
    const up = await t.http
      .post('/api/v1/upload')
      .set(...bearer(key.token))
      .attach('file', await png(22), 'a.png');
    expect(up.status).toBe(200);
    const { filename } = up.body as { filename: string };
    const path = `/images/${filename}?w=64&format=webp`;
    proxy.on(['PUT'], 'fail');
    const unstored = await t.http.get(path);
    expect(unstored.status).toBe(200);
    expect(unstored.headers['location']).toBeUndefined();
    expect(unstored.headers['content-type']).toBe('image/webp');
    // The rendered variant itself (the fixture is smaller than 64 px, and `inside` never enlarges).
    expect((await sharp(unstored.body as Buffer).metadata()).format).toBe('webp');
    await t.app.get(VariantsService).idle();
    expect(storedFiles(t)).not.toContain(`${filename}__w64_h0_inside_webp`);

    proxy.restore();
    const redirected = await t.http.get(path);
    expect(redirected.status).toBe(302);
    expect(redirected.headers['location']).toBe(`${base}/${filename}__w64_h0_inside_webp`);
    expect(storedFiles(t)).toContain(`${filename}__w64_h0_inside_webp`);
  });
});

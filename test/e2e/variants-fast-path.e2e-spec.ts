import { createHash } from 'node:crypto';
import sharp from 'sharp';
import { DeliveryCache } from '../../src/modules/delivery/delivery-cache';
import { ImagesController } from '../../src/modules/delivery/images.controller';
import { VariantsService } from '../../src/modules/delivery/variants.service';
import { StorageDriver } from '../../src/modules/storage/storage-driver';
import { png } from '../fixtures/sample-images';
import { bearer, makeKey } from '../setup/factories';
import { createTestApp, type TestApp } from '../setup/test-app';
import { waitFor } from '../setup/wait';

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const CHROME = 'image/avif,image/webp,image/apng,image/*,*/*;q=0.8';

let seed = 7000;

/** An image of the fixtures' kind, different every call (identical bytes would share one filename). */
async function photo(width: number, height: number, format: 'png' | 'jpeg' | 'gif'): Promise<Buffer> {
  return sharp(await png(++seed, width, height))
    .toFormat(format)
    .toBuffer();
}

/** The headers two answers for the same representation share (not the per-answer ones). */
function representationHeaders(headers: Record<string, string>): Record<string, string> {
  const {
    date: _date,
    'x-request-id': _id,
    'content-length': _length,
    'content-range': _range,
    connection: _connection,
    'keep-alive': _keepAlive,
    ...rest
  } = headers;
  return rest;
}

/**
 * Issue 12/14: a variant not made yet, of an upload whose row this instance holds (DeliveryCache), is made and
 * answered by the direct-link fast path without Express; anything it cannot answer goes to ImagesController, which
 * answers a failure as it was, without a second render. The controller's `serve` is watched to tell the two apart.
 */
describe('Cold variants on the direct-link fast path (e2e)', () => {
  let t: TestApp;
  let token: string;
  let variants: VariantsService;
  let serve: jest.SpyInstance;

  beforeAll(async () => {
    // One render slot and no queue: the 503 test holds the slot.
    t = await createTestApp({ env: { VARIANT_RENDER_CONCURRENCY: '1', VARIANT_QUEUE_LIMIT: '0' } });
    ({ token } = await makeKey(t));
    variants = t.app.get(VariantsService);
    await waitFor('the delivery cache', () => t.app.get(DeliveryCache).enabled);
    serve = jest.spyOn(ImagesController.prototype as unknown as { serve: () => Promise<void> }, 'serve');
  });
  afterAll(async () => {
    serve.mockRestore();
    await t.close();
  });

  /** An upload whose row the fast path holds: uploaded, then its original served once by the slow path. */
  async function cachedUpload(bytes: Buffer): Promise<string> {
    const res = await t.http
      .post('/api/v1/upload')
      .set(...bearer(token))
      .attach('file', bytes, 'x')
      .expect(200);
    const filename = res.body.filename as string;
    await t.http.get(`/images/${filename}`).expect(200);
    serve.mockClear();
    return filename;
  }

  it('should make a cold variant without Express, with the headers and bytes it is read back with', async () => {
    const filename = await cachedUpload(await photo(400, 300, 'jpeg'));
    const before = variants.renders;
    const cold = await t.http.get(`/images/${filename}?w=64&format=webp`).expect(200);
    expect(serve).not.toHaveBeenCalled();
    expect(variants.renders - before).toBe(1);
    const body = cold.body as Buffer;
    expect(cold.headers).toMatchObject({
      'content-type': 'image/webp',
      etag: `"${sha256(body)}"`,
      'cache-control': 'public, max-age=86400',
      'x-content-type-options': 'nosniff',
      'accept-ranges': 'bytes',
      'content-length': String(body.length),
      'x-request-id': expect.any(String),
    });
    expect(cold.headers['content-security-policy']).toContain('sandbox');
    const meta = await sharp(body).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['webp', 64, 48]);

    // Stored after the answer; the next request reads it back: the same representation.
    await variants.idle();
    const warm = await t.http.get(`/images/${filename}?w=64&format=webp`).expect(200);
    expect(variants.renders - before).toBe(1);
    expect((warm.body as Buffer).equals(body)).toBe(true);
    expect(representationHeaders(warm.headers)).toEqual(representationHeaders(cold.headers));
  });

  it("should make a variant its upload's row does not list without looking for it first, and list it once stored", async () => {
    const filename = await cachedUpload(await photo(320, 240, 'jpeg'));
    const find = jest.spyOn(variants as unknown as { find: () => Promise<unknown> }, 'find');
    try {
      const before = variants.renders;
      await t.http.get(`/images/${filename}?w=64&format=png`).expect(200);
      expect(variants.renders - before).toBe(1);
      expect(find).not.toHaveBeenCalled();
      await variants.idle();
      // This instance stored it: the row it holds lists it now.
      expect(t.app.get(DeliveryCache).upload(filename)?.storedVariants?.has('w64_h0_inside_png')).toBe(true);
    } finally {
      find.mockRestore();
    }
  });

  it("should send a variant its upload's row lists as stored to Express, which reads it from storage", async () => {
    const filename = await cachedUpload(await photo(320, 240, 'jpeg'));
    const made = await t.http.get(`/images/${filename}?w=64&format=webp`).expect(200);
    await variants.idle();
    // The row is read again (as on an instance that never saw the variant): it lists the stored variant.
    t.app.get(DeliveryCache).invalidate(`upload:${filename}`);
    await t.http.get(`/images/${filename}`).expect(200);
    expect([...(t.app.get(DeliveryCache).upload(filename)?.storedVariants ?? [])]).toEqual([
      'w64_h0_inside_webp',
    ]);
    serve.mockClear();
    const find = jest.spyOn(variants as unknown as { find: () => Promise<unknown> }, 'find');
    try {
      const before = variants.renders;
      const again = await t.http.get(`/images/${filename}?w=64&format=webp`).expect(200);
      expect(variants.renders).toBe(before);
      expect(serve).toHaveBeenCalledTimes(1);
      expect(find).toHaveBeenCalledTimes(1);
      expect((again.body as Buffer).equals(made.body as Buffer)).toBe(true);
    } finally {
      find.mockRestore();
    }
  });

  it('should answer a Range and a HEAD on the request that makes the variant', async () => {
    const filename = await cachedUpload(await photo(300, 200, 'png'));
    const part = await t.http
      .get(`/images/${filename}?w=128&format=png`)
      .set('Range', 'bytes=3-12')
      .expect(206);
    expect(serve).not.toHaveBeenCalled();
    await variants.idle();
    const full = (await t.http.get(`/images/${filename}?w=128&format=png`).expect(200)).body as Buffer;
    expect(part.headers['content-range']).toBe(`bytes 3-12/${full.length}`);
    expect((part.body as Buffer).equals(full.subarray(3, 13))).toBe(true);

    // A stored variant's first read on S3 goes through the slow path: only the cold requests are watched.
    serve.mockClear();
    const head = await t.http.head(`/images/${filename}?w=256&format=webp`).expect(200);
    expect(serve).not.toHaveBeenCalled();
    await variants.idle();
    const made = await t.http.get(`/images/${filename}?w=256&format=webp`).expect(200);
    expect(head.headers.etag).toBe(made.headers.etag);
    expect(Number(head.headers['content-length'])).toBe((made.body as Buffer).length);
    expect(head.text ?? '').toBe('');
  });

  it('should leave a bad parameter to the slow path every time, its answer kept or not: 400 bad_request', async () => {
    const filename = await cachedUpload(await photo(120, 80, 'png'));
    const before = variants.renders;
    // The second and third ask the fast path's kept answer for the same query (variantResolver): still the slow path's.
    for (let ask = 0; ask < 3; ask++) {
      const res = await t.http.get(`/images/${filename}?w=65&format=webp`).expect(400);
      expect(res.body).toEqual({
        ok: false,
        code: 'bad_request',
        error: expect.stringMatching(/^w must be one of /),
      });
    }
    expect(serve).toHaveBeenCalledTimes(3);
    expect(variants.renders - before).toBe(0);
    // A good query after them is the fast path's as before.
    await t.http.get(`/images/${filename}?w=64&format=webp`).expect(200);
    expect(serve).toHaveBeenCalledTimes(3);
  });

  it('should let the slow path answer a 416 from the same render, not a second one', async () => {
    const filename = await cachedUpload(await photo(300, 200, 'png'));
    const before = variants.renders;
    const res = await t.http.get(`/images/${filename}?w=64&format=webp`).set('Range', 'bytes=999999-');
    expect({ status: res.status, code: res.body.code }).toEqual({
      status: 416,
      code: 'range_not_satisfiable',
    });
    expect(res.headers['content-range']).toMatch(/^bytes \*\/\d+$/);
    expect(serve).toHaveBeenCalledTimes(1);
    expect(variants.renders - before).toBe(1);
  });

  it('should answer 503 past the render queue through the slow path, without trying again there', async () => {
    const filename = await cachedUpload(await photo(120, 80, 'png'));
    const ensure = jest.spyOn(variants, 'ensure');
    const release = await variants.slot(); // the only slot
    try {
      const res = await t.http.get(`/images/${filename}?w=64&format=webp`).expect(503);
      expect(res.body).toEqual({ ok: false, code: 'unavailable', error: expect.any(String) });
      expect(res.headers['retry-after']).toBe('1');
      expect(serve).toHaveBeenCalledTimes(1);
      expect(ensure).toHaveBeenCalledTimes(1);
    } finally {
      release();
      ensure.mockRestore();
    }
    await t.http.get(`/images/${filename}?w=64&format=webp`).expect(200);
  });

  it('should answer 404 not_found when the original is gone from storage behind the service', async () => {
    const filename = await cachedUpload(await photo(120, 80, 'jpeg'));
    await t.app.get(StorageDriver).delete(filename);
    const res = await t.http.get(`/images/${filename}?w=64&format=webp`);
    expect({ status: res.status, body: res.body }).toEqual({
      status: 404,
      body: { ok: false, code: 'not_found', error: expect.any(String) },
    });
  });

  it('should resolve format=auto as the slow path does: a still GIF as AVIF', async () => {
    const filename = await cachedUpload(await photo(200, 100, 'gif'));
    const res = await t.http.get(`/images/${filename}?w=64&format=auto`).set('Accept', CHROME).expect(200);
    expect(serve).not.toHaveBeenCalled();
    expect(res.headers['content-type']).toBe('image/avif');
    expect(res.headers.vary).toMatch(/accept/i);
    // Once stored, the same request is a hit under the same key.
    await variants.idle();
    const before = variants.renders;
    const hit = await t.http.get(`/images/${filename}?w=64&format=auto`).set('Accept', CHROME).expect(200);
    expect(hit.headers.etag).toBe(res.headers.etag);
    expect(variants.renders).toBe(before);
  });
});

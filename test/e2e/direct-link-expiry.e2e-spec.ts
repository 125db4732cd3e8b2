import type supertest from 'supertest';
import { DeliveryCache } from '../../src/modules/delivery/delivery-cache';
import { ImagesController } from '../../src/modules/delivery/images.controller';
import { VariantsService } from '../../src/modules/delivery/variants.service';
import { png } from '../fixtures/sample-images';
import { sql } from '../setup/db';
import { bearer, makeKey } from '../setup/factories';
import { createTestApp, type TestApp } from '../setup/test-app';
import { waitFor } from '../setup/wait';

const DAY = 'public, max-age=86400';
const VARIANT = 'w=64&format=webp';

/** The max-age of an answer whose Cache-Control is `public, max-age=N` and nothing else (no immutable). */
function maxAgeOf(res: supertest.Response): number {
  const header = String(res.headers['cache-control']);
  expect(header).toMatch(/^public, max-age=\d+$/);
  return Number(header.slice('public, max-age='.length));
}

/** Capped at the whole seconds left of an upload made with expires_in=60 (a test takes a few seconds at most). */
function expectCapped(res: supertest.Response, what: string): void {
  const maxAge = maxAgeOf(res);
  expect({ what, capped: maxAge <= 60 && maxAge >= 45 }).toEqual({ what, capped: true });
}

let seed = 4200;

async function upload(t: TestApp, token: string, fields: Record<string, string> = {}): Promise<string> {
  const req = t.http.post('/api/v1/upload').set(...bearer(token));
  for (const [name, value] of Object.entries(fields)) {
    void req.field(name, value);
  }
  const res = await req.attach('file', await png(++seed, 200, 150), 'a.png').expect(200);
  return res.body.filename as string;
}

/**
 * API.md Part 3: "An expired upload answers 404 everywhere at its time". A browser or CDN keeps an image for its
 * max-age without asking again, so an expiring upload's direct links (originals and variants; 200, 206, 304, HEAD;
 * the fast path and the controller) may be kept only for the whole seconds left until its expiry. Uploads without
 * expiry, or with more than the max-age left, keep `public, max-age=86400` exactly.
 */
describe('Cache-Control of an expiring upload’s direct links (e2e)', () => {
  let t: TestApp;
  let token: string;
  let serve: jest.SpyInstance;
  let cache: DeliveryCache;

  beforeAll(async () => {
    t = await createTestApp();
    ({ token } = await makeKey(t));
    cache = t.app.get(DeliveryCache);
    await waitFor('the delivery cache', () => cache.enabled);
    serve = jest.spyOn(ImagesController.prototype as unknown as { serve: () => Promise<void> }, 'serve');
  });
  afterAll(async () => {
    serve.mockRestore();
    await t.close();
  });

  /** The answer of the controller (the cache dropped first), then the fast path's for the same request. */
  async function slowThenFast(
    filename: string,
    send: () => supertest.Test,
  ): Promise<[supertest.Response, supertest.Response]> {
    cache.invalidate(`upload:${filename}`);
    serve.mockClear();
    const slow = await send();
    expect(serve).toHaveBeenCalledTimes(1);
    await t.app.get(VariantsService).idle();
    serve.mockClear();
    const fast = await send();
    expect(serve).not.toHaveBeenCalled();
    return [slow, fast];
  }

  it('should keep today’s Cache-Control for an upload without expiry or with more than a day left', async () => {
    for (const fields of [{}, { expires_in: '31536000' }] as Record<string, string>[]) {
      const filename = await upload(t, token, fields);
      for (const path of [`/images/${filename}`, `/images/${filename}?${VARIANT}`]) {
        const [slow, fast] = await slowThenFast(filename, () => t.http.get(path));
        expect([slow.status, fast.status]).toEqual([200, 200]);
        expect([slow.headers['cache-control'], fast.headers['cache-control']]).toEqual([DAY, DAY]);
        const [slow304, fast304] = await slowThenFast(filename, () =>
          t.http.get(path).set('If-None-Match', slow.headers.etag),
        );
        expect([slow304.status, fast304.status]).toEqual([304, 304]);
        expect([slow304.headers['cache-control'], fast304.headers['cache-control']]).toEqual([DAY, DAY]);
      }
    }
  });

  it('should cap the original’s max-age at the seconds left: 200, 206, 304 and HEAD, slow and fast path', async () => {
    const filename = await upload(t, token, { expires_in: '60' });
    const path = `/images/${filename}`;
    const etag = (await t.http.get(path).expect(200)).headers.etag;
    const cases: [string, number, () => supertest.Test][] = [
      ['GET', 200, () => t.http.get(path)],
      ['GET Range', 206, () => t.http.get(path).set('Range', 'bytes=3-40')],
      ['GET If-None-Match', 304, () => t.http.get(path).set('If-None-Match', etag)],
      ['HEAD', 200, () => t.http.head(path)],
    ];
    for (const [name, status, send] of cases) {
      const [slow, fast] = await slowThenFast(filename, send);
      expect([name, slow.status, fast.status]).toEqual([name, status, status]);
      expectCapped(slow, `${name} (controller)`);
      expectCapped(fast, `${name} (fast path)`);
    }
  });

  it('should cap a variant’s: made on the fast path, made by the controller, read back from storage, 304', async () => {
    const filename = await upload(t, token, { expires_in: '60' });
    const variants = t.app.get(VariantsService);
    // The fast path holds the row: it makes the variant itself.
    await t.http.get(`/images/${filename}`).expect(200);
    serve.mockClear();
    const before = variants.renders;
    const cold = await t.http.get(`/images/${filename}?${VARIANT}`).expect(200);
    expect(serve).not.toHaveBeenCalled();
    expect(variants.renders - before).toBe(1);
    expectCapped(cold, 'a variant made on the fast path');
    await variants.idle();

    // Stored: read back by the controller, then by the fast path; 304 and 206 too.
    const etag = cold.headers.etag;
    const cases: [string, number, () => supertest.Test][] = [
      ['GET', 200, () => t.http.get(`/images/${filename}?${VARIANT}`)],
      ['GET Range', 206, () => t.http.get(`/images/${filename}?${VARIANT}`).set('Range', 'bytes=0-9')],
      [
        'GET If-None-Match',
        304,
        () => t.http.get(`/images/${filename}?${VARIANT}`).set('If-None-Match', etag),
      ],
      ['HEAD', 200, () => t.http.head(`/images/${filename}?${VARIANT}`)],
    ];
    for (const [name, status, send] of cases) {
      const [slow, fast] = await slowThenFast(filename, send);
      expect([name, slow.status, fast.status]).toEqual([name, status, status]);
      expectCapped(slow, `stored variant ${name} (controller)`);
      expectCapped(fast, `stored variant ${name} (fast path)`);
    }

    // A variant made by the controller (the row not held: the fast path passes).
    cache.invalidate(`upload:${filename}`);
    serve.mockClear();
    const made = await t.http.get(`/images/${filename}?w=128&format=png`).expect(200);
    expect(serve).toHaveBeenCalledTimes(1);
    expect(variants.renders - before).toBe(2);
    expectCapped(made, 'a variant made by the controller');
    await variants.idle();
  });

  it('should give the whole seconds left, counting down to 0, and 404 from the expiry on', async () => {
    const filename = await upload(t, token, { expires_in: '60' });
    await sql(t, `update uploads set expires_at = now() + interval '3500 milliseconds' where filename = $1`, [
      filename,
    ]);
    cache.invalidate(`upload:${filename}`);
    const first = await t.http.get(`/images/${filename}`).expect(200);
    expect(maxAgeOf(first)).toBeGreaterThanOrEqual(1);
    expect(maxAgeOf(first)).toBeLessThanOrEqual(3);
    // The fast path counts from its own clock, not from when the row was read.
    await new Promise((r) => setTimeout(r, 1100));
    const later = await t.http.get(`/images/${filename}`).expect(200);
    expect(maxAgeOf(later)).toBeLessThan(maxAgeOf(first));
    await waitFor('the expiry', async () => (await t.http.get(`/images/${filename}`)).status === 404, 5000);
  });
});

/** The other ways an answer leaves /images: X-Accel-Redirect (nginx sends the bytes) and a 302 to a CDN. */
describe('Cache-Control of an expiring upload behind nginx or a CDN redirect (e2e)', () => {
  it('should cap it on X-Accel-Redirect answers, from the controller and the fast path', async () => {
    const t = await createTestApp({ env: { ACCEL_REDIRECT_PREFIX: '/_fxf_storage/' } });
    try {
      const { token } = await makeKey(t);
      await waitFor('the delivery cache', () => t.app.get(DeliveryCache).enabled);
      const plain = await upload(t, token);
      const expiring = await upload(t, token, { expires_in: '60' });
      for (const path of [`/images/${expiring}`, `/images/${expiring}?${VARIANT}`]) {
        for (const round of ['controller', 'fast path']) {
          const res = await t.http.get(path).expect(200);
          expect(res.headers['x-accel-redirect']).toMatch(/^\/_fxf_storage\//);
          expectCapped(res, `${path} (${round})`);
        }
      }
      for (let round = 0; round < 2; round++) {
        const res = await t.http.get(`/images/${plain}`).expect(200);
        expect(res.headers['x-accel-redirect']).toMatch(/^\/_fxf_storage\//);
        expect(res.headers['cache-control']).toBe(DAY);
      }
    } finally {
      await t.close();
    }
  });

  it('should cap the 302’s max-age (300 s) at the seconds left, for the original and a variant', async () => {
    const t = await createTestApp({ env: { IMAGES_REDIRECT_BASE_URL: 'https://cdn.example.test/images' } });
    try {
      const { token } = await makeKey(t);
      const plain = await upload(t, token);
      const expiring = await upload(t, token, { expires_in: '60' });
      const redirect = await t.http.get(`/images/${plain}`).expect(302);
      expect(redirect.headers['cache-control']).toBe('public, max-age=300');
      for (const path of [`/images/${expiring}`, `/images/${expiring}?${VARIANT}`]) {
        const res = await t.http.get(path).expect(302);
        expect(res.headers.location).toMatch(/^https:\/\/cdn\.example\.test\/images\/FIXITFY-/);
        expectCapped(res, path);
      }
    } finally {
      await t.close();
    }
  });
});

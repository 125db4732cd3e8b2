import type supertest from 'supertest';
import { ImagesController } from '../../src/modules/delivery/images.controller';
import { VariantsService } from '../../src/modules/delivery/variants.service';
import { DeliveryCache } from '../../src/modules/delivery/delivery-cache';
import { UploadsService } from '../../src/modules/uploads/uploads.service';
import { png } from '../fixtures/sample-images';
import { sql } from '../setup/db';
import { bearer, login, makeKey, makeUser, type TestKey } from '../setup/factories';
import { readInfra } from '../setup/infra';
import { PrivateRedis } from '../setup/private-servers';
import { TcpProxy } from '../setup/tcp-proxy';
import { createTestApp, type TestApp } from '../setup/test-app';
import { waitFor } from '../setup/wait';

/**
 * Issue 14: each instance keeps direct-link metadata in memory (DeliveryCache) and answers hits without the database
 * (the fast path). A delete or a ban reaches every instance at once through Redis pub/sub; without Redis the cache is
 * off; a change made behind the app's back (plain SQL) shows within DELIVERY_CACHE_SECONDS.
 */
describe('Direct-link cache across instances (e2e)', () => {
  let a: TestApp;
  let b: TestApp;
  let key: TestKey;

  const env = { SERVE_BANNED_IMAGES: 'false', DELIVERY_CACHE_SECONDS: '2' };

  beforeAll(async () => {
    a = await createTestApp({ env });
    b = await createTestApp({ shareWith: a, env });
    key = await makeKey(a);
    // Both instances confirmed their subscription (the cache is off until then).
    await waitFor('both subscriptions', () => cacheOf(a).enabled && cacheOf(b).enabled);
  });
  afterAll(async () => {
    await b.close();
    await a.close();
  });

  const upload = async (t: TestApp, seed: number, token = key.token): Promise<string> => {
    const res = await t.http
      .post('/api/v1/upload')
      .set(...bearer(token))
      .attach('file', await png(seed), 'a.png')
      .expect(200);
    return res.body.filename as string;
  };

  /**
   * Serves the image on `t` twice: the first fills the cache (a variant once it is stored, which follows the
   * answer), the second is a hit.
   */
  const warm = async (t: TestApp, filename: string, query = ''): Promise<void> => {
    await t.http.get(`/images/${filename}${query}`).expect(200);
    await t.app.get(VariantsService).idle();
    await t.http.get(`/images/${filename}${query}`).expect(200);
  };

  const notFound = async (t: TestApp, filename: string, query = ''): Promise<void> => {
    const get = await t.http.get(`/images/${filename}${query}`);
    expect({ status: get.status, code: get.body.code }).toEqual({ status: 404, code: 'not_found' });
    expect((await t.http.head(`/images/${filename}${query}`)).status).toBe(404);
  };

  it('should answer a hit from memory: a row deleted by plain SQL still serves, until DELIVERY_CACHE_SECONDS', async () => {
    const filename = await upload(a, 9001);
    await warm(b, filename);
    await sql(a, 'update uploads set deleted_at = now() where filename = $1', [filename]);
    // No message was published (nobody went through the app): the cache on B still holds the row.
    const hit = await b.http.get(`/images/${filename}`).expect(200);
    expect(hit.headers['x-content-type-options']).toBe('nosniff');
    expect(hit.headers['content-security-policy']).toContain('sandbox');
    // The TTL bounds it.
    await waitFor('the TTL', async () => (await b.http.get(`/images/${filename}`)).status === 404, 5000);
    await notFound(b, filename);
  });

  it('should answer 404 on B at once when A deletes the upload, for the original and a warm variant', async () => {
    const filename = await upload(a, 9002);
    await warm(b, filename);
    await warm(b, filename, '?w=64&format=webp');
    await a.http
      .delete(`/api/v1/uploads/${filename}`)
      .set(...bearer(key.token))
      .expect(200);
    await notFound(b, filename);
    await notFound(b, filename, '?w=64&format=webp');
  });

  it("should hide a banned owner's images on B at once when A bans them (files stay), and show them after unban", async () => {
    const admin = await makeUser(a, 'admin');
    const s = await login(a, admin);
    const victim = await makeKey(a);
    const filename = await upload(a, 9003, victim.token);
    await warm(b, filename);
    await warm(b, filename, '?w=64');
    await a.http
      .post(`/api/v1/admin/users/${victim.user.id}/ban`)
      .set('Cookie', s.cookie)
      .set('X-CSRF-Token', s.csrf)
      .send({ reason: 'spam' })
      .expect(200);
    await notFound(b, filename);
    await notFound(b, filename, '?w=64');
    await a.http
      .post(`/api/v1/admin/users/${victim.user.id}/unban`)
      .set('Cookie', s.cookie)
      .set('X-CSRF-Token', s.csrf)
      .expect(200);
    await b.http.get(`/images/${filename}`).expect(200);
  });

  it('should keep 304, HEAD and Range semantics on a hit', async () => {
    const filename = await upload(a, 9004);
    await warm(b, filename);
    const full = await b.http.get(`/images/${filename}`).expect(200);
    const etag = full.headers.etag;
    expect(etag).toMatch(/^"[0-9a-f]{64}"$/);
    const notModified = await b.http.get(`/images/${filename}`).set('If-None-Match', etag).expect(304);
    expect(notModified.headers.etag).toBe(etag);
    expect(notModified.headers['cache-control']).toBe('public, max-age=86400');
    const head = await b.http.head(`/images/${filename}`).expect(200);
    expect(head.headers['content-length']).toBe(String((full.body as Buffer).length));
    // HEAD with a Range answers what the GET would, without the body (as the full path does).
    const headPart = await b.http.head(`/images/${filename}`).set('Range', 'bytes=0-9').expect(206);
    expect(headPart.headers['content-range']).toBe(`bytes 0-9/${(full.body as Buffer).length}`);
    expect(headPart.headers['content-length']).toBe('10');
    const part = await b.http.get(`/images/${filename}`).set('Range', 'bytes=0-9').expect(206);
    expect(part.headers['content-range']).toBe(`bytes 0-9/${(full.body as Buffer).length}`);
    expect(Buffer.compare(part.body as Buffer, (full.body as Buffer).subarray(0, 10))).toBe(0);
    const unsatisfiable = await b.http.get(`/images/${filename}`).set('Range', 'bytes=999999-');
    expect({ status: unsatisfiable.status, code: unsatisfiable.body.code }).toEqual({
      status: 416,
      code: 'range_not_satisfiable',
    });
    expect(notModified.headers['x-request-id']).toEqual(expect.any(String));
  });
});

describe('Direct-link fast path answers (e2e)', () => {
  let t: TestApp;
  let token: string;
  let serve: jest.SpyInstance;

  beforeAll(async () => {
    t = await createTestApp();
    ({ token } = await makeKey(t));
    await waitFor('the delivery cache', () => cacheOf(t).enabled);
    serve = jest.spyOn(ImagesController.prototype as unknown as { serve: () => Promise<void> }, 'serve');
  });
  afterAll(async () => {
    serve.mockRestore();
    await t.close();
  });

  /** Every header but the per-answer Date and request id (whose presence is checked apart). */
  const headersOf = (res: { headers: Record<string, string> }): Record<string, string> => {
    const { date: _date, 'x-request-id': requestId, ...rest } = res.headers;
    expect(requestId).toMatch(/\S/);
    return rest;
  };

  it('should answer 200, 304, HEAD, Range and a variant with exactly the headers of the slow path', async () => {
    const up = await t.http
      .post('/api/v1/upload')
      .set(...bearer(token))
      .attach('file', await png(9101), 'a.png')
      .expect(200);
    const filename = up.body.filename as string;
    await t.http.get(`/images/${filename}?w=64&format=auto`).set('Accept', 'image/webp').expect(200);
    await t.app.get(VariantsService).idle();
    let etag = '';
    const cases: [string, (path: string) => supertest.Test][] = [
      ['GET', (path) => t.http.get(path)],
      ['GET If-None-Match', (path) => t.http.get(path).set('If-None-Match', etag)],
      ['HEAD', (path) => t.http.head(path)],
      ['GET Range', (path) => t.http.get(path).set('Range', 'bytes=5-24')],
      ['HEAD Range', (path) => t.http.head(path).set('Range', 'bytes=-7')],
    ];
    for (const path of [`/images/${filename}`, `/images/${filename}?w=64&format=auto`]) {
      etag = (await t.http.get(path).set('Accept', 'image/webp').expect(200)).headers.etag;
      for (const [name, send] of cases) {
        // The first answer after the cache is dropped is the slow path's; the next one is the fast path's.
        cacheOf(t).invalidate(`upload:${filename}`);
        serve.mockClear();
        const slow = await send(path).set('Accept', 'image/webp');
        expect(serve).toHaveBeenCalledTimes(1);
        await t.app.get(VariantsService).idle();
        serve.mockClear();
        const fast = await send(path).set('Accept', 'image/webp');
        expect(serve).not.toHaveBeenCalled();
        expect({ case: `${name} ${path}`, status: fast.status, headers: headersOf(fast) }).toEqual({
          case: `${name} ${path}`,
          status: slow.status,
          headers: headersOf(slow),
        });
        expect(fast.status).toBe(name.includes('If-None-Match') ? 304 : name.includes('Range') ? 206 : 200);
        if (name.startsWith('GET') && fast.status !== 304) {
          expect(Buffer.compare(fast.body as Buffer, slow.body as Buffer)).toBe(0);
        }
      }
    }
  });
});

describe('Direct-link cache without Redis (e2e)', () => {
  let redis: PrivateRedis;
  let t: TestApp;

  beforeAll(async () => {
    redis = await PrivateRedis.start();
    t = await createTestApp({ env: { REDIS_URL: redis.url, DELIVERY_CACHE_SECONDS: '300' } });
    await waitFor('the subscription', () => cacheOf(t).enabled);
  });
  afterAll(async () => {
    // Back up first: the app's shutdown (BullMQ, the shared client) wants its Redis, as in the other fault specs.
    await redis.restart();
    // Closing while the app's Redis clients are still reconnecting can hang (BullMQ waits for a connection): wait
    // until the app reports itself ready again, as dependency-outage does.
    await waitFor('Redis back', async () => (await t.http.get('/readyz')).status === 200, 30_000);
    await t.close();
    await redis.stop();
  });

  it('should stop answering from memory the moment its subscription is lost (every request asks the database)', async () => {
    const key = await makeKey(t);
    const res = await t.http
      .post('/api/v1/upload')
      .set(...bearer(key.token))
      .attach('file', await png(9100), 'a.png')
      .expect(200);
    const filename = res.body.filename as string;
    await t.http.get(`/images/${filename}`).expect(200);
    await t.http.get(`/images/${filename}`).expect(200);
    await redis.stop();
    await waitFor('the lost subscription', () => !cacheOf(t).enabled);
    // Deleted behind the app's back: with the cache on, this would serve for 300 s.
    await sql(t, 'update uploads set deleted_at = now() where filename = $1', [filename]);
    const gone = await t.http.get(`/images/${filename}`);
    expect({ status: gone.status, code: gone.body.code }).toEqual({ status: 404, code: 'not_found' });
  });
});

/**
 * A held entry is read again shortly before it expires (its last quarter, at most 2 s), in the background, so a hot
 * image's requests keep being answered from memory across its expiries instead of all reaching Express and the
 * database at once.
 */
describe('Direct-link cache entries read again before they expire (e2e)', () => {
  let t: TestApp;
  let key: TestKey;
  let serve: jest.SpyInstance;
  let findServable: jest.SpyInstance;
  // The app's way to PostgreSQL, to cut it for real while a background read is due.
  let database: TcpProxy;

  beforeAll(async () => {
    database = await TcpProxy.inFrontOf(readInfra().adminUrl);
    // A 3 s life: the background read starts in its last 750 ms, room enough for a loaded machine's query.
    t = await createTestApp({
      appDatabaseUrl: (url) => database.via(url),
      env: { DELIVERY_CACHE_SECONDS: '3' },
    });
    key = await makeKey(t);
    await waitFor('the delivery cache', () => cacheOf(t).enabled);
    serve = jest.spyOn(ImagesController.prototype as unknown as { serve: () => Promise<void> }, 'serve');
    // Watched, not replaced: every call runs the service's own read.
    findServable = jest.spyOn(t.app.get(UploadsService), 'findServable');
  });
  afterAll(async () => {
    await database.setMode('pass');
    serve.mockRestore();
    findServable.mockRestore();
    await t.close();
    await database.close();
  });

  /** An upload, its original and a variant served once each (the variant then stored and held too). */
  const hotImage = async (seed: number): Promise<{ original: string; variant: string }> => {
    const res = await t.http
      .post('/api/v1/upload')
      .set(...bearer(key.token))
      .attach('file', await png(seed), 'a.png')
      .expect(200);
    const original = `/images/${res.body.filename as string}`;
    const variant = `${original}?w=64&format=webp`;
    await t.http.get(original).expect(200);
    await t.http.get(variant).expect(200);
    await t.app.get(VariantsService).idle();
    await t.http.get(variant).expect(200); // the stored variant's row, held from here on
    return { original, variant };
  };

  const statusesFor = async (paths: string[], ms: number): Promise<number[]> => {
    const statuses: number[] = [];
    for (const until = Date.now() + ms; Date.now() < until; ) {
      for (const path of paths) {
        statuses.push((await t.http.get(path)).status);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    return statuses;
  };

  it("should answer a hot image from memory across its entry's expiries, reading its row in the background", async () => {
    const { original, variant } = await hotImage(9201);
    serve.mockClear();
    findServable.mockClear();
    // Seven seconds of hits: two expiries of a 3 s entry.
    const statuses = await statusesFor([original, variant], 7000);
    expect(new Set(statuses)).toEqual(new Set([200]));
    // None reached Express: the entries (the variant's too) were renewed before they expired.
    expect(serve).not.toHaveBeenCalled();
    // Read again about once a life (3 s), from the fast path, never for each request.
    expect(findServable.mock.calls.length).toBeGreaterThanOrEqual(2);
    expect(findServable.mock.calls.length).toBeLessThanOrEqual(4);
  });

  it('should drop the entry when the row read again is gone (a delete made by plain SQL): 404 at once', async () => {
    const { original, variant } = await hotImage(9202);
    serve.mockClear();
    findServable.mockClear();
    await sql(t, 'update uploads set deleted_at = now() where filename = $1', [
      original.slice('/images/'.length),
    ]);
    // Still held: served until the background read has found it gone.
    await t.http.get(original).expect(200);
    await waitFor('the background read', async () => {
      await t.http.get(original);
      return findServable.mock.calls.length > 0;
    });
    await expect(findServable.mock.results[0].value).resolves.toBeNull();
    // Read by the fast path while the entry was still held: nothing reached Express (whose read would be the expiry's).
    expect(serve).not.toHaveBeenCalled();
    for (const path of [original, variant]) {
      const gone = await t.http.get(path);
      expect({ status: gone.status, code: gone.body.code }).toEqual({ status: 404, code: 'not_found' });
    }
  });

  it('should let an entry expire when its background read fails (the database cut), and read the row on the slow path then', async () => {
    const { original } = await hotImage(9203);
    serve.mockClear();
    findServable.mockClear();
    // PostgreSQL refuses the app's connections: the hits go on from memory, and the background read in the entry's
    // last 750 ms fails.
    await database.setMode('refuse');
    const cut: number[] = [];
    try {
      await waitFor('the background read', async () => {
        cut.push((await t.http.get(original)).status);
        return findServable.mock.calls.length > 0;
      });
      await expect(findServable.mock.results[0].value).rejects.toThrow();
      // Still held after the failure (the read began with the first hit of the entry's last 750 ms, and failed at
      // once): served from memory, where a request sent to the full path now would answer 500 db_failed.
      cut.push(...(await statusesFor([original], 100)));
    } finally {
      await database.setMode('pass');
    }
    expect(new Set(cut)).toEqual(new Set([200]));
    // Not renewed: once the entry expired, a request went to Express, which read the row and held it again.
    const statuses = await statusesFor([original], 3000);
    expect(new Set(statuses)).toEqual(new Set([200]));
    expect(serve).toHaveBeenCalled();
    expect(findServable.mock.calls.length).toBeGreaterThanOrEqual(2);
    await expect(findServable.mock.results[1].value).resolves.toMatchObject({
      filename: original.slice('/images/'.length),
    });
  });
});

function cacheOf(t: TestApp): DeliveryCache {
  return t.app.get(DeliveryCache);
}

import request, { type Response } from 'supertest';
import { Clock } from '../../src/common/time/clock';
import { png } from '../fixtures/sample-images';
import { sql, tempFiles } from '../setup/db';
import { bearer, login, makeKey, makeUser } from '../setup/factories';
import { FakeClock } from '../setup/fake-clock';
import { listen, multipartFile, openRequest } from '../setup/raw-http';
import { createTestApp, type TestApp } from '../setup/test-app';
import { silentServer } from '../setup/private-servers';

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;

/** The rate-limit headers of a response, as strings (absent: undefined). */
const limits = (res: { headers: Record<string, unknown> }) => ({
  limit: res.headers['x-ratelimit-limit'],
  remaining: res.headers['x-ratelimit-remaining'],
  reset: res.headers['x-ratelimit-reset'],
  retryAfter: res.headers['retry-after'],
});

const expectRefused = (
  res: Response,
  code: 'rate_limit' | 'rate_limit_day',
  headers: ReturnType<typeof limits>,
): void => {
  expect({ status: res.status, body: res.body, headers: limits(res) }).toEqual({
    status: 429,
    body: { ok: false, code, error: expect.any(String) },
    headers,
  });
};

describe('Rate limits (e2e)', () => {
  const clock = new FakeClock();
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp({
      env: {
        RATE_LIMIT_UPLOADS_PER_MINUTE: '3',
        RATE_LIMIT_UPLOADS_PER_DAY: '5',
        RATE_LIMIT_MANAGEMENT_PER_MINUTE: '4',
      },
      overrides: [{ provide: Clock, useValue: clock }],
    });
  });
  afterAll(() => t.close());

  /** An authenticated upload attempt that fails after the limiter (not multipart → 400): it still counts. */
  const attempt = (token: string) =>
    t.http
      .post('/api/v1/upload')
      .set(...bearer(token))
      .send({ not: 'multipart' });

  describe('uploads per minute', () => {
    it("should admit exactly the limit, whatever each attempt's outcome, with headers on every answer", async () => {
      const { token } = await makeKey(t);
      const ok = await t.http
        .post('/api/v1/upload')
        .set(...bearer(token))
        .attach('file', await png(301), 'a.png');
      expect(ok.status).toBe(200);
      expect(limits(ok)).toEqual({ limit: '3', remaining: '2', reset: '60', retryAfter: undefined });
      clock.advance(10_000);
      const badBody = await attempt(token);
      expect(badBody.status).toBe(400);
      expect(limits(badBody)).toEqual({ limit: '3', remaining: '1', reset: '50', retryAfter: undefined });
      clock.advance(10_000);
      const notImage = await t.http
        .post('/api/v1/upload')
        .set(...bearer(token))
        .attach('file', Buffer.from('just text'), 'a.txt');
      expect(notImage.status).toBe(415);
      expect(limits(notImage)).toEqual({ limit: '3', remaining: '0', reset: '40', retryAfter: undefined });
      clock.advance(10_000);
      // The oldest of the three (30 s ago) leaves the window in 30 s.
      expectRefused(await attempt(token), 'rate_limit', {
        limit: '3',
        remaining: '0',
        reset: '30',
        retryAfter: '30',
      });
    });

    it('should admit again exactly when Retry-After says, and refused attempts use up nothing', async () => {
      const { token } = await makeKey(t);
      for (let i = 0; i < 3; i++) {
        expect((await attempt(token)).status).toBe(400);
        clock.advance(10_000);
      }
      const refused = await attempt(token);
      expectRefused(refused, 'rate_limit', { limit: '3', remaining: '0', reset: '30', retryAfter: '30' });
      for (let i = 0; i < 5; i++) {
        expect((await attempt(token)).status).toBe(429);
      }
      clock.advance(Number(refused.headers['retry-after']) * 1000 - 1000);
      expectRefused(await attempt(token), 'rate_limit', {
        limit: '3',
        remaining: '0',
        reset: '1',
        retryAfter: '1',
      });
      clock.advance(1000);
      const again = await attempt(token);
      expect(again.status).toBe(400);
      expect(limits(again)).toMatchObject({ limit: '3', remaining: '0' });
      // The next slot frees when the second attempt (made 10 s after the first) leaves.
      expectRefused(await attempt(token), 'rate_limit', {
        limit: '3',
        remaining: '0',
        reset: '10',
        retryAfter: '10',
      });
    });

    it('should not admit twice the limit across a minute boundary (sliding, not fixed, window)', async () => {
      const { token } = await makeKey(t);
      const boundary = (Math.floor(clock.now() / MINUTE) + 2) * MINUTE;
      clock.set(boundary - 100);
      for (let i = 0; i < 3; i++) {
        expect((await attempt(token)).status).toBe(400);
      }
      clock.set(boundary + 100); // a new calendar minute
      for (let i = 0; i < 3; i++) {
        expectRefused(await attempt(token), 'rate_limit', {
          limit: '3',
          remaining: '0',
          reset: '60',
          retryAfter: '60',
        });
      }
      clock.set(boundary - 100 + MINUTE - 1);
      expect((await attempt(token)).status).toBe(429);
      clock.advance(1);
      expect((await attempt(token)).status).toBe(400);
    });

    it('should admit exactly the limit of 3× the limit fired in parallel', async () => {
      const { token } = await makeKey(t);
      // A listening server: supertest would otherwise call listen() on the same server once per parallel request.
      const server = await listen(t.app);
      try {
        const http = request(`http://127.0.0.1:${server.port}`);
        const all = Array.from({ length: 9 }, () =>
          http
            .post('/api/v1/upload')
            .set(...bearer(token))
            .send({}),
        );
        const statuses = (await Promise.all(all)).map((r) => r.status);
        expect(statuses.filter((s) => s === 400)).toHaveLength(3);
        expect(statuses.filter((s) => s === 429)).toHaveLength(6);
      } finally {
        await server.close();
      }
    });

    it('should refuse a limited upload before reading its body', async () => {
      const { token } = await makeKey(t);
      for (let i = 0; i < 3; i++) {
        await attempt(token);
      }
      const before = tempFiles(t);
      const server = await listen(t.app);
      try {
        // Announce a 20 MB upload, send 64 KB of it, and never the rest: the answer must come anyway.
        const body = multipartFile(Buffer.alloc(20 * 1024 * 1024 - 1024, 0x41));
        const { req, response } = openRequest(server.port, '/api/v1/upload', {
          Authorization: `Bearer ${token}`,
          'Content-Type': body.contentType,
          'Content-Length': body.length,
        });
        req.write(body.head);
        req.write(body.file.subarray(0, 64 * 1024));
        const res = await response;
        req.destroy();
        expect(res.status).toBe(429);
        expect(res.body).toEqual({ ok: false, code: 'rate_limit', error: expect.any(String) });
        expect(res.headers['retry-after']).toBe('60');
        expect(tempFiles(t)).toEqual(before); // busboy never ran
      } finally {
        await server.close();
      }
    });
  });

  describe('uploads per day', () => {
    it('should answer rate_limit_day past the daily limit, even with room in the minute, until a slot frees', async () => {
      const { token } = await makeKey(t);
      // The day is kept in minute buckets: an admission counts until the end of its calendar minute + 24 h (up to
      // 60 s longer than exactly, never shorter; README "Rate limits").
      const firstLeaves = (Math.floor(clock.now() / MINUTE) + 1) * MINUTE + DAY;
      const secondsUntil = (at: number) => String(Math.ceil((at - clock.now()) / 1000));
      for (let i = 0; i < 3; i++) {
        expect((await attempt(token)).status).toBe(400);
      }
      clock.advance(MINUTE);
      const fifth = [await attempt(token), await attempt(token)];
      expect(fifth.map((r) => r.status)).toEqual([400, 400]);
      // 5 of 5 used today, 2 of 3 this minute: the day is the tighter window.
      expect(limits(fifth[1])).toEqual({
        limit: '5',
        remaining: '0',
        reset: secondsUntil(firstLeaves),
        retryAfter: undefined,
      });
      clock.advance(MINUTE);
      const wait = secondsUntil(firstLeaves);
      expectRefused(await attempt(token), 'rate_limit_day', {
        limit: '5',
        remaining: '0',
        reset: wait,
        retryAfter: wait,
      });
      clock.advance(Number(wait) * 1000 - 1000);
      expectRefused(await attempt(token), 'rate_limit_day', {
        limit: '5',
        remaining: '0',
        reset: '1',
        retryAfter: '1',
      });
      clock.advance(1000);
      // The first three leave together; the day's refusals used no minute slots, so all three are free.
      for (let i = 0; i < 3; i++) {
        expect((await attempt(token)).status).toBe(400);
      }
    });
  });

  describe('subjects', () => {
    it("should count a ut_ token's uploads against its minting key", async () => {
      const key = await makeKey(t);
      const mint = () =>
        t.http
          .post('/api/v1/upload-token')
          .set(...bearer(key.token))
          .expect(200);
      const [a, b] = [(await mint()).body.token as string, (await mint()).body.token as string];
      expect((await attempt(a)).status).toBe(400);
      expect((await attempt(b)).status).toBe(400);
      expect((await attempt(key.token)).status).toBe(400);
      expectRefused(await attempt(a), 'rate_limit', {
        limit: '3',
        remaining: '0',
        reset: '60',
        retryAfter: '60',
      });
      expect((await attempt(key.token)).status).toBe(429);
      // Another key of the same user has its own budget.
      expect((await attempt((await makeKey(t, key.user)).token)).status).toBe(400);
    });

    it('should limit dashboard-session uploads per user', async () => {
      const s = await login(t, await makeUser(t));
      const sessionAttempt = () =>
        t.http
          .post('/api/v1/upload')
          .set('Cookie', s.cookie)
          .set('X-CSRF-Token', s.csrf)
          .send({ not: 'multipart' });
      for (let i = 0; i < 3; i++) {
        expect((await sessionAttempt()).status).toBe(400);
      }
      expectRefused(await sessionAttempt(), 'rate_limit', {
        limit: '3',
        remaining: '0',
        reset: '60',
        retryAfter: '60',
      });
    });

    it('should authenticate before limiting: bad credentials get 401 and no rate-limit headers', async () => {
      const { token } = await makeKey(t);
      for (let i = 0; i < 4; i++) {
        await attempt(token);
      }
      for (const res of [
        await t.http.post('/api/v1/upload').send({}),
        await t.http
          .post('/api/v1/upload')
          .set(...bearer(`${token.slice(0, -1)}${token.endsWith('0') ? '1' : '0'}`)),
      ]) {
        expect(res.status).toBe(401);
        expect(limits(res)).toEqual({
          limit: undefined,
          remaining: undefined,
          reset: undefined,
          retryAfter: undefined,
        });
      }
    });
  });

  describe('management endpoints', () => {
    it('should share one per-minute budget across /uploads*, /me and /upload-token, apart from uploads', async () => {
      const { token } = await makeKey(t);
      const calls = [
        await t.http.get('/api/v1/me').set(...bearer(token)),
        await t.http.get('/api/v1/uploads').set(...bearer(token)),
        await t.http.get('/api/v1/uploads/FIXITFY-aaaaaaaaaaaa.png').set(...bearer(token)),
        await t.http.post('/api/v1/upload-token').set(...bearer(token)),
      ];
      expect(calls.map((r) => r.status)).toEqual([200, 200, 404, 200]);
      expect(calls.map((r) => limits(r).remaining)).toEqual(['3', '2', '1', '0']);
      expect(limits(calls[0])).toEqual({ limit: '4', remaining: '3', reset: '60', retryAfter: undefined });
      for (const res of [
        await t.http.get('/api/v1/me').set(...bearer(token)),
        await t.http.delete('/api/v1/uploads/FIXITFY-aaaaaaaaaaaa.png').set(...bearer(token)),
        await t.http
          .post('/api/v1/upload-token')
          .set(...bearer(token))
          .send({ ttl_seconds: 60 }),
      ]) {
        expectRefused(res, 'rate_limit', { limit: '4', remaining: '0', reset: '60', retryAfter: '60' });
      }
      // Uploads have their own budget.
      expect((await attempt(token)).status).toBe(400);
      clock.advance(MINUTE);
      expect((await t.http.get('/api/v1/me').set(...bearer(token))).status).toBe(200);
    });

    it('should not limit routes outside the groups (key management, health)', async () => {
      const s = await login(t, await makeUser(t));
      for (let i = 0; i < 6; i++) {
        const res = await t.http.get('/api/v1/keys').set('Cookie', s.cookie);
        expect(res.status).toBe(200);
        expect(limits(res).limit).toBeUndefined();
      }
    });
  });

  it('should document the limits and their headers in the OpenAPI document', async () => {
    const doc = (await t.http.get('/docs/openapi.json').expect(200)).body as {
      paths: Record<
        string,
        Record<string, { responses: Record<string, { description: string; headers?: object }> }>
      >;
    };
    const upload = doc.paths['/api/v1/upload'].post.responses;
    expect(Object.keys(upload['200'].headers ?? {})).toEqual([
      'X-RateLimit-Limit',
      'X-RateLimit-Remaining',
      'X-RateLimit-Reset',
      'X-Request-Id',
    ]);
    expect(Object.keys(upload['429'].headers ?? {}).sort()).toEqual(
      [
        'Retry-After',
        'X-RateLimit-Limit',
        'X-RateLimit-Remaining',
        'X-RateLimit-Reset',
        'X-Request-Id',
      ].sort(),
    );
    expect(upload['429'].description).toContain('rate_limit_day');
    expect(upload['503'].description).toContain('unavailable');
    for (const [path, method] of [
      ['/api/v1/me', 'get'],
      ['/api/v1/uploads', 'get'],
      ['/api/v1/uploads/{filename}', 'patch'],
      ['/api/v1/upload-token', 'post'],
    ]) {
      const responses = doc.paths[path][method].responses;
      expect(responses['429'].headers).toHaveProperty('Retry-After');
      expect(responses['200'].headers).toHaveProperty('X-RateLimit-Reset');
    }
  });
});

describe('Rate limits with Redis unreachable (e2e)', () => {
  const down = { REDIS_URL: 'redis://127.0.0.1:1' };

  it('should answer 503 unavailable on limited routes rather than serve unlimited', async () => {
    const t = await createTestApp({ env: down });
    try {
      const { token } = await makeKey(t);
      for (const res of [
        await t.http
          .post('/api/v1/upload')
          .set(...bearer(token))
          .attach('file', await png(302), 'a.png'),
        await t.http.get('/api/v1/me').set(...bearer(token)),
        await t.http.post('/api/v1/upload-token').set(...bearer(token)),
      ]) {
        expect({ status: res.status, body: res.body }).toEqual({
          status: 503,
          body: { ok: false, code: 'unavailable', error: expect.any(String) },
        });
      }
      // Authentication still comes first, and unlimited routes still work.
      expect((await t.http.post('/api/v1/upload').attach('file', await png(303), 'a.png')).status).toBe(401);
      expect((await t.http.get('/healthz')).status).toBe(200);
    } finally {
      await t.close();
    }
  });

  it('should answer 503 unavailable, not hang, when Redis accepts connections but never answers', async () => {
    const silent = await silentServer();
    const t = await createTestApp({ env: { REDIS_URL: silent.url } });
    try {
      const { token } = await makeKey(t);
      const res = await t.http.get('/api/v1/me').set(...bearer(token));
      expect({ status: res.status, code: res.body.code }).toEqual({ status: 503, code: 'unavailable' });
    } finally {
      silent.close();
      await t.close();
    }
  });

  it('should let requests through with RATE_LIMIT_FAIL_OPEN=true', async () => {
    const t = await createTestApp({ env: { ...down, RATE_LIMIT_FAIL_OPEN: 'true' } });
    try {
      const { token, keyId } = await makeKey(t);
      const res = await t.http
        .post('/api/v1/upload')
        .set(...bearer(token))
        .attach('file', await png(304), 'a.png');
      expect(res.status).toBe(200);
      expect(res.body.ok).toBe(true);
      expect(limits(res).limit).toBeUndefined();
      // Redis counts nothing now: /me answers the figure the database holds, not 0 (nor a 500).
      await sql(t, 'update api_keys set request_count = 41 where id = $1', [keyId]);
      const me = await t.http.get('/api/v1/me').set(...bearer(token));
      expect({ status: me.status, count: me.body.key?.request_count }).toEqual({ status: 200, count: 41 });
    } finally {
      await t.close();
    }
  });
});

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client } from 'pg';
import request from 'supertest';
import { uploadFastPathDeps } from '../../src/app.setup';
import { Metrics } from '../../src/common/metrics/metrics.service';
import { ApiKeysService } from '../../src/modules/api-keys/api-keys.service';
import { RequestCounterService } from '../../src/modules/api-keys/request-counter.service';
import { uploadFastPath } from '../../src/modules/uploads/upload-fast-path';
import { corruptJpeg, png, SVG } from '../fixtures/sample-images';
import { expectError } from '../setup/envelope';
import { bearer, makeKey, type TestKey } from '../setup/factories';
import { capturedLogLines } from '../setup/log-lines';
import { multipartFile, openRequest } from '../setup/raw-http';
import { createTestApp, type TestApp } from '../setup/test-app';
import { waitFor } from '../setup/wait';
import { RedisService } from '../../src/common/redis/redis.module';

type Res = { status: number; headers: Record<string, string>; body: any; text: string };

/** Uploads a key may make a minute here: enough for a test's own key, few enough to reach the 429. */
const PER_MINUTE = 6;

/** Headers that differ between two answers of the same kind (the date, the budget left, the body's own). */
const VARYING = new Set(['date', 'x-ratelimit-remaining', 'x-ratelimit-reset', 'x-request-id']);

function comparable(res: Res, also: string[] = []): Record<string, string> {
  return Object.fromEntries(
    Object.entries(res.headers).filter(([name]) => !VARYING.has(name) && !also.includes(name)),
  );
}

/**
 * Issue 14, goal 2: POST /api/v1/upload with an API key is answered in front of Express
 * (src/modules/uploads/upload-fast-path.ts). `Bearer` is the form it takes; passport also reads `bearer`, which it
 * leaves to Express: the same request through both paths, answer for answer.
 */
describe('The upload fast path (e2e)', () => {
  let t: TestApp;
  const { lines, raw, env, overrides } = capturedLogLines();

  beforeAll(async () => {
    t = await createTestApp({
      env: { ...env, RATE_LIMIT_UPLOADS_PER_MINUTE: String(PER_MINUTE) },
      overrides,
    });
  });
  afterAll(() => t.close());

  const send = (
    scheme: 'Bearer' | 'bearer',
    token: string,
    file: Buffer | null,
    name = 'a.png',
    requestId?: string,
  ): Promise<Res> => {
    let req = t.http.post('/api/v1/upload').set('Authorization', `${scheme} ${token}`);
    if (requestId) {
      req = req.set('X-Request-Id', requestId);
    }
    req = file ? req.attach('file', file, name) : req.field('tags', 'only-tags');
    return req as unknown as Promise<Res>;
  };

  describe('answers what Express answers', () => {
    it('an upload: the status, the body’s fields and every header', async () => {
      const key = await makeKey(t);
      const fast = await send('Bearer', key.token, await png(101));
      const slow = await send('bearer', key.token, await png(102));
      expect(fast.status).toBe(200);
      expect(slow.status).toBe(200);
      expect(Object.keys(fast.body)).toEqual(Object.keys(slow.body));
      expect(fast.body).toMatchObject({ ok: true, mime: 'image/png', width: 16 });
      expect(fast.body.deduplicated).toBeUndefined();
      expect(fast.body.filename).not.toBe(slow.body.filename);
      expect(comparable(fast, ['etag', 'content-length'])).toEqual(
        comparable(slow, ['etag', 'content-length']),
      );
      expect(fast.headers['cache-control']).toBe('no-store');
      expect(fast.headers.etag).toMatch(/^W\/"/);
      expect(fast.headers['content-type']).toBe('application/json; charset=utf-8');
      // One budget: the second upload (Express) has one fewer left than the first (here).
      expect(Number(slow.headers['x-ratelimit-remaining'])).toBe(
        Number(fast.headers['x-ratelimit-remaining']) - 1,
      );
      // The upload is there, served from its direct link.
      const image = await t.http.get(new URL(fast.body.url as string).pathname).expect(200);
      expect(image.headers['content-type']).toBe('image/png');
    });

    it('a dedupe hit: the upload the same bytes made, through either path', async () => {
      const key = await makeKey(t);
      const bytes = await png(103);
      const first = await send('Bearer', key.token, bytes);
      const again = await send('Bearer', key.token, bytes);
      const viaExpress = await send('bearer', key.token, bytes);
      expect(first.status).toBe(200);
      expect(first.body.deduplicated).toBeUndefined();
      for (const res of [again, viaExpress]) {
        expect(res.status).toBe(200);
        expect(res.body).toMatchObject({ deduplicated: true, filename: first.body.filename });
      }
      expect(comparable(again, ['etag', 'content-length'])).toEqual(
        comparable(viaExpress, ['etag', 'content-length']),
      );
    });

    it.each([
      ['no file part', 400, 'missing_file', () => Promise.resolve(null), 'a.png'],
      ['an empty file', 400, 'empty_file', () => Promise.resolve(Buffer.alloc(0)), 'a.png'],
      ['an SVG', 415, 'unsupported_type', () => Promise.resolve(SVG), 'a.svg'],
      ['a corrupt JPEG', 415, 'processing_failed', corruptJpeg, 'a.jpg'],
    ])('refuses %s with the envelope Express answers (%i %s)', async (_what, status, code, make, name) => {
      const key = await makeKey(t);
      const file = await make();
      const fast = await send('Bearer', key.token, file, name);
      const slow = await send('bearer', key.token, file, name);
      expectError(fast, status, code);
      expect(fast.body).toEqual(slow.body);
      expect(fast.headers['cache-control']).toBe('no-store');
      expect(fast.headers['x-ratelimit-limit']).toBeDefined();
      expect(comparable(fast)).toEqual(comparable(slow));
    });

    it('a 429 once the key’s uploads a minute are spent: the same envelope and headers, the refusal counted', async () => {
      const key = await makeKey(t);
      for (let i = 0; i < PER_MINUTE; i++) {
        expect((await send('Bearer', key.token, await png(200 + i))).status).toBe(200);
      }
      const fast = await send('Bearer', key.token, await png(299));
      const slow = await send('bearer', key.token, await png(298));
      expectError(fast, 429, 'rate_limit');
      expect(fast.body).toEqual(slow.body);
      expect(fast.headers['retry-after']).toBeDefined();
      expect(fast.headers['x-ratelimit-remaining']).toBe('0');
      expect(comparable(fast, ['retry-after'])).toEqual(comparable(slow, ['retry-after']));
      // Every request counted once: the six uploads and the two refusals.
      const live = await t.app.get(RequestCounterService).live([key.keyId]);
      expect(live.get(key.keyId)?.count).toBe(PER_MINUTE + 2);
    });

    it('answers a database failure after the key lookup as the filter does: a 500 envelope, nothing leaked', async () => {
      const key = await makeKey(t);
      const c = new Client({ connectionString: t.databaseUrl });
      await c.connect();
      // A real fault past the key lookup (which reads api_keys and users): the uploads table loses a column.
      await c.query('alter table uploads rename column sha256 to sha256_gone');
      try {
        const fast = await send('Bearer', key.token, await png(104), 'a.png', 'fast-up-failed');
        const slow = await send('bearer', key.token, await png(105), 'a.png', 'slow-up-failed');
        expect(fast.status).toBeGreaterThanOrEqual(500);
        expect(fast.status).toBe(slow.status);
        expect(fast.body).toEqual(slow.body);
        expect(fast.text).not.toContain('sha256_gone');
        expect(fast.headers['cache-control']).toBe('no-store');
        await new Promise((r) => setTimeout(r, 50));
        const line = lines.find((l) => l.req?.id === 'fast-up-failed' && l.res);
        expect(line).toMatchObject({
          msg: 'request errored',
          code: fast.body.code,
          res: { statusCode: fast.status },
        });
        // The failure's own line, logged while the request ran, carries the request on both paths alike.
        const failure = (id: string) =>
          lines.find((l) => /^Unexpected error/.test(l.msg) && l.req?.id === id);
        expect(failure('slow-up-failed')).toMatchObject({ req: { method: 'POST', url: '/api/v1/upload' } });
        expect(failure('fast-up-failed')).toMatchObject({
          req: { method: 'POST', url: '/api/v1/upload' },
          requestId: 'fast-up-failed',
        });
      } finally {
        await c.query('alter table uploads rename column sha256_gone to sha256');
        await c.end();
      }
    });

    it('writes the request-log line Express writes, key for key, with the X-Request-Id sent', async () => {
      const key = await makeKey(t);
      const fast = await send('Bearer', key.token, await png(106), 'a.png', 'cmp-up-Bearer');
      await send('bearer', key.token, await png(107), 'a.png', 'cmp-up-bearer');
      expect(fast.headers['x-request-id']).toBe('cmp-up-Bearer');
      await new Promise((r) => setTimeout(r, 50));
      const [a, b] = ['Bearer', 'bearer'].map((scheme) => {
        const found = raw.filter((l) => l.includes(`"id":"cmp-up-${scheme}"`) && l.includes('"res"'));
        expect(found).toHaveLength(1);
        const keys = [...found[0].matchAll(/"([a-z_A-Z]+)":/g)].map((m) => m[1]);
        expect(new Set(keys).size).toBe(keys.length);
        const line = JSON.parse(found[0]) as Record<string, any>;
        return { ...line, time: 0, responseTime: 0, req: { ...line.req, id: '' } } as Record<string, any>;
      });
      expect(Object.keys(a)).toEqual(Object.keys(b));
      expect(a).toEqual(b);
      expect(a.principal).toEqual({ user_id: key.user.id, via: 'key', key_prefix: expect.any(String) });
      expect(JSON.stringify(a)).not.toContain(key.token);
    });

    it('counts each answer in the HTTP metrics under the route Express names', async () => {
      const key = await makeKey(t);
      const metrics = t.app.get(Metrics);
      const series = async (): Promise<Map<string, number>> =>
        new Map(
          (await metrics.httpRequests.get()).values
            .filter((v) => v.labels.method === 'POST' && v.labels.route === '/api/v1/upload')
            .map((v) => [`${v.labels.route} ${v.labels.status}`, v.value]),
        );
      const before = await series();
      await send('bearer', key.token, await png(108));
      await send('Bearer', key.token, await png(109));
      await send('bearer', key.token, SVG, 'a.svg');
      await send('Bearer', key.token, SVG, 'a.svg');
      await new Promise((r) => setImmediate(r));
      const after = await series();
      const grown = [...after]
        .filter(([k, v]) => v !== (before.get(k) ?? 0))
        .map(([k, v]) => [k, v - (before.get(k) ?? 0)]);
      expect(Object.fromEntries(grown)).toEqual({ '/api/v1/upload 200': 2, '/api/v1/upload 415': 2 });
    });

    it('sends 100 Continue only once the key and its limit have passed', async () => {
      const key = await makeKey(t);
      const port = (t.app.getHttpServer().address() as AddressInfo).port;
      const expecting = async (seed: number): Promise<{ status: number; continued: boolean; body: any }> => {
        const parts = multipartFile(await png(seed));
        const { req, response } = openRequest(port, '/api/v1/upload', {
          Authorization: `Bearer ${key.token}`,
          'Content-Type': parts.contentType,
          'Content-Length': parts.length,
          Expect: '100-continue',
        });
        let continued = false;
        req.on('continue', () => {
          continued = true;
          req.end(Buffer.concat([parts.head, parts.file, parts.tail]));
        });
        req.flushHeaders();
        const res = await response;
        // A refusal answered before the body was asked for: this request never sends it.
        req.destroy();
        return { status: res.status, continued, body: res.body };
      };
      expect(await expecting(110)).toMatchObject({ status: 200, continued: true, body: { ok: true } });
      for (let i = 1; i < PER_MINUTE; i++) {
        expect((await send('Bearer', key.token, await png(300 + i))).status).toBe(200);
      }
      expect(await expecting(111)).toMatchObject({
        status: 429,
        continued: false,
        body: { code: 'rate_limit' },
      });
    });
    it('answers the limit’s refusal before the slots’, and a refused request holds no upload slot', async () => {
      const key = await makeKey(t);
      const port = (t.app.getHttpServer().address() as AddressInfo).port;
      const slotsHeld = () => t.app.get(RedisService).client.zcard(`uploads-in-flight:key:${key.keyId}`);
      // Uploads that stop after their multipart head: each holds one of the key's slots until its socket closes.
      const stalled = async (seed: number) => {
        const body = multipartFile(await png(seed));
        const { req, response } = openRequest(port, '/api/v1/upload', {
          Authorization: `Bearer ${key.token}`,
          'Content-Type': body.contentType,
          'Content-Length': body.length,
        });
        req.write(body.head);
        return { abort: () => req.destroy(), done: response.catch(() => undefined) };
      };
      // UPLOADS_IN_FLIGHT_PER_KEY's default is 4: four held slots, and four of the key's six uploads a minute.
      const held = [];
      for (let i = 0; i < 4; i++) {
        held.push(await stalled(400 + i));
      }
      await waitFor('four slots held', async () => (await slotsHeld()) === 4);
      try {
        // The limit admits the next two; the slots refuse them.
        for (let i = 0; i < 2; i++) {
          const refused = await send('Bearer', key.token, await png(410 + i));
          expectError(refused, 429, 'rate_limit');
          expect(refused.body.error).toContain('4 uploads in progress');
        }
        // Both would refuse the seventh: the limit's refusal is the answer, as the guards give it to Express's route.
        const both = await send('Bearer', key.token, await png(420));
        const slow = await send('bearer', key.token, await png(421));
        expectError(both, 429, 'rate_limit');
        expect(both.body).toEqual(slow.body);
        expect(both.body.error).not.toContain('uploads in progress');
        expect(both.headers['x-ratelimit-remaining']).toBe('0');
        expect(await slotsHeld()).toBe(4);
      } finally {
        for (const h of held) {
          h.abort();
          await h.done;
        }
      }
      await waitFor('slots released', async () => (await slotsHeld()) === 0);
      // The slots free and the minute's budget spent: the slot asked beside the limit (taken, as one is free) is
      // given back before the refusal is answered. This zcard goes out after that release on the service's own Redis
      // connection, so it reads none held at once (the slot lives 60 s otherwise).
      const refused = await send('Bearer', key.token, await png(422));
      expectError(refused, 429, 'rate_limit');
      expect(refused.body.error).not.toContain('uploads in progress');
      expect(await slotsHeld()).toBe(0);
    });
  });

  describe('takes only what it can answer', () => {
    let server: Server;
    let base: string;
    const passedOn: { what: string; bodyBytes: number; headersSent: boolean }[] = [];

    beforeAll(async () => {
      // The fast path alone, with a stand-in for Express that records what it is given and reads the whole body.
      const fast = uploadFastPath(uploadFastPathDeps(t.app), (req: IncomingMessage, res: ServerResponse) => {
        const headersSent = res.headersSent;
        let bodyBytes = 0;
        req.on('data', (c: Buffer) => (bodyBytes += c.length));
        req.on('end', () => {
          passedOn.push({ what: `${req.method} ${req.url}`, bodyBytes, headersSent });
          res.writeHead(599).end();
        });
      });
      server = createServer((req, res) => {
        if (!fast(req, res)) {
          passedOn.push({ what: `untouched ${req.method} ${req.url}`, bodyBytes: -1, headersSent: false });
          req.resume();
          res.writeHead(598).end();
        }
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(() => new Promise<void>((r) => server.close(() => r())));

    const post = (path: string, token: string, scheme = 'Bearer') =>
      request(base)
        .post(path)
        .set('Authorization', `${scheme} ${token}`)
        .attach('file', Buffer.alloc(3000, 7), 'a.png');

    it('answers an upload with a key, and a refusal of its bytes, itself', async () => {
      const key = await makeKey(t);
      passedOn.length = 0;
      const ok = await request(base)
        .post('/api/v1/upload')
        .set(...bearer(key.token))
        .attach('file', await png(111), 'a.png');
      expect(ok.status).toBe(200);
      const bad = await post('/api/v1/upload', key.token);
      expectError(bad, 415, 'unsupported_type');
      expect(passedOn).toEqual([]);
    });

    it('passes on, body unread, what only Express can answer once the key is looked up', async () => {
      const owner = await makeKey(t);
      const readOnly = await t.app.get(ApiKeysService).create(owner.user.id, 'read only', undefined, {
        scopes: ['read'],
      });
      const revoked: TestKey = await makeKey(t);
      await t.app.get(ApiKeysService).revoke(revoked.user.id, revoked.keyId);
      passedOn.length = 0;
      for (const token of ['fxf_unknownunknownunknownunknownunknown', readOnly.token, revoked.token]) {
        expect((await post('/api/v1/upload', token)).status).toBe(599);
      }
      expect(passedOn).toHaveLength(3);
      for (const passed of passedOn) {
        expect(passed.what).toBe('POST /api/v1/upload');
        expect(passed.headersSent).toBe(false);
        // The whole multipart body reached Express: more than the 3,000 bytes of the file part.
        expect(passed.bodyBytes).toBeGreaterThan(3000);
      }
    });

    it('leaves untouched every other form of request', async () => {
      const key = await makeKey(t);
      passedOn.length = 0;
      await post('/api/v1/upload/', key.token);
      await post('/api/v1/upload?x=1', key.token);
      await post('/api/v1/Upload', key.token);
      await post('/api/v1/upload', key.token, 'bearer');
      await post('/api/v1/upload', 'ut_sometoken');
      await request(base)
        .post('/api/v1/upload')
        .set(...bearer(key.token))
        .send({ file: 'x' });
      await request(base)
        .put('/api/v1/upload')
        .set(...bearer(key.token))
        .attach('file', Buffer.alloc(10), 'a.png');
      expect(passedOn.map((p) => p.what)).toEqual([
        'untouched POST /api/v1/upload/',
        'untouched POST /api/v1/upload?x=1',
        'untouched POST /api/v1/Upload',
        'untouched POST /api/v1/upload',
        'untouched POST /api/v1/upload',
        'untouched POST /api/v1/upload',
        'untouched PUT /api/v1/upload',
      ]);
    });
  });
});

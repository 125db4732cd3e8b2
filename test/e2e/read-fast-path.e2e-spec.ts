import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client } from 'pg';
import request from 'supertest';
import { readFastPathDeps } from '../../src/app.setup';
import { RequestCounter } from '../../src/common/auth/authenticators';
import type { Principal } from '../../src/common/auth/principal';
import { Metrics } from '../../src/common/metrics/metrics.service';
import { ApiKeysService } from '../../src/modules/api-keys/api-keys.service';
import { RequestCounterService } from '../../src/modules/api-keys/request-counter.service';
import { UsersService } from '../../src/modules/auth/users.service';
import { LIST_QUERIES_KEPT, readFastPath } from '../../src/modules/uploads/read-fast-path';
import { png } from '../fixtures/sample-images';
import { sql } from '../setup/db';
import { expectError } from '../setup/envelope';
import { bearer, makeKey, makeUser, type TestKey } from '../setup/factories';
import { capturedLogLines } from '../setup/log-lines';
import { createTestApp, type TestApp } from '../setup/test-app';

type Res = { status: number; headers: Record<string, string>; body: any; text: string };

/** The request's answer headers an identical request through the other path must repeat exactly. */
const VARYING = new Set(['date', 'x-ratelimit-remaining', 'x-ratelimit-reset']);

function comparable(res: Res, also: string[] = []): Record<string, string> {
  return Object.fromEntries(
    Object.entries(res.headers).filter(([name]) => !VARYING.has(name) && !also.includes(name)),
  );
}

async function upload(t: TestApp, token: string, seed: number): Promise<string> {
  const res = await t.http
    .post('/api/v1/upload')
    .set(...bearer(token))
    .attach('file', await png(seed), 'a.png')
    .expect(200);
  return (res.body as { filename: string }).filename;
}

/**
 * Issue 14, goal 3: GET /api/v1/me, /api/v1/uploads and /api/v1/uploads/:filename with an API key are answered in
 * front of Express (src/modules/uploads/read-fast-path.ts). `Bearer` is the form it takes; passport also reads
 * `bearer`, which it leaves to Express: the same request through both paths, answer for answer.
 */
describe('The read fast path (e2e)', () => {
  let t: TestApp;
  let key: TestKey;
  let filename: string;
  const { lines, raw, env, overrides } = capturedLogLines();

  beforeAll(async () => {
    t = await createTestApp({ env, overrides });
    key = await makeKey(t);
    filename = await upload(t, key.token, 1);
    await upload(t, key.token, 2);
    await upload(t, key.token, 3);
  });
  afterAll(() => t.close());

  const get = (path: string, scheme: 'Bearer' | 'bearer', token = key.token) =>
    t.http.get(path).set('Authorization', `${scheme} ${token}`) as unknown as Promise<Res>;

  describe('answers what Express answers', () => {
    it.each([
      ['the listing', '/api/v1/uploads'],
      ['a page of the listing', '/api/v1/uploads?limit=2'],
      ['a tag of the listing', '/api/v1/uploads?tag=none&limit=5'],
      ['the lookup', () => `/api/v1/uploads/${filename}`],
    ])('%s: status, body and every header', async (_what, path) => {
      const url = typeof path === 'function' ? path() : path;
      const fast = await get(url, 'Bearer');
      const slow = await get(url, 'bearer');
      expect(fast.status).toBe(200);
      expect(fast.body).toEqual(slow.body);
      expect(comparable(fast, ['x-request-id'])).toEqual(comparable(slow, ['x-request-id']));
      expect(fast.headers.etag).toMatch(/^W\/"/);
      // One budget: the second request (Express) has one request fewer left than the first (here).
      expect(Number(slow.headers['x-ratelimit-remaining'])).toBe(
        Number(fast.headers['x-ratelimit-remaining']) - 1,
      );
    });

    it('a listing read in the key lookup’s statement: every page in Express’s order (ties on created_at), tags, /me', async () => {
      // 130 rows of another account, in runs of 7 with one created_at (the keyset's tie-break on id decides),
      // every third one tagged, plus one deleted and one expired that no page may show.
      const other = await makeKey(t);
      await sql(
        t,
        `insert into uploads (id, owner_id, filename, mime, size, width, height, sha256, stored_sha256, tags,
                              delete_token_hash, created_at, deleted_at, expires_at)
         select gen_random_uuid(), $1::uuid, 'FIXITFY-' || lpad(to_hex(g), 12, '0') || '.png', 'image/png', 100 + g,
                4, 3, md5(g::text) || md5('s' || g), md5('t' || g) || md5('u' || g),
                case when g % 3 = 0 then array['cats'] else '{}' end, md5('d' || g) || md5('e' || g),
                timestamptz '2026-01-01' + make_interval(mins => g / 7),
                case when g = 131 then now() end, case when g = 132 then now() - interval '1 minute' end
           from generate_series(1, 132) as g`,
        [other.user.id],
      );
      const pages = async (first: string, scheme: 'Bearer' | 'bearer'): Promise<unknown[]> => {
        const seen: unknown[] = [];
        for (let path: string | null = first; path; ) {
          const res = await get(path, scheme, other.token);
          expect(res.status).toBe(200);
          seen.push(res.body);
          const next = (res.body as { next_before: string | null }).next_before;
          path = next ? `${first}&before=${encodeURIComponent(next)}` : null;
        }
        return seen;
      };
      const all = await pages('/api/v1/uploads?limit=50', 'Bearer');
      expect(all).toEqual(await pages('/api/v1/uploads?limit=50', 'bearer'));
      expect(all.map((p) => (p as { count: number }).count)).toEqual([50, 50, 30]);
      const names = all.flatMap((p) =>
        (p as { uploads: { filename: string }[] }).uploads.map((u) => u.filename),
      );
      expect(new Set(names).size).toBe(130);
      const tagged = await pages('/api/v1/uploads?limit=20&tag=cats', 'Bearer');
      expect(tagged).toEqual(await pages('/api/v1/uploads?limit=20&tag=cats', 'bearer'));
      expect(tagged.reduce((n: number, p) => n + (p as { count: number }).count, 0)).toBe(43);
      const me = await get('/api/v1/me', 'Bearer', other.token);
      expect(me.body.account).toMatchObject({
        uploads_active: 130,
        storage_used_bytes: 130 * 100 + (130 * 131) / 2,
      });
    });

    it('a listing query the pipe refuses: the same 400 envelope when asked again (its refusal kept)', async () => {
      for (let i = 0; i < 2; i++) {
        const res = await get('/api/v1/uploads?limit=abc', 'Bearer');
        expectError(res, 400, 'bad_request');
        expect(res.body.error).toBe('limit must be a whole number from 1 to 100');
      }
    });

    it('an account without uploads: an empty page, as Express gives it', async () => {
      const empty = await makeKey(t);
      const fast = await get('/api/v1/uploads?limit=5', 'Bearer', empty.token);
      const slow = await get('/api/v1/uploads?limit=5', 'bearer', empty.token);
      expect(fast.status).toBe(200);
      expect(fast.body).toEqual({ ok: true, count: 0, next_before: null, uploads: [] });
      expect(fast.body).toEqual(slow.body);
      expect(fast.headers.etag).toBe(slow.headers.etag);
    });

    it('GET /api/v1/me: the same account and key, request_count counting both', async () => {
      const fast = await get('/api/v1/me', 'Bearer');
      const slow = await get('/api/v1/me', 'bearer');
      expect(fast.status).toBe(200);
      expect(slow.body.key.request_count).toBe(fast.body.key.request_count + 1);
      expect({ ...fast.body, key: { ...fast.body.key, request_count: 0 } }).toEqual({
        ...slow.body,
        key: { ...slow.body.key, request_count: 0 },
      });
      expect(fast.body.account.uploads_active).toBe(3);
      expect(comparable(fast, ['x-request-id', 'etag', 'content-length'])).toEqual(
        comparable(slow, ['x-request-id', 'etag', 'content-length']),
      );
    });

    it.each([
      ['an unknown filename', '/api/v1/uploads/FIXITFY-000000000000.png'],
      // Plain enough for this path, but no upload's name: its statement looks for nothing.
      ['a name no upload can have', '/api/v1/uploads/not-an-upload.png'],
    ])('a 404 for %s: the envelope, no-store, the rate-limit headers', async (_what, path) => {
      const fast = await get(path, 'Bearer');
      const slow = await get(path, 'bearer');
      expectError(fast, 404, 'not_found');
      expect(fast.body).toEqual(slow.body);
      expect(fast.headers['cache-control']).toBe('no-store');
      expect(fast.headers['x-ratelimit-limit']).toBeDefined();
      expect(comparable(fast, ['x-request-id'])).toEqual(comparable(slow, ['x-request-id']));
    });

    it('a 304 for the ETag the client holds, without a body', async () => {
      const first = await get(`/api/v1/uploads/${filename}`, 'Bearer');
      for (const scheme of ['Bearer', 'bearer'] as const) {
        const again = (await t.http
          .get(`/api/v1/uploads/${filename}`)
          .set('Authorization', `${scheme} ${key.token}`)
          .set('If-None-Match', first.headers.etag)) as unknown as Res;
        expect(again.status).toBe(304);
        expect(again.text).toBe('');
        expect(again.headers['content-type']).toBeUndefined();
        expect(again.headers.etag).toBe(first.headers.etag);
      }
    });

    it('the X-Request-Id the caller sent, and one request-log line carrying the key', async () => {
      const res = (await t.http
        .get(`/api/v1/uploads/${filename}`)
        .set(...bearer(key.token))
        .set('X-Request-Id', 'fast-read-1')) as unknown as Res;
      expect(res.headers['x-request-id']).toBe('fast-read-1');
      await t.http
        .get('/api/v1/uploads/FIXITFY-000000000000.png')
        .set(...bearer(key.token))
        .set('X-Request-Id', 'fast-read-2')
        .expect(404);
      const lineOf = (id: string) => lines.filter((l) => l.req?.id === id && l.res);
      await new Promise((r) => setTimeout(r, 50));
      expect(lineOf('fast-read-1')).toHaveLength(1);
      const [ok] = lineOf('fast-read-1');
      expect(ok.req).toEqual({
        id: 'fast-read-1',
        method: 'GET',
        url: `/api/v1/uploads/${filename}`,
        ip: expect.any(String),
      });
      expect(ok.principal).toEqual({ user_id: key.user.id, via: 'key', key_prefix: expect.any(String) });
      expect(ok.res).toEqual({ statusCode: 200 });
      expect(ok.code).toBeUndefined();
      expect(JSON.stringify(ok)).not.toContain(key.token);
      expect(lineOf('fast-read-2')[0]).toMatchObject({ code: 'not_found', res: { statusCode: 404 } });
    });

    it.each([
      ['a 200', () => `/api/v1/uploads/${filename}`, 200],
      ['a 404', () => '/api/v1/uploads/FIXITFY-000000000000.png', 404],
    ])('writes the request-log line Express writes for %s, key for key', async (what, path, status) => {
      const tag = what.replace(' ', '');
      for (const scheme of ['Bearer', 'bearer']) {
        await t.http
          .get(path())
          .set('Authorization', `${scheme} ${key.token}`)
          .set('X-Request-Id', `cmp-${tag}-${scheme}`)
          .expect(status);
      }
      await new Promise((r) => setTimeout(r, 50));
      const [fast, slow] = ['Bearer', 'bearer'].map((scheme) => {
        const found = raw.filter((l) => l.includes(`"id":"cmp-${tag}-${scheme}"`));
        expect(found).toHaveLength(1);
        // One key once (pino-http's child loggers can repeat a binding).
        const keys = [...found[0].matchAll(/"([a-z_A-Z]+)":/g)].map((m) => m[1]);
        expect(new Set(keys).size).toBe(keys.length);
        const line = JSON.parse(found[0]) as Record<string, any>;
        return { ...line, time: 0, responseTime: 0, req: { ...line.req, id: '' } };
      });
      expect(Object.keys(fast)).toEqual(Object.keys(slow));
      expect(fast).toEqual(slow);
    });

    it('counts each answer in the HTTP metrics under the route Express names', async () => {
      const metrics = t.app.get(Metrics);
      const series = async (): Promise<Map<string, number>> =>
        new Map(
          (await metrics.httpRequests.get()).values
            .filter((v) => v.labels.method === 'GET' && String(v.labels.route).startsWith('/api/v1/'))
            .map((v) => [`${v.labels.route} ${v.labels.status}`, v.value]),
        );
      const before = await series();
      for (const path of [
        '/api/v1/me',
        '/api/v1/uploads?limit=1',
        `/api/v1/uploads/${filename}`,
        '/api/v1/uploads/FIXITFY-000000000000.png',
      ]) {
        // Express first: whatever series it counts in, the fast path's answer must count in the same one.
        await get(path, 'bearer');
        await get(path, 'Bearer');
      }
      await new Promise((r) => setImmediate(r));
      const after = await series();
      const grown = [...after]
        .filter(([k, v]) => v !== (before.get(k) ?? 0))
        .map(([k, v]) => [k, v - (before.get(k) ?? 0)]);
      expect(Object.fromEntries(grown)).toEqual({
        '/api/v1/me 200': 2,
        '/api/v1/uploads 200': 2,
        '/api/v1/uploads/:filename 200': 2,
        '/api/v1/uploads/:filename 404': 2,
      });
    });

    it('answers a failure of the data statement as the filter does: a 500 envelope, nothing leaked', async () => {
      const c = new Client({ connectionString: t.databaseUrl });
      await c.connect();
      // A real fault after the key lookup (which reads api_keys and users): the uploads table loses a column.
      await c.query('alter table uploads rename column tags to tags_gone');
      try {
        const fast = (await t.http
          .get(`/api/v1/uploads/${filename}`)
          .set(...bearer(key.token))
          .set('X-Request-Id', 'fast-failed')) as unknown as Res;
        const slow = await get(`/api/v1/uploads/${filename}`, 'bearer');
        expect(fast.status).toBeGreaterThanOrEqual(500);
        await new Promise((r) => setTimeout(r, 50));
        const line = lines.find((l) => l.req?.id === 'fast-failed' && l.res);
        expect(line).toMatchObject({
          msg: 'request errored',
          code: fast.body.code,
          res: { statusCode: fast.status },
          err: { message: `failed with status code ${fast.status}` },
        });
        expect(fast.body).toEqual(slow.body);
        expect(fast.status).toBe(slow.status);
        expect(fast.text).not.toContain('tags_gone');
        expect(fast.headers['cache-control']).toBe('no-store');
      } finally {
        await c.query('alter table uploads rename column tags_gone to tags');
        await c.end();
      }
    });
  });

  describe('takes only what it can answer', () => {
    let server: Server;
    let base: string;
    const passedOn: string[] = [];

    beforeAll(async () => {
      // The fast path alone, with a stand-in for Express that records what it is given.
      const fast = readFastPath(readFastPathDeps(t.app), (req: IncomingMessage, res: ServerResponse) => {
        passedOn.push(`${req.method} ${req.url}`);
        expect(res.headersSent).toBe(false);
        res.writeHead(599).end();
      });
      server = createServer((req, res) => {
        if (!fast(req, res)) {
          passedOn.push(`untouched ${req.method} ${req.url}`);
          res.writeHead(598).end();
        }
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(() => new Promise<void>((r) => server.close(() => r())));

    it('answers the three reads with a key, a 404 included, and counts each request once', async () => {
      const own = await makeKey(t);
      const name = await upload(t, own.token, 10);
      passedOn.length = 0;
      const paths = [
        '/api/v1/me',
        '/api/v1/uploads',
        '/api/v1/uploads?limit=1',
        `/api/v1/uploads/${name}`,
        '/api/v1/uploads/FIXITFY-000000000000.png',
      ];
      const statuses = [];
      for (const path of paths) {
        statuses.push(
          (
            await request(base)
              .get(path)
              .set(...bearer(own.token))
          ).status,
        );
      }
      expect(statuses).toEqual([200, 200, 200, 200, 404]);
      expect(passedOn).toEqual([]);
      // Upload (1) plus the five above, each once.
      const live = await t.app.get(RequestCounterService).live([own.keyId]);
      expect(live.get(own.keyId)?.count).toBe(6);
    });

    it('answers a listing and a lookup without waiting for their count; /me, which shows it, waits', async () => {
      // The real counter behind a gate: each count starts when the gate opens (as a slow Redis would answer it).
      const real = t.app.get(RequestCounter);
      let open!: () => void;
      const gate = new Promise<void>((r) => (open = r));
      const held = { count: (p: Principal) => gate.then(() => real.count(p)) };
      const fast = readFastPath({ ...readFastPathDeps(t.app), counter: held }, (_req, res) => {
        res.writeHead(599).end();
      });
      const gated = createServer((req, res) => void fast(req, res));
      await new Promise<void>((r) => gated.listen(0, '127.0.0.1', r));
      try {
        const own = await makeKey(t);
        const name = await upload(t, own.token, 12);
        const at = `http://127.0.0.1:${(gated.address() as AddressInfo).port}`;
        const statuses = [];
        for (const path of ['/api/v1/uploads', `/api/v1/uploads/${name}`]) {
          statuses.push(
            (
              await request(at)
                .get(path)
                .set(...bearer(own.token))
            ).status,
          );
        }
        expect(statuses).toEqual([200, 200]);
        let meAnswered = false;
        const me = request(at)
          .get('/api/v1/me')
          .set(...bearer(own.token))
          .then((res) => ((meAnswered = true), res));
        await new Promise((r) => setTimeout(r, 300));
        expect(meAnswered).toBe(false);
        open();
        const answered = await me;
        expect(answered.status).toBe(200);
        // The upload, the two reads and /me itself: every request counted once the counter could.
        expect(answered.body.key.request_count).toBe(4);
      } finally {
        await new Promise<void>((r) => gated.close(() => r()));
      }
    });

    it('sends a listing’s and a lookup’s count once their answer is written, /me’s before, each once', async () => {
      // Each count and each answer's end, in the order they happen.
      const real = t.app.get(RequestCounter);
      const events: string[] = [];
      const spy = {
        count: (p: Principal) => {
          events.push('count');
          return real.count(p);
        },
      };
      const fast = readFastPath({ ...readFastPathDeps(t.app), counter: spy }, (_req, res) => {
        res.writeHead(599).end();
      });
      const watched = createServer((req, res) => {
        const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse;
        res.end = ((...args: unknown[]) => (
          events.push(`end ${res.statusCode}`),
          end(...args)
        )) as typeof res.end;
        void fast(req, res);
      });
      await new Promise<void>((r) => watched.listen(0, '127.0.0.1', r));
      try {
        const own = await makeKey(t);
        const name = await upload(t, own.token, 13);
        const at = `http://127.0.0.1:${(watched.address() as AddressInfo).port}`;
        const order: Record<string, string[]> = {};
        for (const path of [
          '/api/v1/uploads',
          `/api/v1/uploads/${name}`,
          '/api/v1/uploads/missing.png',
          '/api/v1/me',
        ]) {
          events.length = 0;
          await request(at)
            .get(path)
            .set(...bearer(own.token));
          // count() is called in the answer's own turn of the event loop: it is in `events` by the time the client
          // has the answer.
          order[path] = [...events];
        }
        expect(order).toEqual({
          '/api/v1/uploads': ['end 200', 'count'],
          [`/api/v1/uploads/${name}`]: ['end 200', 'count'],
          '/api/v1/uploads/missing.png': ['end 404', 'count'],
          '/api/v1/me': ['count', 'end 200'],
        });
        const me = await request(at)
          .get('/api/v1/me')
          .set(...bearer(own.token));
        // The upload, the four reads above and this /me.
        expect(me.body.key.request_count).toBe(6);
      } finally {
        await new Promise<void>((r) => watched.close(() => r()));
      }
    });

    it('passes on, untouched and uncounted, every request it does not read exactly as the router would', async () => {
      const own = await makeKey(t);
      const name = await upload(t, own.token, 11);
      passedOn.length = 0;
      const sends: [string, (r: request.Test) => request.Test][] = [
        ['GET /api/v1/uploads?limit=abc', (r) => r],
        ['GET /api/v1/uploads?unknown=1', (r) => r],
        ['GET /api/v1/uploads?tag=a%20b', (r) => r],
        ['GET /api/v1/me?x=1', (r) => r],
        [`GET /api/v1/uploads/${name}?x=1`, (r) => r],
        ['GET /api/v1/uploads/by-hash/00', (r) => r],
        ['GET /api/v1/uploads/FIXITFY%2D1.png', (r) => r],
        ['GET /api/v1/keys', (r) => r],
      ];
      for (const [line, extra] of sends) {
        const [, path] = line.split(' ');
        expect(
          (
            await extra(
              request(base)
                .get(path)
                .set(...bearer(own.token)),
            )
          ).status,
        ).toBe(599);
      }
      expect(passedOn).toEqual(sends.map(([line]) => line));
      const live = await t.app.get(RequestCounterService).live([own.keyId]);
      expect(live.get(own.keyId)?.count).toBe(1); // the upload only
    });

    it('validates a listing query once while it is kept: fresh data every time, a refused one still passed on', async () => {
      // The fast path with the app's pipe behind a counter of the queries it is asked to validate.
      const deps = readFastPathDeps(t.app);
      const asked: string[] = [];
      const pipe = deps.validation;
      const validation = Object.create(pipe) as typeof pipe;
      validation.transform = (value: unknown, meta) => {
        asked.push(new URLSearchParams(value as Record<string, string>).toString());
        return pipe.transform(value, meta);
      };
      const fast = readFastPath({ ...deps, validation }, (req, res) => {
        passedOn.push(`${req.method} ${req.url}`);
        res.writeHead(599).end();
      });
      const alone = createServer((req, res) => void fast(req, res));
      await new Promise<void>((r) => alone.listen(0, '127.0.0.1', r));
      const at = `http://127.0.0.1:${(alone.address() as AddressInfo).port}`;
      try {
        const own = await makeKey(t);
        const list = (query: string) =>
          request(at)
            .get(`/api/v1/uploads?${query}`)
            .set(...bearer(own.token));
        await upload(t, own.token, 12);
        expect((await list('limit=5')).body.count).toBe(1);
        await upload(t, own.token, 13);
        const again = await list('limit=5');
        expect(again.status).toBe(200);
        expect(again.body.count).toBe(2); // the options were kept, not the answer
        expect(asked).toEqual(['limit=5']);

        passedOn.length = 0;
        expect((await list('limit=abc')).status).toBe(599);
        expect((await list('limit=abc')).status).toBe(599);
        expect(passedOn).toEqual(['GET /api/v1/uploads?limit=abc', 'GET /api/v1/uploads?limit=abc']);
        expect(asked).toEqual(['limit=5', 'limit=abc']);

        // LIST_QUERIES_KEPT other queries push the first out: it is validated again, and still answered.
        for (let n = 1; n <= LIST_QUERIES_KEPT; n++) {
          expect((await list(`limit=${1 + (n % 2)}&tag=t${n}`)).status).toBe(200);
        }
        expect(asked).toHaveLength(2 + LIST_QUERIES_KEPT);
        const evicted = await list('limit=5');
        expect(evicted.body.count).toBe(2);
        expect(asked).toHaveLength(3 + LIST_QUERIES_KEPT);
        expect(asked.at(-1)).toBe('limit=5');
      } finally {
        await new Promise<void>((r) => alone.close(() => r()));
      }
    });

    it('leaves other methods, bodies, schemes and credentials to Express without a look', async () => {
      passedOn.length = 0;
      await request(base)
        .head('/api/v1/me')
        .set(...bearer(key.token));
      await request(base)
        .post('/api/v1/me')
        .set(...bearer(key.token));
      await request(base)
        .get('/api/v1/me')
        .set(...bearer(key.token))
        .send({ a: 1 });
      await request(base).get('/api/v1/me').set('Authorization', `bearer ${key.token}`);
      await request(base).get('/api/v1/me').set('Cookie', 'fxf_session=abc');
      await request(base)
        .get('/api/v1/me')
        .set(...bearer('ut_abc'));
      await request(base)
        .get('/images/x.png')
        .set(...bearer(key.token));
      expect(passedOn).toEqual([
        'untouched HEAD /api/v1/me',
        'untouched POST /api/v1/me',
        'untouched GET /api/v1/me',
        'untouched GET /api/v1/me',
        'untouched GET /api/v1/me',
        'untouched GET /api/v1/me',
        'untouched GET /images/x.png',
      ]);
    });

    it('passes on an unknown, revoked or banned key and one without the read scope, counting none', async () => {
      const revoked = await makeKey(t);
      await t.app.get(ApiKeysService).revoke(revoked.user.id, revoked.keyId);
      const banned = await makeKey(t);
      await t.app.get(UsersService).ban(banned.user.id, 'test', { ip: null, userAgent: null } as never);
      const owner = await makeUser(t);
      const uploadOnly = await t.app
        .get(ApiKeysService)
        .create(owner.id, 'upload only', undefined, { scopes: ['upload'] });
      passedOn.length = 0;
      for (const token of [`fxf_${'x'.repeat(40)}`, revoked.token, banned.token, uploadOnly.token]) {
        expect(
          (
            await request(base)
              .get('/api/v1/me')
              .set(...bearer(token))
          ).status,
        ).toBe(599);
      }
      expect(passedOn).toHaveLength(4);
      const live = await t.app.get(RequestCounterService).live([uploadOnly.key.id]);
      expect(live.get(uploadOnly.key.id)?.count ?? 0).toBe(0);
      // And Express answers them as always.
      expectError(await get('/api/v1/me', 'Bearer', revoked.token), 401, 'unauthorized');
      expect((await get('/api/v1/me', 'Bearer', banned.token)).status).toBe(403);
      expectError(await get('/api/v1/me', 'Bearer', uploadOnly.token), 403, 'forbidden');
    });
  });
});

describe('The read fast path under the management rate limit (e2e)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ env: { RATE_LIMIT_MANAGEMENT_PER_MINUTE: '3' } });
  });
  afterAll(() => t.close());

  it('refuses the fourth read of a minute with the 429 Express gives, and counts it', async () => {
    const fastKey = await makeKey(t);
    const slowKey = await makeKey(t);
    const refusals: Res[] = [];
    for (const [scheme, k] of [
      ['Bearer', fastKey],
      ['bearer', slowKey],
    ] as const) {
      for (let i = 0; i < 3; i++) {
        await t.http.get('/api/v1/me').set('Authorization', `${scheme} ${k.token}`).expect(200);
      }
      refusals.push(
        (await t.http.get('/api/v1/uploads').set('Authorization', `${scheme} ${k.token}`)) as unknown as Res,
      );
    }
    const [fast, slow] = refusals;
    expectError(fast, 429, 'rate_limit');
    expect(fast.body).toEqual(slow.body);
    expect(fast.headers['retry-after']).toMatch(/^\d+$/);
    expect(fast.headers['x-ratelimit-remaining']).toBe('0');
    expect(fast.headers['x-ratelimit-limit']).toBe('3');
    expect(comparable(fast, ['x-request-id', 'retry-after'])).toEqual(
      comparable(slow, ['x-request-id', 'retry-after']),
    );
    const live = await t.app.get(RequestCounterService).live([fastKey.keyId, slowKey.keyId]);
    expect([live.get(fastKey.keyId)?.count, live.get(slowKey.keyId)?.count]).toEqual([4, 4]);
  });
});

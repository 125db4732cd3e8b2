import type { INestApplication } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { png } from '../fixtures/sample-images';
import { bearer, login, makeKey, makeUser, type TestSession } from '../setup/factories';
import { readInfra } from '../setup/infra';
import { capturedLogLines, logOutsideRequestsToNextApp } from '../setup/log-lines';
import { appRoutes, type AppRoute } from '../setup/routes';
import { TcpProxy } from '../setup/tcp-proxy';
import { createTestApp, type TestApp } from '../setup/test-app';
import { waitFor } from '../setup/wait';

/** The API's routes: the website's pages and assets never touch the database. */
const apiRoutes = (app: INestApplication): AppRoute[] => appRoutes(app).filter((r) => r.documented);

type Caller = 'key' | 'uploadToken' | 'session' | 'anonymous';

const OPENAPI = JSON.parse(readFileSync(join(__dirname, '..', '..', 'openapi.json'), 'utf8'));

/** What the document says of one status of a route's operation (a shared response followed): codes and headers. */
function documented(route: AppRoute, status: number): { codes: string[]; headers: string[] } {
  let response = OPENAPI.paths[route.path]?.[route.method]?.responses?.[status];
  if (response?.$ref) {
    response = OPENAPI.components.responses[response.$ref.split('/').pop()];
  }
  return {
    codes: [...String(response?.description ?? '').matchAll(/`([a-z_]+)`/g)].map((m) => m[1]),
    headers: Object.keys(response?.headers ?? {}),
  };
}

function concretePath(path: string): string {
  return path
    .replace('{filename}', 'FIXITFY-aaaaaaaaaaaa.png')
    .replace('{token}', '0'.repeat(64))
    .replace('{id}', randomUUID());
}

/** What every route answers for one caller: "status code" → how many times. */
async function tally(
  t: TestApp,
  headers: Record<string, string>,
  problems: string[],
): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const route of apiRoutes(t.app)) {
    const path = concretePath(route.path);
    let req = (t.http as unknown as Record<string, (p: string) => any>)[route.method](path);
    for (const [name, value] of Object.entries(headers)) {
      req = req.set(name, value);
    }
    if (route.path === '/api/v1/upload') {
      req = req.attach('file', await png(9001), 'a.png');
    } else if (route.path.startsWith('/api/v1/auth/')) {
      req = req.send({ email: 'someone@example.com', password: 'a long password' });
    }
    const res = await req;
    const outcome = `${res.status} ${route.method === 'head' ? '(head)' : (res.body?.code ?? 'ok')}`;
    counts[outcome] = (counts[outcome] ?? 0) + 1;
    const dependencyCode = res.status === 500 || res.status === 503;
    if (dependencyCode && res.headers['retry-after'] === undefined) {
      problems.push(`${route.method} ${path}: ${res.status} without Retry-After`);
    }
    if (res.status === 500 && route.method !== 'head' && res.body?.code !== 'db_failed') {
      problems.push(`${route.method} ${path}: 500 ${res.body?.code}`);
    }
    // The OpenAPI document (the committed file, which openapi-file.e2e-spec holds equal to the code's) says so.
    if (dependencyCode) {
      const doc = documented(route, res.status);
      const code = res.status === 500 ? 'db_failed' : 'unavailable';
      if (!doc.codes.includes(code) || !doc.headers.includes('Retry-After')) {
        problems.push(`${route.method} ${route.path}: ${res.status} ${code} with Retry-After not documented`);
      }
    }
  }
  return counts;
}

describe('PostgreSQL unreachable: honest answers, never "your key is invalid" (e2e)', () => {
  let t: TestApp;
  let proxy: TcpProxy;
  const callers: Partial<Record<Caller, Record<string, string>>> = {};
  const log = capturedLogLines();

  beforeAll(async () => {
    proxy = await TcpProxy.inFrontOf(readInfra().adminUrl);
    logOutsideRequestsToNextApp();
    t = await createTestApp({
      appDatabaseUrl: (url) => proxy.via(url),
      env: {
        ...log.env,
        RATE_LIMIT_UPLOADS_PER_MINUTE: '100000',
        RATE_LIMIT_MANAGEMENT_PER_MINUTE: '100000',
      },
      overrides: log.overrides,
    });
    const admin = await makeUser(t, 'admin');
    const key = await makeKey(t, admin);
    const session: TestSession = await login(t, admin);
    const ut = await t.http
      .post('/api/v1/upload-token')
      .set(...bearer(key.token))
      .send({})
      .expect(200);
    callers.key = { Authorization: `Bearer ${key.token}` };
    callers.uploadToken = { Authorization: `Bearer ${ut.body.token}` };
    callers.session = { Cookie: session.cookie, 'X-CSRF-Token': session.csrf };
    callers.anonymous = {};
  });
  afterAll(async () => {
    await proxy.setMode('pass');
    await t.close();
    await proxy.close();
  });

  it.each(['refuse', 'reset'] as const)(
    'should answer db_failed with Retry-After on every route, never 401/403, with the database %s-ing connections',
    async (mode) => {
      await proxy.setMode(mode);
      const problems: string[] = [];
      const seen: Record<string, Record<string, number>> = {};
      for (const caller of ['key', 'uploadToken', 'session', 'anonymous'] as const) {
        seen[caller] = await tally(t, callers[caller]!, problems);
      }
      await proxy.setMode('pass');
      // Anonymous calls to protected routes are 401 with the database up or down: no credential was sent.
      const credentialVerdicts = Object.entries(seen)
        .filter(([caller]) => caller !== 'anonymous')
        .flatMap(([caller, counts]) =>
          Object.entries(counts)
            .filter(([outcome]) => /^40[13] /.test(outcome))
            .map(([outcome, n]) => `${caller}: ${n} × ${outcome}`),
        );
      expect(credentialVerdicts).toEqual([]);
      expect(problems).toEqual([]);
      // Only what needs no database answers otherwise: /healthz (200), GET on a delete link (405), /readyz (503).
      // A HEAD answer has no body to name its code: HEAD /images and HEAD /api/v1/uploads/by-hash are "500 (head)".
      const heads = apiRoutes(t.app).filter((r) => r.method === 'head').length;
      for (const caller of ['key', 'uploadToken', 'session'] as const) {
        expect(seen[caller]).toEqual({
          '200 ok': 1,
          '405 method_not_allowed': 1,
          '503 unavailable': 1,
          '500 (head)': heads,
          '500 db_failed': apiRoutes(t.app).length - 3 - heads,
        });
      }
    },
  );

  it("should write the driver's warnings about dropped connections as lines of the JSON log, not console lines", async () => {
    // Pooled connections open, then the database goes: knex warns once per connection it loses.
    await Promise.all([1, 2, 3].map(() => t.http.get('/api/v1/me').set(callers.key!).expect(200)));
    const printed: unknown[][] = [];
    const consoleLog = jest.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
      printed.push(args);
    });
    const before = log.lines.length;
    try {
      await proxy.setMode('refuse');
      await t.http.get('/api/v1/me').set(callers.key!).expect(500);
      await waitFor('a warning of the database logger', () =>
        log.lines.slice(before).some((l) => l.context === 'Database'),
      );
    } finally {
      consoleLog.mockRestore();
      await proxy.setMode('pass');
    }
    expect(printed.map((args) => args.join(' ')).filter((line) => /Connection Error/.test(line))).toEqual([]);
    const warnings = log.lines.slice(before).filter((l) => l.context === 'Database');
    expect(warnings[0]).toMatchObject({ level: 40, msg: expect.stringMatching(/^Connection Error: /) });
    // Back: the pool makes new connections.
    await t.http.get('/api/v1/me').set(callers.key!).expect(200);
  });

  it('should count N valid-key uploads during an outage as db_failed, then accept the key again once it is back', async () => {
    const N = 20;
    await proxy.setMode('refuse');
    const during: Record<string, number> = {};
    for (let i = 0; i < N; i++) {
      const res = await t.http
        .post('/api/v1/upload')
        .set('Authorization', callers.key!.Authorization)
        .attach('file', await png(9100 + i), 'a.png');
      during[`${res.status} ${res.body.code}`] = (during[`${res.status} ${res.body.code}`] ?? 0) + 1;
      expect(res.headers['retry-after']).toBe('5');
      expect(JSON.stringify(res.body)).not.toMatch(/ECONNREFUSED|127\.0\.0\.1|select|from/i);
    }
    await proxy.setMode('pass');
    expect(during).toEqual({ [`500 db_failed`]: N });
    const after = await t.http
      .post('/api/v1/upload')
      .set('Authorization', callers.key!.Authorization)
      .attach('file', await png(9200), 'a.png');
    expect(after.status).toBe(200);
    expect(after.body.ok).toBe(true);
    // A really wrong key is still 401, with the database up.
    const wrong = await t.http.get('/api/v1/me').set(...bearer(`fxf_${'0'.repeat(64)}`));
    expect(wrong.status).toBe(401);
  });
});

describe('Redis unreachable: every route still answers the envelope (e2e)', () => {
  it('should answer 503 unavailable with Retry-After (never internal) on limited routes, and serve the rest', async () => {
    const proxy = await TcpProxy.inFrontOf(readInfra().redisUrl);
    const t = await createTestApp({ env: { REDIS_URL: proxy.via(readInfra().redisUrl) } });
    try {
      const user = await makeUser(t);
      const key = await makeKey(t, user);
      const session = await login(t, user);
      await proxy.setMode('refuse');
      const answers = [
        await t.http.get('/api/v1/me').set(...bearer(key.token)),
        await t.http
          .post('/api/v1/upload')
          .set(...bearer(key.token))
          .attach('file', await png(9300), 'a.png'),
        await t.http.get('/api/v1/keys').set('Cookie', session.cookie),
        await t.http.post('/api/v1/auth/login').send({ email: user.email, password: user.password }),
        await t.http.get('/readyz'),
      ];
      const outcomes = answers.map((r) => `${r.status} ${r.body.code ?? 'ok'}`);
      expect(outcomes).toEqual(['503 unavailable', '503 unavailable', '200 ok', '200 ok', '503 unavailable']);
      for (const r of answers.filter((a) => a.status === 503)) {
        expect(r.headers['retry-after']).toBeDefined();
        expect(r.body).toEqual({ ok: false, code: 'unavailable', error: expect.any(String) });
      }
    } finally {
      await proxy.setMode('pass');
      // Back to normal before shutting down (closing while the queue's connections reconnect can stall).
      await waitFor('Redis back', async () => (await t.http.get('/readyz')).status === 200);
      await t.close();
      await proxy.close();
    }
  });

  it('should serve again within seconds once a Redis path that went silent (no reset) is back', async () => {
    const proxy = await TcpProxy.inFrontOf(readInfra().redisUrl);
    const log = capturedLogLines();
    logOutsideRequestsToNextApp();
    const t = await createTestApp({
      env: { ...log.env, REDIS_URL: proxy.via(readInfra().redisUrl) },
      overrides: log.overrides,
    });
    try {
      const user = await makeUser(t);
      const key = await makeKey(t, user);
      await t.http
        .get('/api/v1/me')
        .set(...bearer(key.token))
        .expect(200);
      // The open connections stay open and carry nothing, as when a Redis host is lost without a reset.
      await proxy.setMode('silence');
      const during = await t.http.get('/api/v1/me').set(...bearer(key.token));
      expect(during.status).toBe(503);
      expect(during.body).toEqual({ ok: false, code: 'unavailable', error: expect.any(String) });
      await proxy.setMode('pass');
      // ioredis alone would keep writing into the dead connection until TCP gave up (about 15 minutes).
      await waitFor(
        'the key served again',
        async () => (await t.http.get('/api/v1/me').set(...bearer(key.token))).status === 200,
        15_000,
      );
      expect(log.lines.filter((l) => l.context === 'Redis')).toEqual([
        expect.objectContaining({ level: 40, msg: expect.stringMatching(/^Redis sent nothing for \d+ ms/) }),
      ]);
    } finally {
      // A worker's blocking connection may still be in the dead path (BullMQ remakes it once its wait is over): cut
      // it, so the close is quick.
      await proxy.setMode('refuse');
      await proxy.setMode('pass');
      await waitFor('Redis back', async () => (await t.http.get('/readyz')).status === 200);
      await t.close();
      await proxy.close();
    }
  }, 60_000);
});

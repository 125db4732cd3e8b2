import { randomUUID } from 'node:crypto';
import { Client } from 'pg';
import { appRoutes, type AppRoute } from '../setup/routes';
import { bearer, login, makeKey, makeUser, type TestSession } from '../setup/factories';
import { createTestApp, type TestApp } from '../setup/test-app';

type Level = 'public' | 'upload' | 'key' | 'user' | 'session' | 'admin';
type Caller =
  | 'anonymous'
  | 'userSession'
  | 'userKey'
  | 'uploadToken'
  | 'bannedKey'
  | 'adminSession'
  | 'adminKey';

/**
 * Every route of the app and who may call it. The list is compared with the routes Nest registered, so a new route
 * without an entry here fails this test.
 */
const ROUTES: Record<string, Level> = {
  'post /api/v1/auth/register': 'public',
  'post /api/v1/auth/login': 'public',
  'post /api/v1/auth/logout': 'session',
  'get /api/v1/auth/session': 'session',
  'post /api/v1/auth/password': 'session',
  'post /api/v1/keys': 'session',
  'get /api/v1/keys': 'session',
  'delete /api/v1/keys/{id}': 'session',
  'post /api/v1/upload-token': 'key',
  'post /api/v1/upload': 'upload',
  'get /api/v1/uploads': 'user',
  'get /api/v1/uploads/{filename}': 'user',
  'head /api/v1/uploads/by-hash/{sha256}': 'user',
  'get /api/v1/uploads/by-hash/{sha256}': 'user',
  'patch /api/v1/uploads/{filename}': 'user',
  'delete /api/v1/uploads/{filename}': 'user',
  'get /api/v1/me': 'user',
  'get /images/{filename}': 'public',
  'head /images/{filename}': 'public',
  'delete /api/delete/{token}': 'public',
  'post /api/delete/{token}': 'public',
  'get /api/delete/{token}': 'public',
  'get /api/v1/webhooks/secret': 'session',
  'post /api/v1/webhooks/secret/rotate': 'session',
  'post /api/v1/webhooks': 'session',
  'get /api/v1/webhooks': 'session',
  'patch /api/v1/webhooks/{id}': 'session',
  'delete /api/v1/webhooks/{id}': 'session',
  'get /api/v1/webhooks/{id}/deliveries': 'session',
  'post /api/v1/webhooks/{id}/test': 'session',
  'post /api/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver': 'session',
  'get /api/v1/clients/sharex': 'session',
  // A HEAD would make a key nobody receives: 405 to every caller.
  'head /api/v1/clients/sharex': 'public',
  // The snippet holds no key.
  'get /api/v1/clients/curl': 'user',
  'get /api/v1/admin/users': 'admin',
  'post /api/v1/admin/users/{id}/ban': 'admin',
  'post /api/v1/admin/users/{id}/unban': 'admin',
  'patch /api/v1/admin/users/{id}': 'admin',
  'get /api/v1/admin/uploads': 'admin',
  'delete /api/v1/admin/uploads/{filename}': 'admin',
  'get /api/v1/admin/audit': 'admin',
  'get /healthz': 'public',
  'get /readyz': 'public',
  // The website (src/modules/web): pages with a history fallback, and their assets.
  'get /': 'public',
  'get /login': 'public',
  'get /register': 'public',
  'get /dashboard': 'public',
  'get /dashboard/{path}': 'public',
  'get /admin': 'public',
  'get /admin/{path}': 'public',
  'get /assets/{path}': 'public',
  // Its own METRICS_TOKEN check (404 when unset), not the AuthGuard's credentials.
  'get /metrics': 'public',
};

/** What a caller gets from a route of a level: 'pass' = past authentication and authorisation (any other status). */
function expected(level: Level, caller: Caller): 'pass' | 401 | 'banned' | 'forbidden' {
  if (level === 'public') {
    return 'pass';
  }
  switch (caller) {
    case 'anonymous':
      return 401;
    case 'bannedKey':
      return 'banned';
    case 'uploadToken':
      return level === 'upload' ? 'pass' : 'forbidden';
    case 'userKey':
      return ['upload', 'key', 'user'].includes(level) ? 'pass' : 'forbidden';
    case 'adminKey':
      return ['upload', 'key', 'user', 'admin'].includes(level) ? 'pass' : 'forbidden';
    case 'userSession':
      return ['upload', 'user', 'session'].includes(level) ? 'pass' : 'forbidden';
    case 'adminSession':
      return level === 'key' ? 'forbidden' : 'pass';
  }
}

function concretePath(path: string): string {
  return path
    .replace('{filename}', 'FIXITFY-aaaaaaaaaaaa.png')
    .replace('{token}', '0'.repeat(64))
    .replace('{id}', randomUUID())
    .replace('{path}', 'x');
}

describe('Authorization matrix (e2e)', () => {
  let t: TestApp;
  let routes: AppRoute[];
  const headers: Partial<Record<Caller, Record<string, string>>> = {};

  beforeAll(async () => {
    t = await createTestApp({
      env: {
        RATE_LIMIT_UPLOADS_PER_MINUTE: '100000',
        RATE_LIMIT_UPLOADS_PER_DAY: '100000',
        RATE_LIMIT_MANAGEMENT_PER_MINUTE: '100000',
      },
    });
    routes = appRoutes(t.app);
    const sessionHeaders = (s: TestSession) => ({ Cookie: s.cookie, 'X-CSRF-Token': s.csrf });
    const user = await makeUser(t);
    const admin = await makeUser(t, 'admin');
    const userKey = await makeKey(t, user);
    const banned = await makeKey(t);
    headers.anonymous = {};
    headers.userSession = sessionHeaders(await login(t, user));
    headers.adminSession = sessionHeaders(await login(t, admin));
    headers.userKey = { Authorization: `Bearer ${userKey.token}` };
    headers.adminKey = { Authorization: `Bearer ${(await makeKey(t, admin)).token}` };
    headers.bannedKey = { Authorization: `Bearer ${banned.token}` };
    const ut = await t.http
      .post('/api/v1/upload-token')
      .set(...bearer(userKey.token))
      .send({ ttl_seconds: 600 })
      .expect(200);
    headers.uploadToken = { Authorization: `Bearer ${ut.body.token}` };
    const c = new Client({ connectionString: t.databaseUrl });
    await c.connect();
    await c.query("update users set banned_at = now(), ban_reason = 'matrix' where id = $1", [
      banned.user.id,
    ]);
    await c.end();
  });
  afterAll(() => t.close());

  it('should have an expected outcome for every route the app serves, and no stale entries', () => {
    const served = routes.map((r) => `${r.method} ${r.path}`).sort();
    expect(served).toEqual(Object.keys(ROUTES).sort());
  });

  const callers: Caller[] = [
    'anonymous',
    'userSession',
    'userKey',
    'uploadToken',
    'bannedKey',
    'adminSession',
    'adminKey',
  ];

  it.each(callers)('should answer %s on every route as the matrix says', async (caller) => {
    const mismatches: string[] = [];
    for (const route of routes) {
      const key = `${route.method} ${route.path}`;
      const want = expected(ROUTES[key], caller);
      // Logout would end the session the other rows use; its row is checked with a throwaway session below.
      if (key === 'post /api/v1/auth/logout' && caller.endsWith('Session')) {
        continue;
      }
      const req = (t.http as unknown as Record<string, (p: string) => any>)[route.method](
        concretePath(route.path),
      );
      for (const [name, value] of Object.entries(headers[caller] ?? {})) {
        req.set(name, value);
      }
      const res = await req;
      // A HEAD answer has no body: its 403's code is read from the same request as GET.
      if (route.method === 'head' && res.status === 403) {
        const again = t.http.get(concretePath(route.path));
        for (const [name, value] of Object.entries(headers[caller] ?? {})) {
          again.set(name, value);
        }
        res.body = (await again).body;
      }
      const got =
        res.status === 401
          ? 401
          : res.status === 403 && res.body?.code === 'banned'
            ? 'banned'
            : res.status === 403 && res.body?.code === 'forbidden'
              ? 'forbidden'
              : 'pass';
      if (got !== want) {
        mismatches.push(`${key}: expected ${want}, got ${res.status} ${res.body?.code ?? ''}`);
      }
    }
    expect(mismatches).toEqual([]);
  });

  it('should let a session log out (the row skipped above)', async () => {
    const s = await login(t, await makeUser(t));
    await t.http.post('/api/v1/auth/logout').set('Cookie', s.cookie).set('X-CSRF-Token', s.csrf).expect(200);
    const anon = await t.http.post('/api/v1/auth/logout');
    expect(anon.status).toBe(401);
  });
});

import { bearer, login, makeKey, makeUser } from '../setup/factories';
import { capturedLogLines } from '../setup/log-lines';
import { createTestApp, type TestApp } from '../setup/test-app';

/** Issue 10, item 7: what an operator reads in the request log, captured from the real logger. */
describe('Request log lines (e2e)', () => {
  let t: TestApp;
  const { lines, env, overrides } = capturedLogLines();
  /** The request line of the request with this X-Request-Id (pino-http writes it when the answer finished). */
  const lineOf = async (id: string): Promise<Record<string, any>> => {
    for (let i = 0; i < 50; i++) {
      const found = lines.find((l) => l.req?.id === id && l.res);
      if (found) {
        return found;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`no request line for ${id}`);
  };

  beforeAll(async () => {
    t = await createTestApp({ env, overrides });
  });
  afterAll(() => t.close());

  it('should carry the user id and key prefix of a key, and the code of an error answer', async () => {
    const key = await makeKey(t);
    await t.http
      .post('/api/v1/upload')
      .set(...bearer(key.token))
      .set('X-Request-Id', 'log-key-1')
      .attach('file', Buffer.from('not an image at all'), 'x.png')
      .expect(415);
    const line = await lineOf('log-key-1');
    expect(line.principal).toEqual({ user_id: key.user.id, via: 'key', key_prefix: expect.any(String) });
    expect(key.token.startsWith(line.principal.key_prefix)).toBe(true);
    expect(line.code).toBe('unsupported_type');
    expect(line.req).toEqual({
      id: 'log-key-1',
      method: 'POST',
      url: '/api/v1/upload',
      ip: expect.any(String),
    });
    expect(line.res).toEqual({ statusCode: 415 });
    // No headers (they hold credentials) and no `params` (a wildcard artefact of Nest's middleware route).
    expect(JSON.stringify(line)).not.toContain(key.token);
    expect(line.req.params).toBeUndefined();
    expect(line.req.headers).toBeUndefined();
  });

  it('should give /docs and its OpenAPI document a request id and a line, as every other answer', async () => {
    const doc = await t.http.get('/docs/openapi.json').set('X-Request-Id', 'log-docs-1').expect(200);
    expect(doc.headers['x-request-id']).toBe('log-docs-1');
    const line = await lineOf('log-docs-1');
    expect(line.req).toMatchObject({ id: 'log-docs-1', method: 'GET', url: '/docs/openapi.json' });
    expect(line.res).toEqual({ statusCode: 200 });
    const page = await t.http.get('/docs').expect((r) => expect([200, 301]).toContain(r.status));
    expect(page.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('should carry the user of a session, no code on success, and no principal when nobody signed in', async () => {
    const user = await makeUser(t);
    const session = await login(t, user);
    await t.http
      .get('/api/v1/me')
      .set('Cookie', session.cookie)
      .set('X-Request-Id', 'log-session-1')
      .expect(200);
    await t.http.get('/api/v1/me').set('X-Request-Id', 'log-anon-1').expect(401);
    const ok = await lineOf('log-session-1');
    expect(ok.principal).toEqual({ user_id: user.id, via: 'session' });
    expect(ok.code).toBeUndefined();
    expect(ok.res).toEqual({ statusCode: 200 });
    const anon = await lineOf('log-anon-1');
    expect(anon.principal).toBeUndefined();
    expect(anon.code).toBe('unauthorized');
  });

  it('should keep a delete link token out of the log', async () => {
    const token = 'dl_' + 'a'.repeat(40);
    await t.http.delete(`/api/delete/${token}`).set('X-Request-Id', 'log-delete-1');
    const line = await lineOf('log-delete-1');
    expect(line.req.url).toBe('/api/delete/[redacted]');
    expect(JSON.stringify(line)).not.toContain(token);
    expect(line.code).toEqual(expect.any(String));
  });
});

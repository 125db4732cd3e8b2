import { login, makeUser } from '../setup/factories';
import { createTestApp, type TestApp } from '../setup/test-app';

describe('Error envelope (e2e)', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());

  it('should answer an unknown route with 404 not_found in the envelope', async () => {
    const res = await t.http.get('/no/such/route');
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ ok: false, code: 'not_found', error: expect.any(String) });
  });

  it('should answer malformed JSON with 400 bad_request and no parser internals', async () => {
    const res = await t.http
      .post('/api/v1/auth/login')
      .set('Content-Type', 'application/json')
      .send('{"email": ');
    expect(res.status).toBe(400);
    expect(res.body).toEqual({
      ok: false,
      code: 'bad_request',
      error: 'The request body is not valid JSON.',
    });
  });

  it('should answer a too-large JSON body with 413 too_large', async () => {
    const res = await t.http
      .post('/api/v1/auth/login')
      .set('Content-Type', 'application/json')
      .send(JSON.stringify({ email: 'a@b.c', password: 'x'.repeat(200_000) }));
    expect(res.status).toBe(413);
    expect(res.body.code).toBe('too_large');
  });

  it('should refuse unknown body fields with 400 bad_request', async () => {
    const s = await login(t, await makeUser(t));
    const res = await t.http
      .post('/api/v1/keys')
      .set('Cookie', s.cookie)
      .set('X-CSRF-Token', s.csrf)
      .send({ label: 'x', admin: true });
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('bad_request');
  });

  it.each([
    ['GET', '/api/v1/upload', 'POST'],
    ['DELETE', '/api/v1/me', 'GET, HEAD'],
    ['PUT', '/api/v1/uploads/FIXITFY-abcdefghijkl.png', 'DELETE, GET, HEAD, PATCH'],
    ['PUT', '/api/delete/0123456789abcdef', 'DELETE, POST'],
    ['POST', '/images/FIXITFY-abcdefghijkl.png', 'GET, HEAD'],
    ['DELETE', '/dashboard/api-keys', 'GET, HEAD'],
  ])(
    'should answer %s %s, a method the resource does not take, with 405 method_not_allowed and Allow: %s',
    async (method, path, allow) => {
      const res = await t.http[method.toLowerCase() as 'get' | 'put' | 'post' | 'delete'](path);
      expect({ status: res.status, body: res.body as unknown, allow: res.headers.allow }).toEqual({
        status: 405,
        body: { ok: false, code: 'method_not_allowed', error: `This resource takes ${allow}.` },
        allow,
      });
      expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    },
  );

  it('should keep 404 not_found for a path no route takes, whatever the method', async () => {
    for (const method of ['get', 'post', 'put', 'delete'] as const) {
      const res = await t.http[method]('/api/v1/no-such-thing');
      expect({ status: res.status, body: res.body as unknown }).toEqual({
        status: 404,
        body: { ok: false, code: 'not_found', error: 'No such resource.' },
      });
    }
  });

  it('should carry X-Request-Id on every answer, echoing a sane incoming one', async () => {
    const res = await t.http.get('/healthz').set('X-Request-Id', 'abc-123');
    expect(res.headers['x-request-id']).toBe('abc-123');
    const generated = await t.http.get('/nope');
    expect(generated.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('should report readiness of database, Redis and storage', async () => {
    const res = await t.http.get('/readyz').expect(200);
    expect(res.body).toEqual({
      ok: true,
      checks: { database: true, redis: true, storage: true, moderation: true },
    });
  });
});

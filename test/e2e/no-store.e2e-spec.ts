import { png } from '../fixtures/sample-images';
import { bearer, login, makeKey, makeUser, type TestKey, type TestSession } from '../setup/factories';
import { createTestApp, type TestApp } from '../setup/test-app';

/** Answers that carry a secret tell every cache to keep no copy; other answers keep their caching as before. */
describe('Cache-Control: no-store on answers that carry a secret (e2e)', () => {
  let t: TestApp;
  let s: TestSession;
  let key: TestKey;

  beforeAll(async () => {
    t = await createTestApp();
    const user = await makeUser(t);
    s = await login(t, user);
    key = await makeKey(t, user);
  });
  afterAll(() => t.close());

  const session = (method: 'get' | 'post', path: string) =>
    t.http[method](path).set('Cookie', s.cookie).set('X-CSRF-Token', s.csrf);

  it.each([
    ['a new API key (its token)', () => session('post', '/api/v1/keys').send({ label: 'ci' }), 201],
    ['a new upload token', () => t.http.post('/api/v1/upload-token').set(...bearer(key.token)), 200],
    ['the webhook signing secret', () => session('get', '/api/v1/webhooks/secret'), 200],
    ['a rotated webhook signing secret', () => session('post', '/api/v1/webhooks/secret/rotate'), 200],
    ['the session (its CSRF token)', () => session('get', '/api/v1/auth/session'), 200],
    ['the ShareX file (a key in it)', () => session('get', '/api/v1/clients/sharex'), 200],
    [
      'an upload (its delete link)',
      async () =>
        t.http
          .post('/api/v1/upload')
          .set(...bearer(key.token))
          .attach('file', await png(4242), 'a.png'),
      200,
    ],
  ])('should send no-store with %s', async (_what, send, status) => {
    const res = await send();
    expect(res.status).toBe(status);
    expect(res.headers['cache-control']).toBe('no-store');
  });

  it('should leave an answer without a secret as it was', async () => {
    const res = await t.http.get('/api/v1/keys').set('Cookie', s.cookie).expect(200);
    expect(res.headers['cache-control']).toBeUndefined();
  });
});

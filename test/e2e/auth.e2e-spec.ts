import { createTestApp, type TestApp } from '../setup/test-app';
import { bearer, login, makeKey, makeUser } from '../setup/factories';

describe('Auth and API keys (e2e)', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());

  describe('register / login / session / logout', () => {
    it('should register, set an httpOnly SameSite=Lax cookie and answer 201', async () => {
      const res = await t.http
        .post('/api/v1/auth/register')
        .send({ email: 'New@Example.com', password: 'a long password' })
        .expect(201);
      expect(res.body).toEqual({
        ok: true,
        user: { id: expect.any(String), email: 'new@example.com', role: 'user' },
      });
      const cookie = String(res.headers['set-cookie']);
      expect(cookie).toMatch(/fxf_session=[0-9a-f]{64}/);
      expect(cookie).toMatch(/HttpOnly/);
      expect(cookie).toMatch(/SameSite=Lax/);
    });

    it('should answer 409 conflict for a taken email', async () => {
      const user = await makeUser(t);
      const res = await t.http
        .post('/api/v1/auth/register')
        .send({ email: user.email, password: 'another password' });
      expect(res.status).toBe(409);
      expect(res.body).toEqual({ ok: false, code: 'conflict', error: expect.any(String) });
    });

    it('should answer 400 with details for a short password and a bad email', async () => {
      const res = await t.http.post('/api/v1/auth/register').send({ email: 'nope', password: 'short' });
      expect(res.status).toBe(400);
      expect(res.body.code).toBe('bad_request');
      expect(res.body.details.map((d: { field: string }) => d.field).sort()).toEqual(['email', 'password']);
    });

    it('should answer the same 401 for an unknown email and a wrong password', async () => {
      const user = await makeUser(t);
      const unknown = await t.http
        .post('/api/v1/auth/login')
        .send({ email: 'nobody@example.com', password: 'whatever12' });
      const wrong = await t.http
        .post('/api/v1/auth/login')
        .send({ email: user.email, password: 'wrong password' });
      expect(unknown.status).toBe(401);
      expect(wrong.status).toBe(401);
      expect(unknown.body).toEqual(wrong.body);
      expect(wrong.body.code).toBe('unauthorized');
    });

    it('should return the user and a CSRF token from /session, and 401 without a cookie', async () => {
      const user = await makeUser(t);
      const s = await login(t, user);
      const res = await t.http.get('/api/v1/auth/session').set('Cookie', s.cookie).expect(200);
      expect(res.body).toEqual({
        ok: true,
        user: { id: user.id, email: user.email, role: 'user' },
        csrf_token: s.csrf,
      });
      const anon = await t.http.get('/api/v1/auth/session');
      expect(anon.status).toBe(401);
      expect(anon.body.code).toBe('unauthorized');
    });

    it('should end the session at once on logout', async () => {
      const s = await login(t, await makeUser(t));
      await t.http
        .post('/api/v1/auth/logout')
        .set('Cookie', s.cookie)
        .set('X-CSRF-Token', s.csrf)
        .expect(200, { ok: true });
      const after = await t.http.get('/api/v1/auth/session').set('Cookie', s.cookie);
      expect(after.status).toBe(401);
    });

    it('should refuse a state change with the cookie but no CSRF token (403 forbidden)', async () => {
      const s = await login(t, await makeUser(t));
      const res = await t.http.post('/api/v1/keys').set('Cookie', s.cookie).send({ label: 'x' });
      expect(res.status).toBe(403);
      expect(res.body.code).toBe('forbidden');
      const wrong = await t.http
        .post('/api/v1/keys')
        .set('Cookie', s.cookie)
        .set('X-CSRF-Token', 'f'.repeat(64))
        .send({ label: 'x' });
      expect(wrong.status).toBe(403);
    });
  });

  describe('API keys', () => {
    it('should create a key shown once as fxf_ + 64 hex, and list it without token or hash', async () => {
      const s = await login(t, await makeUser(t));
      const created = await t.http
        .post('/api/v1/keys')
        .set('Cookie', s.cookie)
        .set('X-CSRF-Token', s.csrf)
        .send({ label: 'ci' })
        .expect(201);
      expect(created.body.token).toMatch(/^fxf_[0-9a-f]{64}$/);
      expect(created.body.key).toEqual({
        id: expect.any(String),
        prefix: created.body.token.slice(0, 8),
        label: 'ci',
        // Additive (API.md Part 3, scoped keys): a key made without scopes has all of them.
        scopes: ['upload', 'read', 'delete'],
        default_expires_in: null,
        request_count: 0,
        created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
        last_used_at: null,
        revoked_at: null,
      });
      const list = await t.http.get('/api/v1/keys').set('Cookie', s.cookie).expect(200);
      expect(list.body.keys).toHaveLength(1);
      expect(JSON.stringify(list.body)).not.toContain(created.body.token.slice(8));
      expect(Object.keys(list.body.keys[0]).sort()).toEqual(
        [
          'created_at',
          'id',
          'label',
          'last_used_at',
          'prefix',
          'request_count',
          'revoked_at',
          'scopes',
          'default_expires_in',
        ].sort(),
      );
    });

    it('should refuse an 11th active key with 409 conflict', async () => {
      const user = await makeUser(t);
      for (let i = 0; i < 10; i++) {
        await makeKey(t, user, `k${i}`);
      }
      const s = await login(t, user);
      const res = await t.http
        .post('/api/v1/keys')
        .set('Cookie', s.cookie)
        .set('X-CSRF-Token', s.csrf)
        .send({ label: 'eleven' });
      expect(res.status).toBe(409);
      expect(res.body.code).toBe('conflict');
    });

    it('should not let a key mint keys (403 forbidden)', async () => {
      const { token } = await makeKey(t);
      const res = await t.http
        .post('/api/v1/keys')
        .set(...bearer(token))
        .send({ label: 'x' });
      expect(res.status).toBe(403);
      expect(res.body.code).toBe('forbidden');
    });

    it('should revoke a key so that it answers 401 on the very next request', async () => {
      const key = await makeKey(t);
      await t.http
        .get('/api/v1/me')
        .set(...bearer(key.token))
        .expect(200);
      const s = await login(t, key.user);
      await t.http
        .delete(`/api/v1/keys/${key.keyId}`)
        .set('Cookie', s.cookie)
        .set('X-CSRF-Token', s.csrf)
        .expect(200, { ok: true, revoked: key.keyId });
      const res = await t.http.get('/api/v1/me').set(...bearer(key.token));
      expect(res.status).toBe(401);
      expect(res.body.code).toBe('unauthorized');
    });

    it("should answer 404 when revoking someone else's key or an unknown id", async () => {
      const other = await makeKey(t);
      const s = await login(t, await makeUser(t));
      for (const id of [other.keyId, '00000000-0000-0000-0000-000000000000', 'not-a-uuid']) {
        const res = await t.http
          .delete(`/api/v1/keys/${id}`)
          .set('Cookie', s.cookie)
          .set('X-CSRF-Token', s.csrf);
        expect(res.status).toBe(404);
        expect(res.body.code).toBe('not_found');
      }
      await t.http
        .get('/api/v1/me')
        .set(...bearer(other.token))
        .expect(200);
    });

    it('should count every authenticated request exactly in /me', async () => {
      const key = await makeKey(t);
      for (let i = 0; i < 4; i++) {
        await t.http
          .get('/api/v1/uploads')
          .set(...bearer(key.token))
          .expect(200);
      }
      const me = await t.http
        .get('/api/v1/me')
        .set(...bearer(key.token))
        .expect(200);
      expect(me.body.key.request_count).toBe(5);
    });
  });

  describe('bearer header', () => {
    it('should answer 401 unauthorized without a header, with a malformed one, and with an unknown key', async () => {
      const unknown = `fxf_${'0'.repeat(64)}`;
      for (const header of [undefined, 'Basic abc', 'Bearer', 'Bearer fxf_short', `Bearer ${unknown}`]) {
        const req = t.http.get('/api/v1/me');
        const res = await (header ? req.set('Authorization', header) : req);
        expect(res.status).toBe(401);
        expect(res.body).toEqual({ ok: false, code: 'unauthorized', error: expect.any(String) });
      }
    });

    it('should accept the scheme word in any case, but not a changed token case', async () => {
      const key = await makeKey(t);
      await t.http.get('/api/v1/me').set('Authorization', `bEaReR ${key.token}`).expect(200);
      const upper = await t.http.get('/api/v1/me').set('Authorization', `Bearer ${key.token.toUpperCase()}`);
      expect(upper.status).toBe(401);
    });
  });

  it('should refuse registration with 403 forbidden when REGISTRATION_OPEN=false', async () => {
    const closed = await createTestApp({ env: { REGISTRATION_OPEN: 'false' } });
    try {
      const res = await closed.http
        .post('/api/v1/auth/register')
        .send({ email: 'late@example.com', password: 'a long password' });
      expect(res.status).toBe(403);
      expect(res.body).toEqual({
        ok: false,
        code: 'forbidden',
        error: 'Registration is closed on this server.',
      });
    } finally {
      await closed.close();
    }
  });
});

import { NO_REQUEST } from '../../src/common/http/request-meta';
import { RedisService } from '../../src/common/redis/redis.module';
import { UsersService } from '../../src/modules/auth/users.service';
import { createTestApp, type TestApp } from '../setup/test-app';
import { bearer, login, makeKey, makeUser, type TestSession, type TestUser } from '../setup/factories';

const NEW_PASSWORD = 'a new and longer passphrase';

describe('Changing a password (e2e)', () => {
  let t: TestApp;
  let adminKey: string;

  beforeAll(async () => {
    t = await createTestApp();
    adminKey = (await makeKey(t, await makeUser(t, 'admin'))).token;
  });
  afterAll(() => t.close());

  const change = (s: TestSession, body: unknown) =>
    t.http
      .post('/api/v1/auth/password')
      .set('Cookie', s.cookie)
      .set('X-CSRF-Token', s.csrf)
      .send(body as object);

  const signIn = (user: TestUser, password: string) =>
    t.http.post('/api/v1/auth/login').send({ email: user.email, password });

  const auditOf = async (userId: string, action: string) =>
    (
      await t.http
        .get(`/api/v1/admin/audit?action=${action}&target=${userId}`)
        .set(...bearer(adminKey))
        .expect(200)
    ).body.entries as { metadata: Record<string, unknown>; actor: { id: string } | null }[];

  it('should end every other session at once, keep this one, and leave keys working', async () => {
    const user = await makeUser(t);
    const key = await makeKey(t, user);
    const here = await login(t, user);
    const elsewhere = await login(t, user);
    const third = await login(t, user);

    const res = await change(here, { current_password: user.password, new_password: NEW_PASSWORD });

    expect(res.status).toBe(200);
    expect(res.body).toEqual({ ok: true, sessions_ended: 2 });
    await t.http.get('/api/v1/auth/session').set('Cookie', here.cookie).expect(200);
    for (const other of [elsewhere, third]) {
      const gone = await t.http.get('/api/v1/auth/session').set('Cookie', other.cookie);
      expect(gone.status).toBe(401);
      expect(gone.body.code).toBe('unauthorized');
    }
    expect((await signIn(user, user.password)).status).toBe(401);
    expect((await signIn(user, NEW_PASSWORD)).status).toBe(200);
    await t.http
      .get('/api/v1/me')
      .set(...bearer(key.token))
      .expect(200);

    const entries = await auditOf(user.id, 'user.password_changed');
    expect(entries).toHaveLength(1);
    expect(entries[0].actor?.id).toBe(user.id);
    expect(entries[0].metadata).toEqual({ email: user.email, via: 'self', sessions_ended: 2 });
  });

  it('should refuse a wrong current password with 403 forbidden, change nothing, and record the attempt', async () => {
    const user = await makeUser(t);
    const here = await login(t, user);
    const other = await login(t, user);

    const res = await change(here, { current_password: 'not the password', new_password: NEW_PASSWORD });

    expect(res.status).toBe(403);
    expect(res.body).toEqual({ ok: false, code: 'forbidden', error: 'The current password is wrong.' });
    await t.http.get('/api/v1/auth/session').set('Cookie', other.cookie).expect(200);
    expect((await signIn(user, user.password)).status).toBe(200);
    expect((await signIn(user, NEW_PASSWORD)).status).toBe(401);
    expect(await auditOf(user.id, 'user.password_changed')).toHaveLength(0);
    const failed = await auditOf(user.id, 'user.password_change_failed');
    expect(failed).toHaveLength(1);
    expect(failed[0].metadata).toEqual({ email: user.email });
  });

  it('should answer 400 bad_request, naming the field, for a missing, short, long or unchanged password', async () => {
    const user = await makeUser(t);
    const s = await login(t, user);
    const cases: [unknown, string | null][] = [
      [{ new_password: NEW_PASSWORD }, 'current_password'],
      [{ current_password: user.password }, 'new_password'],
      [{ current_password: user.password, new_password: 'short' }, 'new_password'],
      [{ current_password: user.password, new_password: 'x'.repeat(201) }, 'new_password'],
      [{ current_password: user.password, new_password: 12345678901 }, 'new_password'],
      [{ current_password: 'x'.repeat(201), new_password: NEW_PASSWORD }, 'current_password'],
      [{ current_password: user.password, new_password: user.password }, null],
    ];
    for (const [body, field] of cases) {
      const res = await change(s, body);
      expect(res.status).toBe(400);
      expect(res.body.code).toBe('bad_request');
      if (field) {
        expect(res.body.details.map((d: { field: string }) => d.field)).toContain(field);
      } else {
        expect(res.body.error).toBe('The new password must differ from the current one.');
      }
    }
    expect((await signIn(user, user.password)).status).toBe(200);
  });

  it('should take only a session with its CSRF token: 401 without one, 403 with a key or without the header', async () => {
    const user = await makeUser(t);
    const key = await makeKey(t, user);
    const s = await login(t, user);
    const body = { current_password: user.password, new_password: NEW_PASSWORD };

    const anonymous = await t.http.post('/api/v1/auth/password').send(body);
    expect(anonymous.status).toBe(401);
    expect(anonymous.body.code).toBe('unauthorized');
    const withKey = await t.http
      .post('/api/v1/auth/password')
      .set(...bearer(key.token))
      .send(body);
    expect(withKey.status).toBe(403);
    expect(withKey.body.code).toBe('forbidden');
    const noCsrf = await t.http.post('/api/v1/auth/password').set('Cookie', s.cookie).send(body);
    expect(noCsrf.status).toBe(403);
    expect(noCsrf.body.code).toBe('forbidden');
    expect((await signIn(user, user.password)).status).toBe(200);
  });

  it('should let only one of two changes made at once win, never both', async () => {
    const user = await makeUser(t);
    const s = await login(t, user);
    const [a, b] = await Promise.all([
      change(s, { current_password: user.password, new_password: 'first new passphrase' }),
      change(s, { current_password: user.password, new_password: 'second new passphrase' }),
    ]);
    const statuses = [a.status, b.status].sort();
    expect(statuses[0]).toBe(200);
    // The loser checked the old password either before the winner committed (409) or after it (403).
    expect([403, 409]).toContain(statuses[1]);
    const works = await Promise.all(
      ['first new passphrase', 'second new passphrase'].map(async (p) => (await signIn(user, p)).status),
    );
    expect(works.sort()).toEqual([200, 401]);
    expect(await auditOf(user.id, 'user.password_changed')).toHaveLength(1);
  });

  it('should refuse with 409 conflict a change whose checked hash another change replaced meanwhile', async () => {
    // The race above ends in 409 or 403 depending on timing; this is its 409, made deterministic: the hash the
    // request checked the current password against is no longer the stored one.
    const user = await makeUser(t);
    const users = t.app.get(UsersService);
    const stale = (await users.findById(user.id))?.passwordHash;
    await users.resetPassword(user.email, 'changed by the operator');
    await expect(
      users.replacePassword(user.id, { newHash: 'x', expectedHash: stale, meta: NO_REQUEST, via: 'self' }),
    ).rejects.toMatchObject({ code: 'conflict' });
    expect((await signIn(user, 'changed by the operator')).status).toBe(200);
  });

  it('should answer 403 banned for a banned account', async () => {
    const user = await makeUser(t);
    const s = await login(t, user);
    await t.http
      .post(`/api/v1/admin/users/${user.id}/ban`)
      .set(...bearer(adminKey))
      .send({ reason: 'spam' })
      .expect(200);
    const res = await change(s, { current_password: user.password, new_password: NEW_PASSWORD });
    expect(res.status).toBe(403);
    expect(res.body.code).toBe('banned');
  });

  it('should slow repeated wrong guesses down like sign-in, on the same counter', async () => {
    const user = await makeUser(t);
    const s = await login(t, user);
    // Five failures are free (LoginThrottle); the sixth and later wait a second more each before the answer.
    for (let i = 0; i < 6; i++) {
      await change(s, { current_password: `wrong guess ${i}`, new_password: NEW_PASSWORD }).expect(403);
    }
    const started = Date.now();
    const slowed = await signIn(user, 'still a wrong guess');
    expect(slowed.status).toBe(401);
    // A lower bound only (the delay is 2 s here): a slow machine makes it longer, never shorter.
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900);

    // The throttle's counter for (email, IP) in Redis (ioredis's keyPrefix does not apply to KEYS patterns).
    const failures = () =>
      t.app.get(RedisService).client.keys(`${t.config.redisPrefix}login-fail:${user.email}:*`);
    expect(await failures()).toHaveLength(1);

    const started2 = Date.now();
    await change(s, { current_password: user.password, new_password: NEW_PASSWORD }).expect(200);
    expect(Date.now() - started2).toBeGreaterThanOrEqual(2900);
    // A success clears the counter (as a successful sign-in does).
    expect(await failures()).toEqual([]);
  }, 30000);
});

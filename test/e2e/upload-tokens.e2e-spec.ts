import { randomBytes } from 'node:crypto';
import { Clock } from '../../src/common/time/clock';
import { signUploadToken, uploadTokenSigningKey } from '../../src/modules/api-keys/upload-token';
import { png } from '../fixtures/sample-images';
import { bearer, login, makeKey, makeUser, type TestKey } from '../setup/factories';
import { FakeClock } from '../setup/fake-clock';
import { createTestApp, type TestApp } from '../setup/test-app';
import { sql } from '../setup/db';
import { expectError } from '../setup/envelope';

const decodePayload = (token: string): string =>
  Buffer.from(token.slice(3, token.indexOf('.')), 'base64url').toString('utf8');

describe('POST /api/v1/upload-token and ut_ tokens (e2e)', () => {
  const oldSecret = randomBytes(32).toString('hex');
  const newSecret = randomBytes(32).toString('hex');
  const clock = new FakeClock();
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp({
      env: { SECRET_KEY: oldSecret },
      overrides: [{ provide: Clock, useValue: clock }],
    });
  });
  afterAll(() => t.close());

  const mint = async (key: TestKey, body?: unknown): Promise<string> => {
    const req = t.http.post('/api/v1/upload-token').set(...bearer(key.token));
    const res = await (body === undefined ? req : req.send(body as object)).expect(200);
    return (res.body as { token: string }).token;
  };

  /** An authenticated upload with a body that is not multipart: 400 proves the token was accepted, cheaply. */
  const probe = (app: TestApp, token: string) =>
    app.http
      .post('/api/v1/upload')
      .set(...bearer(token))
      .send({ not: 'multipart' });

  describe('minting', () => {
    it('should answer { ok, token, expires_at } with a 1-hour default and the documented token shape', async () => {
      const key = await makeKey(t);
      const res = await t.http
        .post('/api/v1/upload-token')
        .set(...bearer(key.token))
        .expect(200);
      expect(Object.keys(res.body).sort()).toEqual(['expires_at', 'ok', 'token']);
      expect(res.body.ok).toBe(true);
      expect(res.body.token).toMatch(/^ut_[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
      expect(res.body.expires_at).toBe(new Date(clock.now() + 3600_000).toISOString());
      expect(res.body.expires_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      const payload = decodePayload(res.body.token);
      expect(payload.startsWith('{"u":"')).toBe(true);
      expect(JSON.parse(payload)).toEqual({ u: key.user.id, k: key.keyId, e: clock.now() + 3600_000 });
    });

    it('should honour ttl_seconds at both ends of 60–604800', async () => {
      const key = await makeKey(t);
      for (const ttl of [60, 604800]) {
        const res = await t.http
          .post('/api/v1/upload-token')
          .set(...bearer(key.token))
          .send({ ttl_seconds: ttl })
          .expect(200);
        expect(res.body.expires_at).toBe(new Date(clock.now() + ttl * 1000).toISOString());
      }
    });

    it('should answer 400 bad_request for a ttl_seconds out of range, fractional, a string or null', async () => {
      const key = await makeKey(t);
      for (const ttl_seconds of [59, 604801, 0, -60, 1.5, 'abc', '3600', null, true, [3600], { s: 3600 }]) {
        const res = await t.http
          .post('/api/v1/upload-token')
          .set(...bearer(key.token))
          .send({ ttl_seconds });
        expectError(res, 400, 'bad_request');
      }
    });

    it('should answer 400 bad_request for a tag that is not [A-Za-z0-9_-] as sent, the Kelvin sign included', async () => {
      const key = await makeKey(t);
      for (const tags of [['has space'], ['\u212A'], ['ok', '\u212Aelvin']]) {
        const res = await t.http
          .post('/api/v1/upload-token')
          .set(...bearer(key.token))
          .send({ tags });
        expectError(res, 400, 'bad_request');
      }
    });

    it('should answer 400 bad_request for an unknown field and for a body that is not JSON', async () => {
      const key = await makeKey(t);
      expectError(
        await t.http
          .post('/api/v1/upload-token')
          .set(...bearer(key.token))
          .send({ ttl: 3600 }),
        400,
        'bad_request',
      );
      expectError(
        await t.http
          .post('/api/v1/upload-token')
          .set(...bearer(key.token))
          .set('Content-Type', 'application/json')
          .send('{"ttl_seconds": 3600'),
        400,
        'bad_request',
      );
    });

    it('should answer 401 without credentials and for an unknown key', async () => {
      expectError(await t.http.post('/api/v1/upload-token'), 401, 'unauthorized');
      expectError(
        await t.http.post('/api/v1/upload-token').set(...bearer(`fxf_${'0'.repeat(64)}`)),
        401,
        'unauthorized',
      );
    });

    it('should answer 403 forbidden to a dashboard session: minting needs an fxf_ key', async () => {
      const s = await login(t, await makeUser(t));
      const res = await t.http
        .post('/api/v1/upload-token')
        .set('Cookie', s.cookie)
        .set('X-CSRF-Token', s.csrf);
      expectError(res, 403, 'forbidden');
    });

    it('should answer 403 forbidden when an upload token tries to mint another', async () => {
      const token = await mint(await makeKey(t));
      expectError(await t.http.post('/api/v1/upload-token').set(...bearer(token)), 403, 'forbidden');
    });

    it('should answer 403 banned when the key owner is banned', async () => {
      const key = await makeKey(t);
      await sql(t, 'update users set banned_at = now() where id = $1', [key.user.id]);
      expectError(await t.http.post('/api/v1/upload-token').set(...bearer(key.token)), 403, 'banned');
    });
  });

  describe('using a ut_ token', () => {
    it('should upload with it, record the minting key, and count against its request_count', async () => {
      const key = await makeKey(t);
      const token = await mint(key); // request 1 of the key
      const first = await t.http
        .post('/api/v1/upload')
        .set(...bearer(token))
        .attach('file', await png(101), 'a.png')
        .expect(200); // 2
      expect(first.body).toMatchObject({ ok: true, mime: 'image/png' });
      await t.http
        .post('/api/v1/upload')
        .set('Authorization', `bearer ${token}`)
        .attach('file', await png(102), 'b.png')
        .expect(200); // 3
      const rows = await sql<{ api_key_id: string }>(
        t,
        'select api_key_id from uploads where owner_id = $1',
        [key.user.id],
      );
      expect(rows.map((r) => r.api_key_id)).toEqual([key.keyId, key.keyId]);
      const me = await t.http
        .get('/api/v1/me')
        .set(...bearer(key.token))
        .expect(200); // 4
      expect(me.body.key).toMatchObject({ prefix: key.token.slice(0, 8), request_count: 4 });
      expect(me.body.account.uploads_active).toBe(2);
    });

    it('should be accepted until its expiry and answer 401 from then on (ttl 60, injectable clock)', async () => {
      const key = await makeKey(t);
      const token = await mint(key, { ttl_seconds: 60 });
      expectError(await probe(t, token), 400, 'bad_request');
      clock.advance(59_999);
      expectError(await probe(t, token), 400, 'bad_request');
      clock.advance(1);
      expectError(await probe(t, token), 401, 'unauthorized');
    });

    it('should answer 401 for a tampered payload', async () => {
      const key = await makeKey(t);
      const other = await makeKey(t);
      const token = await mint(key);
      const sig = token.slice(token.indexOf('.') + 1);
      const claims = JSON.parse(decodePayload(token)) as { u: string; k: string; e: number };
      for (const forged of [
        { ...claims, e: claims.e + 7 * 86_400_000 },
        { ...claims, u: other.user.id, k: other.keyId },
      ]) {
        const payload = Buffer.from(JSON.stringify(forged)).toString('base64url');
        expectError(await probe(t, `ut_${payload}.${sig}`), 401, 'unauthorized');
      }
    });

    it('should answer 401 for a tampered, truncated or missing signature', async () => {
      const token = await mint(await makeKey(t));
      const dot = token.indexOf('.');
      const swap = (i: number): string =>
        token.slice(0, i) + (token[i] === 'A' ? 'B' : 'A') + token.slice(i + 1);
      for (const bad of [
        swap(dot + 3),
        swap(token.length - 2),
        token.slice(0, -2),
        token.slice(0, dot + 1),
        token.slice(0, dot),
      ]) {
        expectError(await probe(t, bad), 401, 'unauthorized');
      }
    });

    it('should answer 401 for a token signed with another secret', async () => {
      const key = await makeKey(t);
      const claims = { userId: key.user.id, keyId: key.keyId, expiresAt: clock.now() + 3600_000 };
      const foreign = signUploadToken(claims, uploadTokenSigningKey(newSecret));
      expectError(await probe(t, foreign), 401, 'unauthorized');
      // The same claims under the server's own secret are accepted: only the signature differs.
      expectError(
        await probe(t, signUploadToken(claims, uploadTokenSigningKey(oldSecret))),
        400,
        'bad_request',
      );
    });

    it('should, after a rotation, accept tokens signed with SECRET_KEY_PREVIOUS until they expire', async () => {
      const key = await makeKey(t);
      const token = await mint(key, { ttl_seconds: 120 }); // signed with oldSecret
      const rotated = await createTestApp({
        shareWith: t,
        env: { SECRET_KEY: newSecret, SECRET_KEY_PREVIOUS: oldSecret },
        overrides: [{ provide: Clock, useValue: clock }],
      });
      const withoutPrevious = await createTestApp({
        shareWith: t,
        env: { SECRET_KEY: newSecret },
        overrides: [{ provide: Clock, useValue: clock }],
      });
      try {
        expectError(await probe(rotated, token), 400, 'bad_request');
        expectError(await probe(withoutPrevious, token), 401, 'unauthorized');
        // New tokens come from the new secret, which the old configuration does not know.
        const fresh = await rotated.http
          .post('/api/v1/upload-token')
          .set(...bearer(key.token))
          .expect(200);
        expectError(await probe(rotated, fresh.body.token as string), 400, 'bad_request');
        expectError(await probe(t, fresh.body.token as string), 401, 'unauthorized');
        clock.advance(120_000);
        expectError(await probe(rotated, token), 401, 'unauthorized');
      } finally {
        await rotated.close();
        await withoutPrevious.close();
      }
    });

    it("should answer 401 once its minting key is revoked, and leave the owner's other keys alone", async () => {
      const user = await makeUser(t);
      const key = await makeKey(t, user, 'ci');
      const other = await makeKey(t, user, 'laptop');
      const token = await mint(key);
      const otherToken = await mint(other);
      const s = await login(t, user);
      await t.http
        .delete(`/api/v1/keys/${key.keyId}`)
        .set('Cookie', s.cookie)
        .set('X-CSRF-Token', s.csrf)
        .expect(200);
      expectError(await probe(t, token), 401, 'unauthorized');
      expectError(
        await t.http
          .post('/api/v1/upload')
          .set(...bearer(token))
          .attach('file', await png(103), 'a.png'),
        401,
        'unauthorized',
      );
      expectError(await probe(t, otherToken), 400, 'bad_request');
    });

    it('should answer 403 banned when its owner is banned', async () => {
      const key = await makeKey(t);
      const token = await mint(key);
      await sql(t, "update users set banned_at = now(), ban_reason = 'test' where id = $1", [key.user.id]);
      expectError(
        await t.http
          .post('/api/v1/upload')
          .set(...bearer(token))
          .attach('file', await png(104), 'a.png'),
        403,
        'banned',
      );
    });

    it('should answer 401 for garbage after ut_', async () => {
      for (const bad of ['ut_', 'ut_x', 'ut_x.y', 'ut_e30.e30']) {
        expectError(await probe(t, bad), 401, 'unauthorized');
      }
    });

    it('should answer 403 forbidden on every endpoint but POST /api/v1/upload', async () => {
      const token = await mint(await makeKey(t));
      const doc = (await t.http.get('/docs/openapi.json').expect(200)).body as {
        paths: Record<string, Record<string, { security?: Record<string, string[]>[] }>>;
      };
      const checked: string[] = [];
      for (const [path, ops] of Object.entries(doc.paths)) {
        for (const [method, op] of Object.entries(ops)) {
          const schemes = (op.security ?? []).flatMap((s) => Object.keys(s));
          if (schemes.length === 0 || schemes.includes('uploadToken')) {
            continue; // public, or the upload route itself
          }
          const url = path.replace(/\{[^}]+\}/g, 'FIXITFY-aaaaaaaaaaaa.png');
          const req = t.http[method as 'get' | 'head' | 'post' | 'patch' | 'delete'](url).set(
            ...bearer(token),
          );
          // superagent can't send a body with HEAD.
          const res = await (method === 'head' ? req : req.send({}));
          expect({
            route: `${method.toUpperCase()} ${path}`,
            status: res.status,
            code: res.body.code,
          }).toEqual({
            route: `${method.toUpperCase()} ${path}`,
            status: 403,
            // A HEAD answer has no body (HEAD /api/v1/uploads/by-hash/…): the status is what it can show.
            code: method === 'head' ? undefined : 'forbidden',
          });
          checked.push(`${method.toUpperCase()} ${path}`);
        }
      }
      expect(checked).toEqual(
        expect.arrayContaining([
          'POST /api/v1/upload-token',
          'GET /api/v1/me',
          'GET /api/v1/uploads',
          'GET /api/v1/uploads/{filename}',
          'PATCH /api/v1/uploads/{filename}',
          'DELETE /api/v1/uploads/{filename}',
          'GET /api/v1/keys',
          'POST /api/v1/keys',
          'DELETE /api/v1/keys/{id}',
        ]),
      );
    });
  });
});

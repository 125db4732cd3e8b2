import { png } from '../fixtures/sample-images';
import { bearer, login, makeKey, makeUser, type TestSession, type TestUser } from '../setup/factories';
import { sql } from '../setup/db';
import { createTestApp, type TestApp } from '../setup/test-app';

describe('Admin API and audit log (e2e)', () => {
  let t: TestApp;
  let admin: TestUser;
  let adminSession: TestSession;
  let adminKey: string;

  beforeAll(async () => {
    t = await createTestApp();
    admin = await makeUser(t, 'admin');
    adminSession = await login(t, admin);
    adminKey = (await makeKey(t, admin)).token;
  });
  afterAll(() => t.close());

  const post = (path: string, s: TestSession = adminSession) =>
    t.http.post(path).set('Cookie', s.cookie).set('X-CSRF-Token', s.csrf);

  describe('bans', () => {
    it('should ban at once: keys, sessions and delete links of the user answer 403 banned, then unban', async () => {
      const victim = await makeKey(t);
      const session = await login(t, victim.user);
      const up = await t.http
        .post('/api/v1/upload')
        .set(...bearer(victim.token))
        .attach('file', await png(1), 'a.png')
        .expect(200);
      const res = await post(`/api/v1/admin/users/${victim.user.id}/ban`)
        .send({ reason: 'spam' })
        .expect(200);
      expect(res.body.user).toMatchObject({
        id: victim.user.id,
        banned: true,
        ban_reason: 'spam',
        uploads_active: 1,
      });
      for (const r of [
        await t.http.get('/api/v1/me').set(...bearer(victim.token)),
        await t.http.get('/api/v1/auth/session').set('Cookie', session.cookie),
        await t.http
          .post('/api/v1/upload')
          .set(...bearer(victim.token))
          .attach('file', await png(2), 'a.png'),
        await t.http
          .post('/api/v1/auth/login')
          .send({ email: victim.user.email, password: victim.user.password }),
      ]) {
        expect(r.status).toBe(403);
        expect(r.body.code).toBe('banned');
      }
      // The person's own session (the website) and sign-in say why.
      const own = await t.http.get('/api/v1/auth/session').set('Cookie', session.cookie);
      expect(own.body.error).toBe('This account is banned: spam');
      // SERVE_BANNED_IMAGES defaults to true: the images stay stored and served.
      await t.http.get(`/images/${up.body.filename}`).expect(200);
      await post(`/api/v1/admin/users/${victim.user.id}/unban`).expect(200);
      await t.http
        .get('/api/v1/me')
        .set(...bearer(victim.token))
        .expect(200);
      // The ban ended the sessions it found: a cookie from before it (stolen, say) does not sign in again.
      const old = await t.http.get('/api/v1/auth/session').set('Cookie', session.cookie);
      expect({ status: old.status, code: (old.body as { code?: string }).code }).toEqual({
        status: 401,
        code: 'unauthorized',
      });
      const fresh = await login(t, victim.user);
      await t.http.get('/api/v1/auth/session').set('Cookie', fresh.cookie).expect(200);
    });

    it('should refuse banning yourself and the last admin (409 conflict)', async () => {
      const self = await post(`/api/v1/admin/users/${admin.id}/ban`).send({ reason: 'oops' });
      expect(self.status).toBe(409);
      expect(self.body.code).toBe('conflict');
      const other = await makeUser(t, 'admin');
      const otherSession = await login(t, other);
      // `other` may ban `admin` (two admins), but then `admin` is banned and `other` is the last one.
      await post(`/api/v1/admin/users/${admin.id}/ban`, otherSession).send({ reason: 'test' }).expect(200);
      const last = await t.http
        .post(`/api/v1/admin/users/${other.id}/ban`)
        .set(...bearer(adminKey))
        .send({ reason: 'x' });
      expect(last.status).toBe(403);
      expect(last.body.code).toBe('banned');
      await post(`/api/v1/admin/users/${admin.id}/unban`, otherSession).expect(200);
      await sql(t, "update users set role = 'user' where id = $1", [other.id]);
      // The ban ended `admin`'s session: the later tests sign in again.
      await t.http.get('/api/v1/auth/session').set('Cookie', adminSession.cookie).expect(401);
      adminSession = await login(t, admin);
    });

    it('should record a ban or unban that changes nothing once, not again', async () => {
      const user = await makeUser(t);
      const entries = async (action: string) =>
        Number(
          (
            await sql<{ n: string }>(
              t,
              'select count(*) as n from audit_entries where action = $1 and target_id = $2',
              [action, user.id],
            )
          )[0].n,
        );
      // Not banned: an unban lifts nothing.
      await post(`/api/v1/admin/users/${user.id}/unban`).expect(200);
      expect(await entries('user.unbanned')).toBe(0);
      await post(`/api/v1/admin/users/${user.id}/ban`).send({ reason: 'spam' }).expect(200);
      await post(`/api/v1/admin/users/${user.id}/ban`).send({ reason: 'spam' }).expect(200);
      expect(await entries('user.banned')).toBe(1);
      // A new reason is a change.
      await post(`/api/v1/admin/users/${user.id}/ban`).send({ reason: 'spam and abuse' }).expect(200);
      expect(await entries('user.banned')).toBe(2);
      await post(`/api/v1/admin/users/${user.id}/unban`).expect(200);
      await post(`/api/v1/admin/users/${user.id}/unban`).expect(200);
      expect(await entries('user.unbanned')).toBe(1);
    });

    it('should answer 404 for an unknown user and 400 without a reason', async () => {
      const unknown = await post('/api/v1/admin/users/00000000-0000-0000-0000-000000000000/ban').send({
        reason: 'x',
      });
      expect(unknown.status).toBe(404);
      expect(unknown.body.code).toBe('not_found');
      const user = await makeUser(t);
      const noReason = await post(`/api/v1/admin/users/${user.id}/ban`).send({});
      expect(noReason.status).toBe(400);
      expect(noReason.body.code).toBe('bad_request');
    });

    it('should refuse a non-admin with 403 forbidden', async () => {
      const key = await makeKey(t);
      const res = await t.http.get('/api/v1/admin/users').set(...bearer(key.token));
      expect(res.status).toBe(403);
      expect(res.body.code).toBe('forbidden');
    });
  });

  describe('users and uploads', () => {
    it('should list users with usage, searchable by email, with an admin key', async () => {
      const owner = await makeKey(t);
      const up = await t.http
        .post('/api/v1/upload')
        .set(...bearer(owner.token))
        .attach('file', await png(3), 'a.png')
        .expect(200);
      const res = await t.http
        .get('/api/v1/admin/users')
        .query({ query: owner.user.email })
        .set(...bearer(adminKey))
        .expect(200);
      expect(res.body).toMatchObject({ ok: true, count: 1, next_before: null });
      expect(res.body.users[0]).toEqual({
        id: owner.user.id,
        email: owner.user.email,
        role: 'user',
        banned: false,
        banned_at: null,
        ban_reason: null,
        uploads_active: 1,
        storage_used_bytes: up.body.size,
        // Additive (API.md Part 3, quotas): none set, no default.
        quota_bytes: null,
        quota_files: null,
        created_at: expect.any(String),
      });
    });

    it("should list a user's uploads and delete one, 404 on its direct link at once", async () => {
      const owner = await makeKey(t);
      const up = await t.http
        .post('/api/v1/upload')
        .set(...bearer(owner.token))
        .attach('file', await png(4), 'a.png')
        .expect(200);
      const list = await t.http
        .get('/api/v1/admin/uploads')
        .query({ user: owner.user.id })
        .set(...bearer(adminKey))
        .expect(200);
      expect(list.body.uploads.map((u: { filename: string }) => u.filename)).toEqual([up.body.filename]);
      expect(list.body.uploads[0].owner).toEqual({ id: owner.user.id, email: owner.user.email });
      // By email too, as the audit log's actor= takes it (any case); an email nobody has matches nothing.
      const byEmail = await t.http
        .get('/api/v1/admin/uploads')
        .query({ user: owner.user.email.toUpperCase() })
        .set(...bearer(adminKey))
        .expect(200);
      expect(byEmail.body).toEqual(list.body);
      const nobody = await t.http
        .get('/api/v1/admin/uploads')
        .query({ user: 'nobody@example.com' })
        .set(...bearer(adminKey))
        .expect(200);
      expect(nobody.body).toEqual({ ok: true, count: 0, next_before: null, uploads: [] });
      await t.http
        .delete(`/api/v1/admin/uploads/${up.body.filename}`)
        .set(...bearer(adminKey))
        .expect(200, { ok: true, deleted: up.body.filename });
      expect((await t.http.get(`/images/${up.body.filename}`)).status).toBe(404);
      const again = await t.http.delete(`/api/v1/admin/uploads/${up.body.filename}`).set(...bearer(adminKey));
      expect(again.status).toBe(404);
      const bad = await t.http
        .get('/api/v1/admin/uploads')
        .query({ user: 'x'.repeat(255) })
        .set(...bearer(adminKey));
      expect(bad.status).toBe(400);
      expect(bad.body.code).toBe('bad_request');
    });
  });

  describe('audit log', () => {
    it('should record the actions with actor, key prefix, IP and user agent, never a secret', async () => {
      const user = await makeUser(t);
      const s = await login(t, user);
      const created = await post('/api/v1/keys', s)
        .set('User-Agent', 'audit-test/1.0')
        .send({ label: 'ci' })
        .expect(201);
      const token: string = created.body.token;
      await t.http
        .delete(`/api/v1/keys/${created.body.key.id}`)
        .set('Cookie', s.cookie)
        .set('X-CSRF-Token', s.csrf)
        .expect(200);
      await t.http
        .post('/api/v1/auth/login')
        .send({ email: user.email, password: 'wrong password!' })
        .expect(401);

      const res = await t.http
        .get('/api/v1/admin/audit')
        .query({ actor: user.id })
        .set(...bearer(adminKey))
        .expect(200);
      const actions = res.body.entries.map((e: { action: string }) => e.action);
      expect(actions).toEqual(expect.arrayContaining(['api_key.created', 'api_key.revoked']));
      const createdEntry = res.body.entries.find((e: { action: string }) => e.action === 'api_key.created');
      expect(createdEntry).toMatchObject({
        actor: { id: user.id, email: user.email },
        target_type: 'api_key',
        target_id: created.body.key.id,
        user_agent: 'audit-test/1.0',
        ip: expect.any(String),
        created_at: expect.stringMatching(/Z$/),
      });
      const failed = await t.http
        .get('/api/v1/admin/audit')
        .query({ action: 'user.login_failed', target: user.id })
        .set(...bearer(adminKey))
        .expect(200);
      expect(failed.body.entries).toHaveLength(1);
      expect(failed.body.entries[0].metadata).toMatchObject({ email: user.email });

      const everything = JSON.stringify(
        (await t.http.get('/api/v1/admin/audit?limit=100').set(...bearer(adminKey))).body,
      );
      expect(everything).not.toContain(token.slice(4));
      expect(everything).not.toContain('wrong password!');
      expect(everything).not.toContain(user.password);
    });

    it('should record a delete by link, by owner and by admin as upload.deleted with its way', async () => {
      const owner = await makeKey(t);
      const a = await t.http
        .post('/api/v1/upload')
        .set(...bearer(owner.token))
        .attach('file', await png(10), 'a.png')
        .expect(200);
      const b = await t.http
        .post('/api/v1/upload')
        .set(...bearer(owner.token))
        .attach('file', await png(11), 'a.png')
        .expect(200);
      await t.http.delete(new URL(a.body.delete_url).pathname).expect(200);
      await t.http
        .delete(`/api/v1/uploads/${b.body.filename}`)
        .set(...bearer(owner.token))
        .expect(200);
      const res = await t.http
        .get('/api/v1/admin/audit')
        .query({ action: 'upload.deleted' })
        .set(...bearer(adminKey))
        .expect(200);
      const byTarget = new Map(res.body.entries.map((e: any) => [e.target_id, e]));
      expect((byTarget.get(a.body.filename) as any).metadata.via).toBe('delete_link');
      expect((byTarget.get(b.body.filename) as any).metadata.via).toBe('owner');
      expect((byTarget.get(b.body.filename) as any).actor.key_prefix).toBe(owner.token.slice(0, 8));
    });

    it('should page newest first without skipping or repeating', async () => {
      const seen: string[] = [];
      let before: string | null = null;
      let total = 0;
      do {
        const res: { body: any } = await t.http
          .get('/api/v1/admin/audit')
          .query({ limit: 3, ...(before ? { before } : {}) })
          .set(...bearer(adminKey))
          .expect(200);
        seen.push(...res.body.entries.map((e: { id: string }) => e.id));
        before = res.body.next_before;
        total++;
      } while (before && total < 200);
      const [{ n }] = await sql<{ n: string }>(t, 'select count(*) as n from audit_entries');
      expect(seen).toHaveLength(Number(n));
      expect(new Set(seen).size).toBe(seen.length);
    });

    it('should be append-only in the database itself: UPDATE, DELETE and TRUNCATE fail', async () => {
      await expect(sql(t, "update audit_entries set action = 'x'")).rejects.toThrow(/append-only/);
      await expect(sql(t, 'delete from audit_entries')).rejects.toThrow(/append-only/);
      await expect(sql(t, 'truncate audit_entries')).rejects.toThrow(/append-only/);
      const [{ n }] = await sql<{ n: string }>(t, 'select count(*) as n from audit_entries');
      expect(Number(n)).toBeGreaterThan(0);
    });
  });
});

import { png } from '../fixtures/sample-images';
import { sql } from '../setup/db';
import { bearer, login, makeKey, makeUser, type TestKey } from '../setup/factories';
import { createTestApp, type TestApp } from '../setup/test-app';
import { waitFor } from '../setup/wait';
import { ApiKeysService } from '../../src/modules/api-keys/api-keys.service';
import { UploadRepository } from '../../src/modules/uploads/upload.repository';
import { expectError } from '../setup/envelope';

const local = (url: string): string => url.replace('http://upload.test', '');

describe('Expiring uploads (e2e)', () => {
  let t: TestApp;
  let key: TestKey;
  let seed = 9000;

  beforeAll(async () => {
    // A sweep every 60 s: the tests below see reads treat an upload as gone before any sweep runs.
    // DELIVERY_CACHE_SECONDS 0: these tests move expires_at by plain SQL, which a direct-link cache entry (bounded
    // by the expires_at it read, see DeliveryCache) cannot see; with the real clock the entry ends at expires_at.
    t = await createTestApp({
      env: { EXPIRY_SWEEP_SECONDS: '60', RATE_LIMIT_UPLOADS_PER_MINUTE: '1000', DELIVERY_CACHE_SECONDS: '0' },
    });
    key = await makeKey(t);
  });
  afterAll(() => t.close());

  const upload = async (token: string, fields: Record<string, string> = {}, bytes?: Buffer) => {
    let req = t.http
      .post('/api/v1/upload')
      .set(...bearer(token))
      .attach('file', bytes ?? (await png(seed++)), 'a.png');
    for (const [k, v] of Object.entries(fields)) {
      req = req.field(k, v);
    }
    return req;
  };

  const ok = async (res: Promise<{ status: number; body: Record<string, any> }>) => {
    const done = await res;
    expect({ status: done.status, body: done.body }).toMatchObject({ status: 200 });
    return done;
  };

  it.each([
    [{ expires_in: '59' }],
    [{ expires_in: '31536001' }],
    [{ expires_in: 'soon' }],
    [{ expires_in: '90.5' }],
    [{ expires_in: '-60' }],
    [{ expires_in: '3600', expires_at: new Date(Date.now() + 3600_000).toISOString() }],
    [{ expires_at: new Date(Date.now() - 1000).toISOString() }],
    [{ expires_at: new Date(Date.now() + 366 * 86400_000).toISOString() }],
    [{ expires_at: 'tomorrow' }],
    [{ expires_at: '2099-01-01T00:00:00' }],
  ])('should refuse %j with 400 bad_request and keep nothing', async (fields) => {
    const before = await sql(t, 'select count(*)::int as n from uploads');
    expectError(await upload(key.token, fields), 400, 'bad_request');
    expect(await sql(t, 'select count(*)::int as n from uploads')).toEqual(before);
  });

  it('should set expires_at from expires_in or expires_at and show it in every answer; null when never', async () => {
    const started = Date.now();
    const a = await ok(upload(key.token, { expires_in: '3600' }));
    const at = Date.parse(a.body.expires_at);
    expect(at).toBeGreaterThanOrEqual(started + 3600_000 - 1000);
    expect(at).toBeLessThanOrEqual(Date.now() + 3600_000 + 1000);
    const when = new Date(Date.now() + 7200_000).toISOString();
    const b = await ok(upload(key.token, { expires_at: when }));
    expect(b.body.expires_at).toBe(when);
    const c = await ok(upload(key.token));
    expect(c.body.expires_at).toBeNull();

    const detail = await t.http
      .get(`/api/v1/uploads/${a.body.filename}`)
      .set(...bearer(key.token))
      .expect(200);
    expect(detail.body.upload.expires_at).toBe(a.body.expires_at);
    const list = await t.http
      .get('/api/v1/uploads')
      .set(...bearer(key.token))
      .expect(200);
    const byName = Object.fromEntries(
      (list.body.uploads as { filename: string; expires_at: string | null }[]).map((u) => [
        u.filename,
        u.expires_at,
      ]),
    );
    expect(byName[b.body.filename]).toBe(when);
    expect(byName[c.body.filename]).toBeNull();
    const byHash = await t.http
      .get(`/api/v1/uploads/by-hash/${b.body.hash_sha256}`)
      .set(...bearer(key.token))
      .expect(200);
    expect(byHash.body.upload.expires_at).toBe(when);
    const admin = await makeKey(t, await makeUser(t, 'admin'));
    const adminList = await t.http
      .get(`/api/v1/admin/uploads?user=${key.user.id}`)
      .set(...bearer(admin.token))
      .expect(200);
    expect(adminList.body.uploads.every((u: Record<string, unknown>) => 'expires_at' in u)).toBe(true);
  });

  it('should take a part sent empty as not sent, as a blank field of Swagger UI or an HTML form is', async () => {
    // Swagger UI's "Try it out" sends every form field, the blank ones empty: both expiries blank is no expiry,
    // one filled and the other blank is the filled one (before, either was a 400).
    const none = await ok(upload(key.token, { tags: '', expires_in: '', expires_at: '' }));
    expect(none.body).toMatchObject({ expires_at: null });
    const started = Date.now();
    const one = await ok(upload(key.token, { tags: 'swagger', expires_in: '3600', expires_at: ' ' }));
    const at = Date.parse(one.body.expires_at);
    expect(at).toBeGreaterThanOrEqual(started + 3600_000 - 1000);
    expect(at).toBeLessThanOrEqual(Date.now() + 3600_000 + 1000);
    const listed = await t.http
      .get(`/api/v1/uploads/${one.body.filename}`)
      .set(...bearer(key.token))
      .expect(200);
    expect(listed.body.upload.tags).toEqual(['swagger']);
  });

  it('should use the key’s default_expires_in unless the upload says otherwise', async () => {
    const made = await t.app
      .get(ApiKeysService)
      .create(key.user.id, 'short', undefined, { defaultExpiresIn: 120 });
    expect(made.key.default_expires_in).toBe(120);
    const a = await ok(upload(made.token));
    expect(Date.parse(a.body.expires_at) - Date.now()).toBeGreaterThan(100_000);
    expect(Date.parse(a.body.expires_at) - Date.now()).toBeLessThanOrEqual(120_000);
    const b = await ok(upload(made.token, { expires_in: '86400' }));
    expect(Date.parse(b.body.expires_at) - Date.now()).toBeGreaterThan(86_000_000);
    // A ut_ token uses its minting key's default.
    const ut = await t.http
      .post('/api/v1/upload-token')
      .set(...bearer(made.token))
      .expect(200);
    const c = await ok(upload(ut.body.token));
    expect(c.body.expires_at).not.toBeNull();
  });

  describe('a dedupe hit of an expiring upload', () => {
    const expiresOf = async (filename: string): Promise<string | null> => {
      const [row] = await sql(t, 'select expires_at from uploads where filename = $1', [filename]);
      return row.expires_at === null ? null : new Date(row.expires_at).toISOString();
    };

    it('should make it permanent when the new request asks for no expiry (a Part 1 client sees no change)', async () => {
      const bytes = await png(seed++);
      const first = await ok(upload(key.token, { expires_in: '60' }, bytes));
      expect(first.body.expires_at).not.toBeNull();
      const again = await ok(upload(key.token, {}, bytes));
      expect(again.body).toMatchObject({
        deduplicated: true,
        filename: first.body.filename,
        expires_at: null,
      });
      expect(await expiresOf(first.body.filename)).toBeNull();
      const detail = await t.http
        .get(`/api/v1/uploads/${first.body.filename}`)
        .set(...bearer(key.token))
        .expect(200);
      expect(detail.body.upload.expires_at).toBeNull();
    });

    it('should move it later, never earlier', async () => {
      const bytes = await png(seed++);
      const first = await ok(upload(key.token, { expires_in: '3600' }, bytes));
      const later = await ok(upload(key.token, { expires_in: '7200' }, bytes));
      expect(later.body.deduplicated).toBe(true);
      expect(Date.parse(later.body.expires_at) - Date.parse(first.body.expires_at)).toBeGreaterThan(
        3_500_000,
      );
      expect(await expiresOf(first.body.filename)).toBe(later.body.expires_at);
      const earlier = await ok(upload(key.token, { expires_in: '600' }, bytes));
      expect(earlier.body).toMatchObject({ deduplicated: true, expires_at: later.body.expires_at });
      expect(await expiresOf(first.body.filename)).toBe(later.body.expires_at);
    });

    it('should leave a permanent upload permanent when the new request asks for an expiry', async () => {
      const bytes = await png(seed++);
      const first = await ok(upload(key.token, {}, bytes));
      const again = await ok(upload(key.token, { expires_in: '60' }, bytes));
      expect(again.body).toMatchObject({
        deduplicated: true,
        filename: first.body.filename,
        expires_at: null,
      });
      expect(await expiresOf(first.body.filename)).toBeNull();
    });

    it('should not bring back an upload that expired before the extension ran', async () => {
      const bytes = await png(seed++);
      const first = await ok(upload(key.token, { expires_in: '60' }, bytes));
      const [row] = await sql(t, 'select id from uploads where filename = $1', [first.body.filename]);
      await sql(t, `update uploads set expires_at = now() - interval '1 second' where id = $1`, [row.id]);
      // What the pipeline does when the upload expires between its dedupe check and the extension.
      expect(await t.app.get(UploadRepository).extendExpiry(row.id, null)).toBeUndefined();
      expect(await expiresOf(first.body.filename)).not.toBeNull();
    });
  });

  it.each([[59], [31536001], ['60'], [1.5]])(
    'should refuse default_expires_in %j with 400',
    async (value) => {
      const s = await login(t, key.user);
      expectError(
        await t.http
          .post('/api/v1/keys')
          .set('Cookie', s.cookie)
          .set('X-CSRF-Token', s.csrf)
          .send({ label: 'x', default_expires_in: value }),
        400,
        'bad_request',
      );
    },
  );

  it('should treat an upload as gone everywhere at its time, before any sweep', async () => {
    const bytes = await png(seed++);
    const up = await ok(upload(key.token, { expires_in: '60' }, bytes));
    await t.http.get(local(up.body.url)).expect(200);
    const usage = (
      await t.http
        .get('/api/v1/me')
        .set(...bearer(key.token))
        .expect(200)
    ).body.account;
    // Its time comes (the clock is the database's and the server's: move the upload's time instead).
    await sql(t, `update uploads set expires_at = now() - interval '1 second' where filename = $1`, [
      up.body.filename,
    ]);

    expectError(await t.http.get(local(up.body.url)), 404, 'not_found');
    expect((await t.http.head(local(up.body.url))).status).toBe(404);
    expectError(await t.http.get(`${local(up.body.url)}?w=64`), 404, 'not_found');
    expectError(
      await t.http.get(`/api/v1/uploads/${up.body.filename}`).set(...bearer(key.token)),
      404,
      'not_found',
    );
    expectError(
      await t.http.get(`/api/v1/uploads/by-hash/${up.body.hash_sha256}`).set(...bearer(key.token)),
      404,
      'not_found',
    );
    expectError(
      await t.http
        .patch(`/api/v1/uploads/${up.body.filename}`)
        .set(...bearer(key.token))
        .send({ tags: ['x'] }),
      404,
      'not_found',
    );
    const list = await t.http
      .get('/api/v1/uploads?limit=100')
      .set(...bearer(key.token))
      .expect(200);
    expect(list.body.uploads.map((u: { filename: string }) => u.filename)).not.toContain(up.body.filename);
    const after = (
      await t.http
        .get('/api/v1/me')
        .set(...bearer(key.token))
        .expect(200)
    ).body.account;
    expect(after.uploads_active).toBe(usage.uploads_active - 1);
    expectError(await t.http.post(local(up.body.delete_url)), 404, 'not_found');
    expectError(
      await t.http.delete(`/api/v1/uploads/${up.body.filename}`).set(...bearer(key.token)),
      404,
      'not_found',
    );
    // Not yet swept.
    const [row] = await sql(t, 'select deleted_at from uploads where filename = $1', [up.body.filename]);
    expect(row.deleted_at).toBeNull();

    // The same bytes again: a new upload (not a dedupe hit of the expired one), which expires the old row at once.
    const again = await ok(upload(key.token, {}, bytes));
    expect(again.body.deduplicated).toBeUndefined();
    expect(again.body.filename).not.toBe(up.body.filename);
    const [old] = await sql(t, 'select deleted_at from uploads where filename = $1', [up.body.filename]);
    expect(old.deleted_at).not.toBeNull();
  });
});

describe('Expiry sweep across two instances (e2e)', () => {
  let a: TestApp;
  let b: TestApp;

  beforeAll(async () => {
    a = await createTestApp({ env: { EXPIRY_SWEEP_SECONDS: '1', ALLOW_PRIVATE_WEBHOOKS: 'true' } });
    b = await createTestApp({
      shareWith: a,
      env: { EXPIRY_SWEEP_SECONDS: '1', ALLOW_PRIVATE_WEBHOOKS: 'true' },
    });
  });
  afterAll(async () => {
    await b.close();
    await a.close();
  });

  it('should soft-delete expired uploads once (one audit entry and one event each), removing their bytes', async () => {
    const user = await makeUser(a);
    const s = await login(a, user);
    const hook = await a.http
      .post('/api/v1/webhooks')
      .set('Cookie', s.cookie)
      .set('X-CSRF-Token', s.csrf)
      .send({ url: 'http://127.0.0.1:9/hook', events: ['upload.deleted'], enabled: false })
      .expect(201);
    await a.http
      .patch(`/api/v1/webhooks/${hook.body.webhook.id}`)
      .set('Cookie', s.cookie)
      .set('X-CSRF-Token', s.csrf)
      .send({ enabled: true })
      .expect(200);
    const key = await makeKey(a, user);
    const names: string[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await (i % 2 ? b : a).http
        .post('/api/v1/upload')
        .set(...bearer(key.token))
        .field('expires_in', '60')
        .attach('file', await png(9500 + i), 'a.png')
        .expect(200);
      names.push(res.body.filename);
    }
    await sql(a, `update uploads set expires_at = now() - interval '1 second' where filename = any($1)`, [
      names,
    ]);

    await waitFor(
      'the sweep',
      async () =>
        (
          await sql(
            a,
            'select count(*)::int as n from uploads where filename = any($1) and deleted_at is not null',
            [names],
          )
        )[0].n === 4,
    );
    const audit = await sql(
      a,
      `select target_id from audit_entries where action = 'upload.expired' and target_id = any($1)`,
      [names],
    );
    expect(audit.map((r) => r.target_id).sort()).toEqual([...names].sort());
    const events = await sql(a, 'select body from outbox_events where webhook_id = $1', [
      hook.body.webhook.id,
    ]);
    expect(events).toHaveLength(4);
    for (const e of events) {
      const body = JSON.parse(e.body as string);
      expect(body.event).toBe('upload.deleted');
      expect(body.reason).toBe('expired');
    }
    // Two more sweeps pass: still one entry each.
    await new Promise((r) => setTimeout(r, 2500));
    expect(
      (
        await sql(
          a,
          `select count(*)::int as n from audit_entries where action = 'upload.expired' and target_id = any($1)`,
          [names],
        )
      )[0].n,
    ).toBe(4);
  });
});

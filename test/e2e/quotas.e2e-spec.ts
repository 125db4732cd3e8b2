import { png } from '../fixtures/sample-images';
import { sql, storedFiles } from '../setup/db';
import { bearer, makeKey, makeUser, type TestKey } from '../setup/factories';
import { createTestApp, type TestApp } from '../setup/test-app';
import { expectError } from '../setup/envelope';

const LIMITS = { UPLOADS_IN_FLIGHT_PER_KEY: '16', RATE_LIMIT_UPLOADS_PER_MINUTE: '1000' };

describe('Storage quotas (e2e)', () => {
  let t: TestApp;
  let b: TestApp;
  let admin: TestKey;
  let seed = 12000;

  beforeAll(async () => {
    t = await createTestApp({ env: { ...LIMITS, STORAGE_QUOTA_FILES: '3' } });
    b = await createTestApp({ shareWith: t, env: { ...LIMITS, STORAGE_QUOTA_FILES: '3' } });
    admin = await makeKey(t, await makeUser(t, 'admin'));
  });
  afterAll(async () => {
    await b.close();
    await t.close();
  });

  const upload = async (app: TestApp, token: string, bytes?: Buffer) =>
    app.http
      .post('/api/v1/upload')
      .set(...bearer(token))
      .attach('file', bytes ?? (await png(seed++)), 'a.png');
  const setQuota = (userId: string, body: object) =>
    t.http
      .patch(`/api/v1/admin/users/${userId}`)
      .set(...bearer(admin.token))
      .send(body);

  it('should apply the default file quota, name the numbers, keep nothing of the refused upload; /me shows it', async () => {
    const key = await makeKey(t);
    for (let i = 0; i < 3; i++) {
      expect((await upload(t, key.token)).status).toBe(200);
    }
    const files = storedFiles(t).length;
    const res = await upload(t, key.token);
    expectError(res, 413, 'quota_exceeded');
    expect(res.body.error).toContain('3 of your 3 files');
    expect(storedFiles(t).length).toBe(files);
    const me = await t.http
      .get('/api/v1/me')
      .set(...bearer(key.token))
      .expect(200);
    expect(me.body.account).toMatchObject({ uploads_active: 3, quota_files: 3, quota_bytes: null });
    // A dedupe hit takes no room: still 200.
    const [first] = await sql(t, 'select sha256 from uploads where owner_id = $1 limit 1', [key.user.id]);
    expect(first.sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('should let an admin set a byte quota (audited) and refuse the upload past it with the numbers', async () => {
    const key = await makeKey(t);
    const first = await upload(t, key.token);
    expect(first.status).toBe(200);
    const size = first.body.size as number;
    const res = await setQuota(key.user.id, { quota_bytes: size + 10, quota_files: null }).expect(200);
    expect(res.body.user).toMatchObject({ id: key.user.id, quota_bytes: size + 10, quota_files: 3 });
    const [entry] = await sql(
      t,
      `select metadata from audit_entries where action = 'user.quota_changed' and target_id = $1`,
      [key.user.id],
    );
    expect(entry.metadata).toEqual({ quota_bytes: size + 10, quota_files: null });
    const over = await upload(t, key.token);
    expectError(over, 413, 'quota_exceeded');
    expect(over.body.error).toContain(`of your ${size + 10}-byte quota (${size} bytes used)`);
    // Every figure carries its unit, so that the website (and a person reading the JSON) can show each as "3.4 MB".
    expect(over.body.error).toMatch(/would take you to \d+ bytes of your/);
    const me = await t.http
      .get('/api/v1/me')
      .set(...bearer(key.token))
      .expect(200);
    expect(me.body.account.quota_bytes).toBe(size + 10);
    // Raised: fits again. Cleared to null: back to the default (3 files, no byte limit).
    await setQuota(key.user.id, { quota_bytes: 10 * size }).expect(200);
    expect((await upload(t, key.token)).status).toBe(200);
    const cleared = await setQuota(key.user.id, { quota_bytes: null }).expect(200);
    expect(cleared.body.user.quota_bytes).toBeNull();
  });

  it('should free room when an upload is deleted', async () => {
    const key = await makeKey(t);
    await setQuota(key.user.id, { quota_files: 1 }).expect(200);
    const one = await upload(t, key.token);
    expect(one.status).toBe(200);
    expectError(await upload(t, key.token), 413, 'quota_exceeded');
    await t.http
      .delete(`/api/v1/uploads/${one.body.filename}`)
      .set(...bearer(key.token))
      .expect(200);
    expect((await upload(t, key.token)).status).toBe(200);
  });

  it('should answer an upload recorded under a quota with a delete link that deletes it', async () => {
    // An owner with a quota is recorded in a transaction, not in the one statement: its answer's link is made there.
    const key = await makeKey(t);
    const one = await upload(t, key.token);
    expect(one.status).toBe(200);
    const path = new URL(one.body.delete_url as string).pathname;
    await t.http.delete(path).expect(200, { ok: true, deleted: one.body.filename });
    await t.http.get(`/images/${one.body.filename}`).expect(404);
  });

  it('should be exact under parallel uploads on two instances: never past the quota', async () => {
    const key = await makeKey(t);
    await setQuota(key.user.id, { quota_files: 2 }).expect(200);
    const images = await Promise.all(Array.from({ length: 8 }, (_, i) => png(13000 + i)));
    const results = await Promise.all(images.map((img, i) => upload(i % 2 ? b : t, key.token, img)));
    expect(results.filter((r) => r.status === 200)).toHaveLength(2);
    for (const r of results.filter((x) => x.status !== 200)) {
      expectError(r, 413, 'quota_exceeded');
    }
    const [row] = await sql(
      t,
      'select count(*)::int as n from uploads where owner_id = $1 and deleted_at is null',
      [key.user.id],
    );
    expect(row.n).toBe(2);
  });

  it('should be exact in bytes under parallel uploads', async () => {
    const key = await makeKey(t);
    const probe = await upload(t, key.token, await png(14000));
    const size = probe.body.size as number;
    // Room for exactly two more images of (about) that size.
    await setQuota(key.user.id, { quota_bytes: 3 * size + Math.floor(size / 2), quota_files: 100 }).expect(
      200,
    );
    const images = await Promise.all(Array.from({ length: 6 }, (_, i) => png(14001 + i)));
    const results = await Promise.all(images.map((img, i) => upload(i % 2 ? b : t, key.token, img)));
    expect(results.filter((r) => r.status === 200)).toHaveLength(2);
    const [row] = await sql(
      t,
      'select coalesce(sum(size), 0)::int as bytes from uploads where owner_id = $1 and deleted_at is null',
      [key.user.id],
    );
    expect(row.bytes).toBeLessThanOrEqual(3 * size + Math.floor(size / 2));
  });

  it.each([
    [{}],
    [{ quota_bytes: -1 }],
    [{ quota_bytes: 1.5 }],
    [{ quota_bytes: '100' }],
    [{ quota_files: -1 }],
    [{ quota_files: 2 ** 31 }],
    [{ other: 1 }],
  ])('should refuse %j with 400 bad_request', async (body) => {
    const user = await makeUser(t);
    expectError(await setQuota(user.id, body), 400, 'bad_request');
  });

  it('should answer 404 for an unknown user and 403 for a non-admin', async () => {
    expectError(await setQuota('3f9a8c1e-0000-4000-8000-000000000000', { quota_files: 1 }), 404, 'not_found');
    const key = await makeKey(t);
    expectError(
      await t.http
        .patch(`/api/v1/admin/users/${key.user.id}`)
        .set(...bearer(key.token))
        .send({ quota_files: 1 }),
      403,
      'forbidden',
    );
  });
});

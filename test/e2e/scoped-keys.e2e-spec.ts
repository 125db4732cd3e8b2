import { png } from '../fixtures/sample-images';
import { sql } from '../setup/db';
import { bearer, login, makeUser, type TestSession, type TestUser } from '../setup/factories';
import { createTestApp, type TestApp } from '../setup/test-app';
import { expectError } from '../setup/envelope';

describe('Scoped API keys (e2e)', () => {
  let t: TestApp;
  let user: TestUser;
  let session: TestSession;

  beforeAll(async () => {
    t = await createTestApp();
    user = await makeUser(t);
    session = await login(t, user);
  });
  afterAll(() => t.close());

  const createKey = (body: object) =>
    t.http.post('/api/v1/keys').set('Cookie', session.cookie).set('X-CSRF-Token', session.csrf).send(body);

  const upload = async (token: string, seed: number) =>
    t.http
      .post('/api/v1/upload')
      .set(...bearer(token))
      .attach('file', await png(seed), 'a.png');

  it('should give a key without scopes all three, in the key object and the list', async () => {
    const res = await createKey({ label: 'full' }).expect(201);
    expect(res.body.key.scopes).toEqual(['upload', 'read', 'delete']);
    const list = await t.http.get('/api/v1/keys').set('Cookie', session.cookie).expect(200);
    const listed = (list.body.keys as { id: string; scopes: string[] }[]).find(
      (k) => k.id === res.body.key.id,
    );
    expect(listed?.scopes).toEqual(['upload', 'read', 'delete']);
  });

  it('should store the requested scopes in canonical order and record them in the audit entry', async () => {
    const res = await createKey({ label: 'ro', scopes: ['delete', 'read'] }).expect(201);
    expect(res.body.key.scopes).toEqual(['read', 'delete']);
    const [entry] = await sql(
      t,
      `select metadata from audit_entries where action = 'api_key.created' and target_id = $1`,
      [res.body.key.id],
    );
    expect(entry.metadata.scopes).toEqual(['read', 'delete']);
  });

  it.each([
    [[]],
    [['admin']],
    [['upload', 'upload']],
    ['upload'],
    [[1]],
    [['upload', 'read', 'delete', 'read']],
    // null is not absent (absent = all three): a caller asking for least privilege must not get every scope.
    [null],
  ])('should refuse scopes %j with 400 bad_request', async (scopes) => {
    const res = await createKey({ label: 'x', scopes });
    expectError(res, 400, 'bad_request');
    expect(res.body.error).toBe(
      'scopes must be a non-empty list of distinct values from upload, read, delete',
    );
  });

  it('should name what is wrong with an empty label', async () => {
    const res = await createKey({ label: '' });
    expectError(res, 400, 'bad_request');
    expect(res.body.error).toBe('label must be 1 to 64 characters');
  });

  it('should let an upload-only key upload and mint tokens but not read or delete, naming the scope', async () => {
    const { body } = await createKey({ label: 'ci', scopes: ['upload'] }).expect(201);
    const token = body.token as string;
    const up = await upload(token, 1);
    expect(up.status).toBe(200);
    await t.http
      .post('/api/v1/upload-token')
      .set(...bearer(token))
      .expect(200);

    for (const res of [
      await t.http.get('/api/v1/uploads').set(...bearer(token)),
      await t.http.get(`/api/v1/uploads/${up.body.filename}`).set(...bearer(token)),
      await t.http.get('/api/v1/me').set(...bearer(token)),
    ]) {
      expectError(res, 403, 'forbidden');
      expect(res.body.error).toContain('"read"');
      // A limited route's answer to a known caller, refusal or not, carries its limits (API.md Part 1).
      expect(res.headers['x-ratelimit-limit']).toMatch(/^\d+$/);
      expect(res.headers['x-ratelimit-remaining']).toMatch(/^\d+$/);
      expect(res.headers['x-ratelimit-reset']).toMatch(/^\d+$/);
    }
    const del = await t.http.delete(`/api/v1/uploads/${up.body.filename}`).set(...bearer(token));
    expectError(del, 403, 'forbidden');
    expect(del.body.error).toContain('"delete"');
    expect(del.headers['x-ratelimit-limit']).toMatch(/^\d+$/);
    // Still there: the refused delete did nothing.
    const [row] = await sql(t, 'select deleted_at from uploads where filename = $1', [up.body.filename]);
    expect(row.deleted_at).toBeNull();
  });

  it('should let a read-only key list and read /me but not upload, mint tokens or change tags', async () => {
    const { body } = await createKey({ label: 'ro', scopes: ['read'] }).expect(201);
    const token = body.token as string;
    await t.http
      .get('/api/v1/uploads')
      .set(...bearer(token))
      .expect(200);
    const me = await t.http
      .get('/api/v1/me')
      .set(...bearer(token))
      .expect(200);
    expect(me.body.key.scopes).toEqual(['read']);
    const up = await upload(token, 2);
    expectError(up, 403, 'forbidden');
    expect(up.body.error).toContain('"upload"');
    expect(up.headers['x-ratelimit-limit']).toMatch(/^\d+$/);
    expectError(await t.http.post('/api/v1/upload-token').set(...bearer(token)), 403, 'forbidden');
    const full = (await createKey({ label: 'full2' }).expect(201)).body.token as string;
    const made = await upload(full, 3);
    expectError(
      await t.http
        .patch(`/api/v1/uploads/${made.body.filename}`)
        .set(...bearer(token))
        .send({ tags: ['a'] }),
      403,
      'forbidden',
    );
  });

  it('should let a delete-only key delete but not list', async () => {
    const full = (await createKey({ label: 'full3' }).expect(201)).body.token as string;
    const made = await upload(full, 4);
    const { body } = await createKey({ label: 'del', scopes: ['delete'] }).expect(201);
    await t.http
      .delete(`/api/v1/uploads/${made.body.filename}`)
      .set(...bearer(body.token))
      .expect(200);
    expectError(await t.http.get('/api/v1/uploads').set(...bearer(body.token)), 403, 'forbidden');
  });

  it('should keep a narrowed admin key out of admin endpoints', async () => {
    const admin = await makeUser(t, 'admin');
    const s = await login(t, admin);
    const narrowed = await t.http
      .post('/api/v1/keys')
      .set('Cookie', s.cookie)
      .set('X-CSRF-Token', s.csrf)
      .send({ label: 'ro', scopes: ['read'] })
      .expect(201);
    const res = await t.http.get('/api/v1/admin/users').set(...bearer(narrowed.body.token));
    expectError(res, 403, 'forbidden');
    expect(res.body.error).toContain('"upload" and "delete"');
  });

  it('should treat a key made before scopes existed (the column default) as full', async () => {
    const { body } = await createKey({ label: 'old' }).expect(201);
    // What the migration gives an existing row.
    await sql(t, `update api_keys set scopes = default where id = $1`, [body.key.id]);
    await t.http
      .get('/api/v1/me')
      .set(...bearer(body.token))
      .expect(200);
    expect((await upload(body.token, 5)).status).toBe(200);
  });

  it('should let ut_ tokens minted by an upload-only key upload', async () => {
    const { body } = await createKey({ label: 'ci2', scopes: ['upload'] }).expect(201);
    const ut = await t.http
      .post('/api/v1/upload-token')
      .set(...bearer(body.token))
      .expect(200);
    expect((await upload(ut.body.token, 6)).status).toBe(200);
  });
});

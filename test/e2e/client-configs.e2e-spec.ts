import { png } from '../fixtures/sample-images';
import { sql } from '../setup/db';
import { bearer, login, makeKey, makeUser, type TestSession, type TestUser } from '../setup/factories';
import { createTestApp, type TestApp } from '../setup/test-app';
import { expectError } from '../setup/envelope';

describe('Client configs (e2e)', () => {
  let t: TestApp;
  let user: TestUser;
  let s: TestSession;

  beforeAll(async () => {
    t = await createTestApp();
    user = await makeUser(t);
    s = await login(t, user);
  });
  afterAll(() => t.close());

  const sharex = (query = '') =>
    t.http.get(`/api/v1/clients/sharex${query}`).set('Cookie', s.cookie).set('X-CSRF-Token', s.csrf);

  it('should answer a .sxcu attachment around a new upload-only key that uploads and deletes via delete_url', async () => {
    const res = await sharex().expect(200);
    expect(res.headers['content-disposition']).toBe('attachment; filename="fixitfy-upload.test.sxcu"');
    const sxcu = JSON.parse(res.text) as Record<string, any>;
    expect(sxcu).toMatchObject({
      DestinationType: 'ImageUploader',
      RequestMethod: 'POST',
      RequestURL: 'http://upload.test/api/v1/upload',
      Body: 'MultipartFormData',
      FileFormName: 'file',
      URL: '{json:url}',
      DeletionURL: '{json:delete_url}',
    });
    const auth = sxcu.Headers.Authorization as string;
    expect(auth).toMatch(/^Bearer fxf_[0-9a-f]{64}$/);
    const token = auth.slice('Bearer '.length);
    const keys = await t.http.get('/api/v1/keys').set('Cookie', s.cookie).expect(200);
    const made = (keys.body.keys as { prefix: string; scopes: string[]; label: string }[]).find(
      (k) => k.prefix === token.slice(0, 8),
    );
    expect(made).toMatchObject({ label: 'ShareX', scopes: ['upload'] });
    const [entry] = await sql(
      t,
      `select metadata from audit_entries where action = 'api_key.created' and actor_id = $1`,
      [user.id],
    );
    expect(entry.metadata.scopes).toEqual(['upload']);
    // What ShareX would do with it: upload, then call the DeletionURL.
    const up = await t.http
      .post('/api/v1/upload')
      .set(...bearer(token))
      .attach('file', await png(1), 'a.png')
      .expect(200);
    await t.http.post(up.body.delete_url.replace('http://upload.test', '')).expect(200);
    // Never a full-account key: it can't read or delete through the API.
    expectError(await t.http.get('/api/v1/uploads').set(...bearer(token)), 403, 'forbidden');
  });

  it('should copy default_expires_in from key_id, and answer 404/400 for a bad key_id', async () => {
    const base = await t.http
      .post('/api/v1/keys')
      .set('Cookie', s.cookie)
      .set('X-CSRF-Token', s.csrf)
      .send({ label: 'base', default_expires_in: 3600 })
      .expect(201);
    const res = await sharex(`?key_id=${base.body.key.id}`).expect(200);
    const token = (JSON.parse(res.text).Headers.Authorization as string).slice(7);
    const up = await t.http
      .post('/api/v1/upload')
      .set(...bearer(token))
      .attach('file', await png(2), 'a.png')
      .expect(200);
    expect(up.body.expires_at).not.toBeNull();
    const other = await makeKey(t);
    expectError(await sharex(`?key_id=${other.keyId}`), 404, 'not_found');
    expectError(await sharex('?key_id=nope'), 400, 'bad_request');
  });

  it('should refuse without X-CSRF-Token (it makes a key), to an API key, and anonymously', async () => {
    expectError(await t.http.get('/api/v1/clients/sharex').set('Cookie', s.cookie), 403, 'forbidden');
    const key = await makeKey(t, user);
    expectError(await t.http.get('/api/v1/clients/sharex').set(...bearer(key.token)), 403, 'forbidden');
    expectError(await t.http.get('/api/v1/clients/sharex'), 401, 'unauthorized');
  });

  it('should answer the .sxcu with no-store: it holds a token', async () => {
    const res = await sharex();
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
  });

  it('should answer a HEAD with 405 and make no key (a GET is what makes one)', async () => {
    const keys = async () =>
      (await sql(t, 'select count(*)::int as n from api_keys where user_id = $1', [user.id]))[0].n as number;
    const before = await keys();
    const res = await t.http
      .head('/api/v1/clients/sharex')
      .set('Cookie', s.cookie)
      .set('X-CSRF-Token', s.csrf);
    expect(res.status).toBe(405);
    expect(res.headers.allow).toBe('GET');
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(await keys()).toBe(before);
    // A wrong method names GET alone: HEAD is refused here.
    const post = await t.http
      .post('/api/v1/clients/sharex')
      .set('Cookie', s.cookie)
      .set('X-CSRF-Token', s.csrf);
    expectError(post, 405, 'method_not_allowed');
    expect(post.headers.allow).toBe('GET');
  });

  it('should answer a curl snippet for this server holding no key', async () => {
    const key = await makeKey(t, user);
    const keyed = await t.http
      .get('/api/v1/clients/curl')
      .set(...bearer(key.token))
      .expect(200);
    expect(keyed.text).toContain('Authorization: Bearer $FIXITFY_TOKEN');
    const res = await t.http.get('/api/v1/clients/curl').set('Cookie', s.cookie).expect(200);
    expect(res.headers['content-type']).toMatch(/^text\/x-shellscript/);
    expect(res.text).toContain("'http://upload.test/api/v1/upload'");
    expect(res.text).toContain('Authorization: Bearer $FIXITFY_TOKEN');
    expect(res.text).toContain('-F "file=@$1"');
    expect(res.text).not.toMatch(/fxf_[0-9a-f]{8}/);
    expectError(await t.http.get('/api/v1/clients/curl'), 401, 'unauthorized');
  });
});

import { createHash } from 'node:crypto';
import { png } from '../fixtures/sample-images';
import { bearer, makeKey, type TestKey } from '../setup/factories';
import { createTestApp, type TestApp } from '../setup/test-app';
import { ApiKeysService } from '../../src/modules/api-keys/api-keys.service';
import { expectError } from '../setup/envelope';

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('HEAD/GET /api/v1/uploads/by-hash/:sha256 (e2e)', () => {
  let t: TestApp;
  let key: TestKey;
  let bytes: Buffer;
  let filename: string;

  beforeAll(async () => {
    t = await createTestApp({ env: { RATE_LIMIT_MANAGEMENT_PER_MINUTE: '40' } });
    key = await makeKey(t);
    bytes = await png(1, 20, 10);
    const res = await t.http
      .post('/api/v1/upload')
      .set(...bearer(key.token))
      .attach('file', bytes, 'a.png')
      .expect(200);
    filename = res.body.filename as string;
  });
  afterAll(() => t.close());

  it('should answer HEAD 200 without a body when the caller has the content live, under the management limit', async () => {
    const res = await t.http
      .head(`/api/v1/uploads/by-hash/${sha256(bytes)}`)
      .set(...bearer(key.token))
      .expect(200);
    expect(res.text ?? '').toBe('');
    expect(res.headers['x-ratelimit-limit']).toBe('40');
  });

  it('should answer GET 200 with the upload’s metadata, also for an upper-case hash', async () => {
    const res = await t.http
      .get(`/api/v1/uploads/by-hash/${sha256(bytes).toUpperCase()}`)
      .set(...bearer(key.token))
      .expect(200);
    expect(res.body.ok).toBe(true);
    expect(res.body.upload).toMatchObject({
      filename,
      hash_sha256: sha256(bytes),
      mime: 'image/png',
      width: 20,
      height: 10,
    });
  });

  it('should answer 404 not_found for content the caller does not have, or another user has', async () => {
    const other = await makeKey(t);
    expectError(
      await t.http.get(`/api/v1/uploads/by-hash/${sha256(bytes)}`).set(...bearer(other.token)),
      404,
      'not_found',
    );
    expect(
      (await t.http.head(`/api/v1/uploads/by-hash/${'0'.repeat(64)}`).set(...bearer(key.token))).status,
    ).toBe(404);
  });

  it('should answer 404 once the upload is deleted', async () => {
    const other = await png(2);
    const up = await t.http
      .post('/api/v1/upload')
      .set(...bearer(key.token))
      .attach('file', other, 'b.png')
      .expect(200);
    await t.http
      .get(`/api/v1/uploads/by-hash/${sha256(other)}`)
      .set(...bearer(key.token))
      .expect(200);
    await t.http
      .delete(`/api/v1/uploads/${up.body.filename}`)
      .set(...bearer(key.token))
      .expect(200);
    expectError(
      await t.http.get(`/api/v1/uploads/by-hash/${sha256(other)}`).set(...bearer(key.token)),
      404,
      'not_found',
    );
  });

  it.each(['abc', '0'.repeat(63), 'g'.repeat(64), '0'.repeat(65), `${'0'.repeat(62)}%20`])(
    'should answer 400 bad_request for the malformed hash %j',
    async (hash) => {
      expectError(
        await t.http.get(`/api/v1/uploads/by-hash/${hash}`).set(...bearer(key.token)),
        400,
        'bad_request',
      );
      expect((await t.http.head(`/api/v1/uploads/by-hash/${hash}`).set(...bearer(key.token))).status).toBe(
        400,
      );
    },
  );

  it('should need the read scope, and refuse ut_ tokens and anonymous callers', async () => {
    const narrowed = await t.app
      .get(ApiKeysService)
      .create(key.user.id, 'ci', undefined, { scopes: ['upload'] });
    const res = await t.http.get(`/api/v1/uploads/by-hash/${sha256(bytes)}`).set(...bearer(narrowed.token));
    expectError(res, 403, 'forbidden');
    expect(res.body.error).toContain('"read"');
    const ut = await t.http
      .post('/api/v1/upload-token')
      .set(...bearer(key.token))
      .expect(200);
    expectError(
      await t.http.get(`/api/v1/uploads/by-hash/${sha256(bytes)}`).set(...bearer(ut.body.token)),
      403,
      'forbidden',
    );
    expectError(await t.http.get(`/api/v1/uploads/by-hash/${sha256(bytes)}`), 401, 'unauthorized');
  });

  it('should answer 429 rate_limit past the management limit', async () => {
    const k = await makeKey(t);
    let last = 0;
    for (let i = 0; i < 41; i++) {
      last = (await t.http.head(`/api/v1/uploads/by-hash/${sha256(bytes)}`).set(...bearer(k.token))).status;
    }
    expect(last).toBe(429);
    expectError(
      await t.http.get(`/api/v1/uploads/by-hash/${sha256(bytes)}`).set(...bearer(k.token)),
      429,
      'rate_limit',
    );
  });
});

import { createHmac } from 'node:crypto';
import { jpeg, png, SVG } from '../fixtures/sample-images';
import { sql } from '../setup/db';
import { bearer, makeKey, type TestKey } from '../setup/factories';
import { listen, multipartFile, openRequest } from '../setup/raw-http';
import { createTestApp, type TestApp } from '../setup/test-app';
import { uploadTokenSigningKey } from '../../src/modules/api-keys/upload-token';
import { expectError } from '../setup/envelope';

const LIMITS = { UPLOADS_IN_FLIGHT_PER_KEY: '16', RATE_LIMIT_UPLOADS_PER_MINUTE: '1000' };

describe('Constrained upload tokens (e2e)', () => {
  let a: TestApp;
  let b: TestApp;
  let key: TestKey;

  beforeAll(async () => {
    a = await createTestApp({ env: LIMITS });
    b = await createTestApp({ shareWith: a, env: LIMITS });
    key = await makeKey(a);
  });
  afterAll(async () => {
    await b.close();
    await a.close();
  });

  const mint = async (body: object): Promise<string> => {
    const res = await a.http
      .post('/api/v1/upload-token')
      .set(...bearer(key.token))
      .send(body);
    expect(res.status).toBe(200);
    return res.body.token as string;
  };

  const upload = (t: TestApp, token: string, bytes: Buffer, tags?: string) => {
    const req = t.http
      .post('/api/v1/upload')
      .set(...bearer(token))
      .attach('file', bytes, 'a.img');
    return tags === undefined ? req : req.field('tags', tags);
  };

  it.each([
    [{ max_bytes: 0 }],
    [{ max_bytes: 1.5 }],
    [{ max_bytes: '100' }],
    [{ max_bytes: 2 ** 31 }],
    [{ allowed_types: [] }],
    [{ allowed_types: ['bmp'] }],
    [{ allowed_types: ['png', 'png'] }],
    [{ allowed_types: 'png' }],
    [{ tags: [] }],
    [{ tags: ['no spaces'] }],
    [{ tags: Array.from({ length: 11 }, (_, i) => `t${i}`) }],
    [{ tags: [7] }],
    [{ max_uploads: 0 }],
    [{ max_uploads: 2.5 }],
    [{ max_uploads: null }],
    [{ other: 1 }],
  ])('should refuse %j with 400 bad_request', async (body) => {
    const res = await a.http
      .post('/api/v1/upload-token')
      .set(...bearer(key.token))
      .send(body);
    expectError(res, 400, 'bad_request');
  });

  it('should refuse a file over max_bytes with 413 too_large and accept one of exactly max_bytes', async () => {
    const small = await png(1);
    const token = await mint({ max_bytes: small.length });
    await upload(a, token, small).expect(200);
    const bigger = await png(2, 64, 64);
    expect(bigger.length).toBeGreaterThan(small.length);
    const res = await upload(a, token, bigger);
    expectError(res, 413, 'too_large');
    expect(res.body.error).toContain(`${small.length} bytes`);
    const [row] = await sql(
      a,
      'select count(*)::int as n from uploads where sha256 = encode(sha256($1), $2)',
      [bigger, 'hex'],
    );
    expect(row.n).toBe(0);
  });

  it('should refuse a declared Content-Length over max_bytes before reading the body', async () => {
    const token = await mint({ max_bytes: 1000 });
    const server = await listen(a.app);
    try {
      const body = multipartFile(Buffer.alloc(3 * 1024 * 1024, 1));
      const { req, response } = openRequest(server.port, '/api/v1/upload', {
        Authorization: `Bearer ${token}`,
        'Content-Type': body.contentType,
        'Content-Length': body.length,
      });
      // Only the head is sent: the answer must come without the rest of the body.
      req.write(body.head);
      const res = await response;
      req.destroy();
      expectError(res, 413, 'too_large');
      expect(res.body.error).toContain('1000 bytes');
    } finally {
      await server.close();
    }
  });

  it('should refuse a type outside allowed_types with 415 unsupported_type, also on a dedupe hit', async () => {
    const own = await png(3);
    await upload(a, key.token, own).expect(200);
    const token = await mint({ allowed_types: ['jpeg'] });
    const res = await upload(a, token, await png(4));
    expectError(res, 415, 'unsupported_type');
    expect(res.body.error).toContain('jpeg');
    expectError(await upload(a, token, own), 415, 'unsupported_type');
    const ok = await upload(a, token, await jpeg(5)).expect(200);
    expect(ok.body.mime).toBe('image/jpeg');
    // An unsupported type is still the contract's answer.
    expectError(await upload(a, token, SVG), 415, 'unsupported_type');
  });

  it('should force the token tags onto every upload, beside the upload’s own', async () => {
    const token = await mint({ tags: ['CI', 'build-42'] });
    const res = await upload(a, token, await png(6), 'mine').expect(200);
    const detail = await a.http
      .get(`/api/v1/uploads/${res.body.filename}`)
      .set(...bearer(key.token))
      .expect(200);
    expect(detail.body.upload.tags.sort()).toEqual(['build-42', 'ci', 'mine']);
    const eleven = Array.from({ length: 9 }, (_, i) => `own${i}`).join(',');
    expectError(await upload(a, token, await png(7), eleven), 400, 'bad_request');
  });

  it('should let exactly max_uploads uploads succeed when many race on two instances', async () => {
    const token = await mint({ max_uploads: 3 });
    const images = await Promise.all(Array.from({ length: 10 }, (_, i) => png(100 + i)));
    const results = await Promise.all(images.map((img, i) => upload(i % 2 ? b : a, token, img)));
    const ok = results.filter((r) => r.status === 200);
    const refused = results.filter((r) => r.status !== 200);
    expect(ok).toHaveLength(3);
    expect(refused).toHaveLength(7);
    for (const r of refused) {
      expectError(r, 403, 'forbidden');
      expect(r.body.error).toContain('used up');
    }
    expectError(await upload(b, token, await png(120)), 403, 'forbidden');
  });

  it('should not use a token up with a failed upload (the use is given back)', async () => {
    const token = await mint({ max_uploads: 1 });
    expectError(await upload(a, token, SVG), 415, 'unsupported_type');
    expectError(await upload(b, token, Buffer.alloc(0)), 400, 'empty_file');
    await upload(b, token, await png(130)).expect(200);
    expectError(await upload(a, token, await png(131)), 403, 'forbidden');
  });

  it('should keep verifying a token minted the old way, without constraints', async () => {
    const payload = Buffer.from(
      JSON.stringify({ u: key.user.id, k: key.keyId, e: Date.now() + 600_000 }),
    ).toString('base64url');
    const signature = createHmac('sha256', uploadTokenSigningKey(a.config.secretKey))
      .update(payload)
      .digest('base64url');
    const res = await upload(b, `ut_${payload}.${signature}`, await png(140)).expect(200);
    expect(res.body.mime).toBe('image/png');
  });

  it('should refuse a token whose constraints were edited (the signature covers them) with 401', async () => {
    const token = await mint({ max_uploads: 1, max_bytes: 10 });
    const [payload, signature] = token.slice(3).split('.');
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
    delete claims.n;
    delete claims.mb;
    const forged = `ut_${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${signature}`;
    expectError(await upload(a, forged, await png(150)), 401, 'unauthorized');
  });
});

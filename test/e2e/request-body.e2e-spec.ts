import type { AddressInfo } from 'node:net';
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import { Client } from 'pg';
import { NOT_JSON_MESSAGE } from '../../src/common/http/request-body';
import { makeKey } from '../setup/factories';
import { capturedLogLines } from '../setup/log-lines';
import { createTestApp, type TestApp } from '../setup/test-app';

/**
 * "JSON in" (API.md Conventions) and "every error, from every endpoint …, including 413 from the body parser, has the
 * envelope": a request body is JSON or refused, and a body that cannot be read is answered, logged and counted like
 * any other error, with its request id.
 */
describe('Request bodies (e2e)', () => {
  const { lines, env, overrides } = capturedLogLines();
  const METRICS_TOKEN = 'body-metrics-token-0123456789';
  let t: TestApp;
  let key: string;

  beforeAll(async () => {
    t = await createTestApp({ env: { ...env, METRICS_TOKEN }, overrides });
    key = (await makeKey(t)).token;
  });
  afterAll(() => t.close());

  /** The request's log line, found by the id its answer carried. */
  const logLineOf = (requestId: string): Record<string, any> | undefined =>
    lines.find((l) => l.req?.id === requestId && l.msg === 'request completed');

  /** An answer in the envelope with its request id, and its log line with the same id, status and code. */
  function expectLoggedEnvelope(
    res: { status: number; body: unknown; headers: Record<string, unknown> },
    status: number,
    code: string,
    error: string | RegExp,
  ): void {
    expect(res.status).toBe(status);
    expect(res.body).toEqual({
      ok: false,
      code,
      error: typeof error === 'string' ? error : expect.stringMatching(error),
    });
    const id = res.headers['x-request-id'];
    expect(id).toEqual(expect.stringMatching(/^[0-9a-f-]{36}$/));
    const line = logLineOf(id as string);
    expect(line).toMatchObject({ code, res: { statusCode: status } });
  }

  it.each([
    ['gzip', 'not gzip at all'],
    ['deflate', 'not deflate either'],
    ['br', '{}'],
  ])(
    'should answer a %s body that does not decompress with 400 bad_request, its request id, a log line',
    async (encoding, body) => {
      const res = await t.http
        .post('/api/v1/auth/login')
        .set('Content-Type', 'application/json')
        .set('Content-Encoding', encoding)
        .send(body);
      expectLoggedEnvelope(
        res,
        400,
        'bad_request',
        'The request body does not decompress as its Content-Encoding says.',
      );
    },
  );

  it('should read a body that is compressed as it says', async () => {
    // Over a plain fetch: superagent handles a Content-Encoding of its own on what it sends.
    const url = `http://127.0.0.1:${(t.app.getHttpServer().address() as AddressInfo).port}/api/v1/upload-token`;
    for (const [encoding, bytes] of [
      ['gzip', gzipSync(JSON.stringify({ ttl_seconds: 120 }))],
      ['deflate', deflateSync(JSON.stringify({ ttl_seconds: 120 }))],
      ['br', brotliCompressSync(JSON.stringify({ ttl_seconds: 120 }))],
    ] as const) {
      const res = await fetch(url, {
        method: 'POST',
        headers: {
          Authorization: `Bearer ${key}`,
          'Content-Type': 'application/json',
          'Content-Encoding': encoding,
        },
        body: bytes,
      });
      const body = (await res.json()) as { expires_at: string };
      expect({ encoding, status: res.status }).toEqual({ encoding, status: 200 });
      const ttl = (Date.parse(body.expires_at) - Date.now()) / 1000;
      expect(ttl).toBeGreaterThan(100);
      expect(ttl).toBeLessThanOrEqual(120);
    }
  });

  it('should answer a Content-Encoding it does not read with 400 bad_request', async () => {
    const res = await t.http
      .post('/api/v1/auth/login')
      .set('Content-Type', 'application/json')
      .set('Content-Encoding', 'compress')
      .send('{}');
    expectLoggedEnvelope(res, 400, 'bad_request', /Content-Encoding this server does not read/);
  });

  it('should answer malformed JSON and a too-large body with their request id and a log line', async () => {
    const bad = await t.http.post('/api/v1/auth/login').set('Content-Type', 'application/json').send('{bad');
    expectLoggedEnvelope(bad, 400, 'bad_request', 'The request body is not valid JSON.');
    const big = await t.http
      .post('/api/v1/auth/login')
      .set('Content-Type', 'application/json')
      .send(JSON.stringify({ email: 'x'.repeat(70_000) }));
    expectLoggedEnvelope(big, 413, 'too_large', 'The request body is too large.');
  });

  it('should count a body it could not read in the error metrics', async () => {
    const scrape = async (): Promise<number> => {
      const text = (await t.http.get('/metrics').set('Authorization', `Bearer ${METRICS_TOKEN}`).expect(200))
        .text;
      const line = text.split('\n').find((l) => l.startsWith('fixitfy_http_errors_total{code="bad_request"'));
      return line ? Number(line.split(' ').pop()) : 0;
    };
    const before = await scrape();
    await t.http.post('/api/v1/auth/login').set('Content-Type', 'application/json').send('{bad').expect(400);
    expect(await scrape()).toBe(before + 1);
  });

  it('should refuse a form, so that no page elsewhere can register or sign a visitor in (login CSRF)', async () => {
    const email = `form-${Date.now()}@example.com`;
    for (const path of ['/api/v1/auth/register', '/api/v1/auth/login']) {
      const res = await t.http
        .post(path)
        .set('Content-Type', 'application/x-www-form-urlencoded')
        .send(`email=${encodeURIComponent(email)}&password=correct+horse+battery`);
      expectLoggedEnvelope(res, 400, 'bad_request', NOT_JSON_MESSAGE);
      expect(res.headers['set-cookie']).toBeUndefined();
    }
    const pg = new Client({ connectionString: t.databaseUrl });
    await pg.connect();
    try {
      const { rows } = await pg.query('select 1 from users where email = $1', [email]);
      expect(rows).toEqual([]);
    } finally {
      await pg.end();
    }
  });

  it.each([
    ['text/plain', 'text/plain', '{"ttl_seconds":60}'],
    [
      'multipart',
      'multipart/form-data; boundary=x',
      '--x\r\nContent-Disposition: form-data; name="ttl_seconds"\r\n\r\n60\r\n--x--\r\n',
    ],
    ['an untyped', undefined, '{"ttl_seconds":60}'],
  ])(
    'should refuse a %s body where JSON is due, instead of ignoring it (a token of an hour for one of a minute)',
    async (_what, type, body) => {
      const req = t.http.post('/api/v1/upload-token').set('Authorization', `Bearer ${key}`);
      // Without a type, superagent would label a string as a form: the header is removed after serialising.
      const res = await (type ? req.set('Content-Type', type) : req.unset('Content-Type')).send(
        Buffer.from(body),
      );
      expectLoggedEnvelope(res, 400, 'bad_request', NOT_JSON_MESSAGE);
    },
  );

  it('should refuse a JSON array where the body is an object', async () => {
    const res = await t.http
      .post('/api/v1/upload-token')
      .set('Authorization', `Bearer ${key}`)
      .set('Content-Type', 'application/json')
      .send('[]');
    expectLoggedEnvelope(res, 400, 'bad_request', 'The request body must be a JSON object.');
  });

  it('should still take a POST with no body at all (the defaults apply), and a JSON body with a charset', async () => {
    const empty = await t.http.post('/api/v1/upload-token').set('Authorization', `Bearer ${key}`).expect(200);
    const ttl = (Date.parse((empty.body as { expires_at: string }).expires_at) - Date.now()) / 1000;
    expect(ttl).toBeGreaterThan(3500);
    await t.http
      .post('/api/v1/upload-token')
      .set('Authorization', `Bearer ${key}`)
      .set('Content-Type', 'application/json; charset=utf-8')
      .send('{"ttl_seconds":60}')
      .expect(200);
  });
});

import { Logger } from '@nestjs/common';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { tempFiles } from '../setup/db';
import { png } from '../fixtures/sample-images';
import { bearer, login, makeKey, makeUser } from '../setup/factories';
import { multipartFile, openRequest } from '../setup/raw-http';
import { appRoutes } from '../setup/routes';
import { createTestApp, type TestApp } from '../setup/test-app';
import { waitFor } from '../setup/wait';

const MiB = 1024 * 1024;

interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: Record<string, unknown>;
  text: string;
}

/** Writes raw bytes to the app's port and reads until the server closes the connection. */
function rawExchange(t: TestApp, request: string | Buffer): Promise<RawAnswer> {
  const port = (t.app.getHttpServer().address() as AddressInfo).port;
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const [head, ...rest] = text.split('\r\n\r\n');
      const [statusLine, ...lines] = head.split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const i = line.indexOf(':');
        headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
      }
      const bodyText = rest.join('\r\n\r\n');
      let body: Record<string, unknown> = {};
      try {
        body = JSON.parse(bodyText) as Record<string, unknown>;
      } catch {
        body = {};
      }
      resolve({ status: Number(statusLine.split(' ')[1] ?? 0), headers, body, text });
    });
    socket.write(request);
  });
}

describe('HTTP edges: size boundary, deep JSON, timeouts, malformed HTTP (e2e)', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp({
      env: {
        // Short for item 7's stalled body, yet long enough that supertest streaming item 4's 20 MiB on a busy machine
        // (the full suite, both cores taken) never pauses that long: at 600 ms it once got 400 "stalled", not 413.
        UPLOAD_IDLE_TIMEOUT_MS: '3000',
        HTTP_HEADERS_TIMEOUT_MS: '600',
        RATE_LIMIT_UPLOADS_PER_MINUTE: '1000',
      },
    });
  });
  afterAll(() => t.close());

  describe('item 4: the 20 MiB boundary', () => {
    it('should accept a file of exactly 20 × 1024 × 1024 bytes and refuse one byte more with 413', async () => {
      const { token } = await makeKey(t);
      const image = await png(4001, 64, 64);
      // PNG decoders stop at IEND: trailing bytes pad the file to the exact size without breaking it.
      const exact = Buffer.concat([image, Buffer.alloc(20 * MiB - image.length, 0)]);
      expect(exact.length).toBe(20 * MiB);
      const ok = await t.http
        .post('/api/v1/upload')
        .set(...bearer(token))
        .attach('file', exact, 'a.png');
      expect({ status: ok.status, code: ok.body.code }).toEqual({ status: 200, code: undefined });
      expect(ok.body).toMatchObject({ ok: true, mime: 'image/png', width: 64, height: 64 });

      const over = Buffer.concat([exact, Buffer.from([0])]);
      const refused = await t.http
        .post('/api/v1/upload')
        .set(...bearer(token))
        .attach('file', over, 'a.png');
      expect(refused.status).toBe(413);
      expect(refused.body).toEqual({ ok: false, code: 'too_large', error: expect.any(String) });
      await waitFor('temp files removed', () => tempFiles(t).length === 0);
    });
  });

  describe('item 5: deep JSON', () => {
    it('should answer 400 bad_request on every route that takes a body, before any recursive walk, without an error log', async () => {
      const deep = '['.repeat(1500) + ']'.repeat(1500);
      const deepObject = '{"a":'.repeat(1500) + '1' + '}'.repeat(1500);
      const s = await login(t, await makeUser(t, 'admin'));
      const errors = jest.spyOn(Logger.prototype, 'error');
      const mismatches: string[] = [];
      let checked = 0;
      let routesWithBody = 0;
      try {
        for (const route of appRoutes(t.app)) {
          if (['get', 'head'].includes(route.method)) {
            continue;
          }
          routesWithBody++;
          const path = route.path
            .replace('{filename}', 'FIXITFY-aaaaaaaaaaaa.png')
            .replace('{token}', '0'.repeat(64))
            .replace(/\{\w+\}/g, '00000000-0000-4000-8000-000000000000');
          for (const body of [deep, deepObject]) {
            for (const headers of [{}, { Cookie: s.cookie, 'X-CSRF-Token': s.csrf }]) {
              const res = await (t.http as unknown as Record<string, (p: string) => any>)
                [route.method](path)
                .set(headers)
                .set('Content-Type', 'application/json')
                .send(body);
              checked++;
              if (res.status !== 400 || res.body.code !== 'bad_request' || !/nested/.test(res.body.error)) {
                mismatches.push(`${route.method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
              }
            }
          }
        }
        expect(errors).not.toHaveBeenCalled();
      } finally {
        errors.mockRestore();
      }
      expect(mismatches).toEqual([]);
      expect(routesWithBody).toBeGreaterThanOrEqual(15);
      expect(checked).toBe(4 * routesWithBody);
      // A normal body still works.
      const ok = await t.http
        .post('/api/v1/auth/login')
        .send({ email: 'x@example.com', password: 'nope nope nope' });
      expect(ok.status).toBe(401);
    });
  });

  describe('item 7: timeouts', () => {
    it('should cut off an upload that declares a longer body and stalls: 400 envelope, connection closed, temp file removed', async () => {
      const { token } = await makeKey(t);
      const port = (t.app.getHttpServer().address() as AddressInfo).port;
      // Declared over BODY_MEMORY_MAX_BYTES: no memory is lent to it past its first MB.
      const parts = multipartFile(Buffer.alloc(9 * MiB, 1));
      const { req, response } = openRequest(port, '/api/v1/upload', {
        Authorization: `Bearer ${token}`,
        'Content-Type': parts.contentType,
        'Content-Length': parts.length,
      });
      req.write(parts.head);
      // Past the 1 MB an upload is held in memory: the rest goes to a temp file.
      req.write(parts.file.subarray(0, 1.5 * MiB));
      // Wait until the temp file exists, then stall.
      await waitFor('temp file', () => tempFiles(t).length > 0);
      const res = await response;
      expect(res.status).toBe(400);
      expect(res.body).toEqual({ ok: false, code: 'bad_request', error: expect.stringMatching(/stalled/) });
      expect(res.headers.connection).toBe('close');
      expect(tempFiles(t)).toEqual([]);
      req.destroy();
    });

    it('should answer the envelope to a client that never finishes its headers', async () => {
      const res = await rawExchange(t, 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ');
      expect(res.status).toBe(400);
      expect(res.body).toEqual({
        ok: false,
        code: 'bad_request',
        error: 'The request was not received in time.',
      });
    });
  });

  describe('Expect: 100-continue (curl sends it for bodies over 1 MB)', () => {
    /**
     * POST with `Expect: 100-continue`, writing the body only once the server says 100 Continue (as curl does when it
     * gets it in time); resolves with the answer and whether a 100 came.
     */
    async function expecting(
      path: string,
      headers: Record<string, string | number>,
      body: Buffer,
    ): Promise<{ status: number; body: Record<string, unknown>; continued: boolean }> {
      const port = (t.app.getHttpServer().address() as AddressInfo).port;
      const { req, response } = openRequest(port, path, { ...headers, Expect: '100-continue' });
      let continued = false;
      req.on('continue', () => {
        continued = true;
        req.end(body);
      });
      req.flushHeaders();
      const res = await response;
      req.destroy();
      return { status: res.status, body: res.body, continued };
    }

    const upload = (token: string, bytes: Buffer, extra: Record<string, string | number> = {}) => {
      const parts = multipartFile(bytes);
      return expecting(
        '/api/v1/upload',
        {
          Authorization: `Bearer ${token}`,
          'Content-Type': parts.contentType,
          'Content-Length': parts.length,
          ...extra,
        },
        Buffer.concat([parts.head, parts.file, parts.tail]),
      );
    };

    it('should refuse an upload with a bad key before asking for its body', async () => {
      const res = await upload(`fxf_${'0'.repeat(40)}`, Buffer.alloc(5 * MiB, 1));
      expect(res).toEqual({
        status: 401,
        body: { ok: false, code: 'unauthorized', error: expect.any(String) },
        continued: false,
      });
    });

    it('should refuse an upload declared larger than its upload token takes, before asking for its body', async () => {
      const { token: key } = await makeKey(t);
      const minted = await t.http
        .post('/api/v1/upload-token')
        .set(...bearer(key))
        .send({ max_bytes: 1000 });
      expect(minted.status).toBe(200);
      const res = await upload(minted.body.token as string, Buffer.alloc(5 * MiB, 1));
      expect(res).toEqual({
        status: 413,
        body: { ok: false, code: 'too_large', error: expect.any(String) },
        continued: false,
      });
    });

    it('should ask for the body of an upload that passed its checks, and take it', async () => {
      const { token } = await makeKey(t);
      const image = await png(4101, 32, 32);
      const res = await upload(token, Buffer.concat([image, Buffer.alloc(2 * MiB - image.length, 0)]));
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ ok: true, mime: 'image/png', width: 32, height: 32 });
      expect(res.continued).toBe(true);
    });

    it('should ask at once for the body of any other request, whose body is read before its checks', async () => {
      const user = await makeUser(t);
      const body = Buffer.from(JSON.stringify({ email: user.email, password: 'not the password' }));
      const res = await expecting(
        '/api/v1/auth/login',
        { 'Content-Type': 'application/json', 'Content-Length': body.length },
        body,
      );
      expect(res).toEqual({
        status: 401,
        body: { ok: false, code: 'unauthorized', error: expect.any(String) },
        continued: true,
      });
    });
  });

  describe('item 8: malformed HTTP gets the envelope', () => {
    const cases: [string, string, number, string][] = [
      [
        'a bad chunk size',
        'POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n',
        400,
        'bad_request',
      ],
      [
        'Content-Length with Transfer-Encoding',
        'POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n',
        400,
        'bad_request',
      ],
      [
        'two Content-Lengths',
        'POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{} ',
        400,
        'bad_request',
      ],
      [
        'oversized headers',
        `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
        431,
        'header_too_large',
      ],
      [
        'an oversized URL',
        `GET /healthz?${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
        431,
        'header_too_large',
      ],
      ['garbage instead of a request line', 'HELLO\r\n\r\n', 400, 'bad_request'],
    ];

    it.each(cases)('should answer %s with the JSON envelope', async (_name, request, status, code) => {
      const res = await rawExchange(t, request);
      expect(res.status).toBe(status);
      expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
      expect(res.headers.connection).toBe('close');
      expect(res.body).toEqual({ ok: false, code, error: expect.any(String) });
      expect(Number(res.headers['content-length'])).toBe(Buffer.byteLength(JSON.stringify(res.body)));
    });
  });
});

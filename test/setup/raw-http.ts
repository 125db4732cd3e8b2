import type { INestApplication } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, request, type ClientRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Record<string, unknown>;
}

export interface Listening {
  port: number;
  close: () => Promise<void>;
}

/** Serves the app's express instance on a real loopback port (for requests whose body a test writes by hand). */
export async function listen(app: INestApplication): Promise<Listening> {
  const server: Server = createServer(app.getHttpAdapter().getInstance());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The pieces of a multipart/form-data body with one `file` part, to stream in chunks. */
export function multipartFile(bytes: Buffer): {
  contentType: string;
  head: Buffer;
  file: Buffer;
  tail: Buffer;
  length: number;
} {
  const boundary = `----fxf${randomBytes(8).toString('hex')}`;
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n` +
      'Content-Type: application/octet-stream\r\n\r\n',
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  return {
    contentType: `multipart/form-data; boundary=${boundary}`,
    head,
    file: bytes,
    tail,
    length: head.length + bytes.length + tail.length,
  };
}

/**
 * Starts a POST whose body the caller writes (req.write / req.end). `response` settles as soon as the server answers,
 * even if the body was never finished.
 */
export function openRequest(
  port: number,
  path: string,
  headers: Record<string, string | number>,
): { req: ClientRequest; response: Promise<RawResponse> } {
  const req = request({ host: '127.0.0.1', port, path, method: 'POST', headers });
  const response = new Promise<RawResponse>((resolve, reject) => {
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
        });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
  });
  return { req, response };
}

/**
 * openRequest for POST /api/v1/upload of a multipartFile body with an API key or upload token; `declared: false` sends
 * it chunked, with no Content-Length (so no memory is lent to it past its first MB: ImagePool.bodyMemory).
 */
export function openUpload(
  port: number,
  token: string,
  body: { contentType: string; length: number },
  { declared = true }: { declared?: boolean } = {},
): { req: ClientRequest; response: Promise<RawResponse> } {
  return openRequest(port, '/api/v1/upload', {
    Authorization: `Bearer ${token}`,
    'Content-Type': body.contentType,
    // Without it the body goes chunked, of no declared length (as a client streaming from a pipe sends it).
    ...(declared ? { 'Content-Length': body.length } : {}),
  });
}

/** Resolves once `check` holds, polling every few milliseconds (an event the server gives no other signal for). */
export async function until(
  check: () => boolean | Promise<boolean>,
  what: string,
  tries = 500,
): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await check()) {
      return;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`gave up waiting for ${what}`);
}

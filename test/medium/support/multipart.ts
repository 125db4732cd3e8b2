import type { Request } from 'express';
import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';

/** A request carrying one multipart/form-data "file" part, as the upload pipeline reads it from Express. */
export function multipartRequest(file: Buffer, filename = 'image.png'): Request {
  const boundary = `----medium${randomBytes(8).toString('hex')}`;
  const body = Buffer.concat([
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${filename}"\r\n` +
        'Content-Type: application/octet-stream\r\n\r\n',
    ),
    file,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  const stream = new PassThrough();
  const headers = {
    'content-type': `multipart/form-data; boundary=${boundary}`,
    'content-length': String(body.length),
  };
  const req = Object.assign(stream, {
    headers,
    setTimeout: () => req,
    header: (name: string) => headers[name.toLowerCase() as keyof typeof headers],
    ip: '127.0.0.1',
    socket: { remoteAddress: '127.0.0.1' },
  });
  stream.end(body);
  return req as unknown as Request;
}

import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';

/** What a caller's X-Request-Id must look like to be kept (a generated UUID looks like it too). */
export const SAFE_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** A request id for every request: the caller's X-Request-Id if it is sane, else a new UUID; echoed back. */
export function requestId(req: IncomingMessage, res: ServerResponse): string {
  const id = requestIdOf(req);
  res.setHeader('X-Request-Id', id);
  return id;
}

/** The id requestId() gives, for a caller that writes its headers itself. */
export function requestIdOf(req: IncomingMessage): string {
  const incoming = req.headers['x-request-id'];
  return typeof incoming === 'string' && SAFE_ID.test(incoming) ? incoming : randomUUID();
}

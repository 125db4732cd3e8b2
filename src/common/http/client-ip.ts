import type { Request } from 'express';

/** The client's address: Express's req.ip, which honours X-Forwarded-For only when TRUST_PROXY is on. */
export function clientIp(req: Request): string {
  return req.ip ?? req.socket.remoteAddress ?? 'unknown';
}

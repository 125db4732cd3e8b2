import type { IncomingMessage } from 'node:http';

/** The client's address: Express's req.ip, which honours X-Forwarded-For only when TRUST_PROXY is on. */
export function clientIp(req: IncomingMessage & { ip?: string }): string {
  return req.ip ?? req.socket.remoteAddress ?? 'unknown';
}

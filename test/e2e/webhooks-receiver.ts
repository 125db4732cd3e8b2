import { createHmac, timingSafeEqual } from 'node:crypto';
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  rawBody: Buffer;
}

/** Answers the n-th request (0-based); the default answers 200. */
export type ReceiverHandler = (n: number, req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

/** A real webhook receiver on 127.0.0.1 that keeps every request it got, raw body included. */
export class Receiver {
  private constructor(
    private readonly server: Server,
    readonly port: number,
    readonly requests: ReceivedRequest[],
  ) {}

  static async start(handler: ReceiverHandler = (_n, _req, res) => void res.end('ok')): Promise<Receiver> {
    const requests: ReceivedRequest[] = [];
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const n = requests.length;
        requests.push({
          method: req.method ?? '',
          path: req.url ?? '',
          headers: req.headers,
          rawBody: Buffer.concat(chunks),
        });
        void handler(n, req, res);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return new Receiver(server, (server.address() as AddressInfo).port, requests);
  }

  url(path = '/hook'): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** The published Node snippet (doc section 10), line for line. */
export function verifyPublished(
  req: { headers: Record<string, string | string[] | undefined> },
  rawBody: Buffer,
  SIGNING_SECRET: string,
): boolean {
  const received = (req.headers['x-fixitfy-signature'] as string).split('=')[1];
  const expected = createHmac('sha256', SIGNING_SECRET).update(rawBody).digest('hex');
  const valid = timingSafeEqual(Buffer.from(received), Buffer.from(expected));
  return valid;
}

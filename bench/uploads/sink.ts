/**
 * The uploads suite's client floor (informational rows): a bare `node:http` server in a process of its own that reads
 * an upload's whole body and answers a small JSON at once, with nothing else in the way: no parsing, no hashing, no
 * image work, no database. What the same request costs there is what the client and the connection cost beside the
 * service's part (rows.ts). The parent forks this file and waits for the port in the 'listening' message.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SinkListening {
  kind: 'listening';
  port: number;
}

if (require.main === module) {
  const server = createServer((req, res) => {
    let bytes = 0;
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
    });
    req.on('end', () => {
      res.setHeader('Content-Type', 'application/json; charset=utf-8');
      res.end(JSON.stringify({ received: bytes }));
    });
  });
  server.listen(0, '127.0.0.1', () => {
    const { port } = server.address() as AddressInfo;
    process.send?.({ kind: 'listening', port } satisfies SinkListening);
  });
  // The parent ends this process by disconnecting (or dies, which disconnects too).
  process.on('disconnect', () => server.close(() => process.exit(0)));
}

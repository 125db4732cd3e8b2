import { type ChildProcess, spawn } from 'node:child_process';
import { type AddressInfo, createServer, type Server, Socket } from 'node:net';
import Redis from 'ioredis';

/** A free TCP port on loopback (bound, read, released). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as { port: number };
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/**
 * A throwaway redis-server of the test's own (never the shared one), without persistence, so a restart comes back
 * empty — what a Redis without AOF does after a crash.
 */
export class PrivateRedis {
  private proc: ChildProcess | null = null;

  private constructor(readonly port: number) {}

  static async start(): Promise<PrivateRedis> {
    const r = new PrivateRedis(await freePort());
    await r.boot();
    return r;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  private async boot(): Promise<void> {
    this.proc = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: 'ignore' },
    );
    const probe = new Redis(this.url, {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    probe.on('error', () => undefined);
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        await probe.connect();
        await probe.ping();
        probe.disconnect();
        return;
      } catch (err) {
        probe.disconnect();
        if (Date.now() > deadline) {
          throw err;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  async flushAll(): Promise<void> {
    const c = new Redis(this.url, { maxRetriesPerRequest: 1 });
    try {
      await c.flushall();
    } finally {
      c.disconnect();
    }
  }

  /** kill -9 and start again on the same port: every key is gone, every client is cut and reconnects. */
  async restart(): Promise<void> {
    await this.stop();
    await this.boot();
  }

  async stop(): Promise<void> {
    const proc = this.proc;
    this.proc = null;
    if (proc && proc.exitCode === null) {
      await new Promise<void>((resolve) => {
        proc.once('exit', () => resolve());
        proc.kill('SIGKILL');
      });
    }
  }
}

/** A TCP proxy we control between the app and a real server: cut() drops every connection and refuses new ones. */
export class TcpProxy {
  private readonly sockets = new Set<Socket>();
  private open = true;
  /** While set, a client packet it matches drops that connection instead of reaching the server. */
  private trip: ((chunk: Buffer) => boolean) | null = null;

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
    const ref: { proxy?: TcpProxy } = {};
    const server = createServer((client) => {
      const proxy = ref.proxy;
      if (!proxy?.open) {
        client.destroy();
        return;
      }
      const upstream = new Socket();
      proxy.sockets.add(client).add(upstream);
      const drop = (): void => {
        client.destroy();
        upstream.destroy();
        proxy.sockets.delete(client);
        proxy.sockets.delete(upstream);
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
      upstream.connect(targetPort, targetHost, () => {
        client.on('data', (chunk: Buffer) => {
          if (proxy.trip?.(chunk)) {
            drop();
          } else {
            upstream.write(chunk);
          }
        });
        upstream.pipe(client);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    ref.proxy = new TcpProxy(server, (server.address() as { port: number }).port);
    return ref.proxy;
  }

  cut(): void {
    this.open = false;
    for (const s of this.sockets) {
      s.destroy();
    }
    this.sockets.clear();
  }

  restore(): void {
    this.open = true;
    this.trip = null;
  }

  /** Drops any connection the moment it sends a packet `match` accepts (a connection lost mid-statement). */
  cutOn(match: (chunk: Buffer) => boolean): void {
    this.trip = match;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A TCP server that accepts connections and never answers (a hung Redis): its URL, the sockets, and close(). */
export async function silentServer(): Promise<{ url: string; sockets: Socket[]; close: () => void }> {
  const sockets: Socket[] = [];
  const server = createServer((socket) => sockets.push(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `redis://127.0.0.1:${(server.address() as AddressInfo).port}`,
    sockets,
    close: () => {
      sockets.forEach((socket) => socket.destroy());
      server.close();
    },
  };
}

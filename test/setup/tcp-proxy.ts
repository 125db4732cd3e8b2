import { createServer, type Server, type Socket, connect } from 'node:net';
import type { AddressInfo } from 'node:net';

export type ProxyMode = 'pass' | 'refuse' | 'reset' | 'blackhole' | 'silence';

/**
 * A TCP proxy the test controls, between the app and a real server (PostgreSQL, Redis), to cause real faults
 * without touching the shared server: `refuse` stops listening (ECONNREFUSED) and cuts every open connection,
 * `reset` accepts and destroys at once, `blackhole` accepts and never answers, `pass` restores the service.
 * `silence` is a path that died without a reset: the open connections stay open and carry nothing more, ever
 * (their bytes are taken and dropped, as a peer's kernel would), and new ones are blackholed.
 */
export class TcpProxy {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  /** Each open client connection's way to stop forwarding for good (the `silence` mode). */
  private readonly silencers = new Set<() => void>();
  private mode: ProxyMode = 'pass';
  port = 0;

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  /** A started proxy in front of the server a `postgres://` or `redis://` URL names (its default port if none). */
  static inFrontOf(url: string): Promise<TcpProxy> {
    const u = new URL(url);
    const defaultPort = u.protocol === 'redis:' ? 6379 : 5432;
    return new TcpProxy(u.hostname, Number(u.port || defaultPort)).start();
  }

  async start(): Promise<this> {
    await this.listen(0);
    return this;
  }

  /** Rewrites a URL's host and port to go through this proxy. */
  via(url: string): string {
    const u = new URL(url);
    u.hostname = '127.0.0.1';
    u.port = String(this.port);
    return u.toString();
  }

  /** Connections open through the proxy now (both sides of each, while passing). */
  get openConnections(): number {
    return this.sockets.size;
  }

  async setMode(mode: ProxyMode): Promise<void> {
    this.mode = mode;
    if (mode === 'silence') {
      for (const silence of this.silencers) {
        silence();
      }
      this.silencers.clear();
    } else if (mode !== 'pass') {
      this.cutAll();
    }
    if (mode === 'refuse' && this.server) {
      const server = this.server;
      this.server = null;
      await new Promise<void>((resolve) => server.close(() => resolve()));
    } else if (mode !== 'refuse' && !this.server) {
      await this.listen(this.port);
    }
  }

  async close(): Promise<void> {
    this.cutAll();
    const server = this.server;
    this.server = null;
    if (server) {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }

  private cutAll(): void {
    for (const s of this.sockets) {
      s.destroy();
    }
    this.sockets.clear();
  }

  private track(s: Socket): void {
    this.sockets.add(s);
    s.on('close', () => this.sockets.delete(s));
    s.on('error', () => undefined);
  }

  private listen(port: number): Promise<void> {
    const server = createServer((client) => {
      this.track(client);
      if (this.mode === 'reset') {
        client.resetAndDestroy();
        return;
      }
      if (this.mode === 'blackhole' || this.mode === 'silence') {
        // Read and drop what the client sends (a stalled peer's kernel still takes the bytes), so its close is seen.
        client.resume();
        return;
      }
      const upstream = connect(this.targetPort, this.targetHost);
      this.track(upstream);
      client.pipe(upstream).pipe(client);
      const silence = (): void => {
        client.unpipe(upstream);
        upstream.unpipe(client);
        client.resume();
        upstream.resume();
      };
      this.silencers.add(silence);
      client.on('close', () => {
        this.silencers.delete(silence);
        upstream.destroy();
      });
      upstream.on('close', () => client.destroy());
    });
    this.server = server;
    return new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        this.port = (server.address() as AddressInfo).port;
        resolve();
      });
    });
  }
}

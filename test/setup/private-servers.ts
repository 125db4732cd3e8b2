import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
export async function silentServer(port = 0): Promise<{ url: string; sockets: Socket[]; close: () => void }> {
  const sockets: Socket[] = [];
  const server = createServer((socket) => sockets.push(socket));
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    url: `redis://127.0.0.1:${(server.address() as AddressInfo).port}`,
    sockets,
    close: () => {
      sockets.forEach((socket) => socket.destroy());
      server.close();
    },
  };
}

/**
 * A PgBouncer of the test's own in front of the shared PostgreSQL, in transaction mode: each transaction may run on
 * another server connection. Debian's is 1.18, which does not carry prepared statements across server connections
 * (that came in 1.21 with `max_prepared_statements`), as many deployed poolers still do not.
 */
export class PrivatePgBouncer {
  private constructor(
    private readonly proc: ChildProcess,
    private readonly dir: string,
    readonly port: number,
  ) {}

  static async start(
    target: { host: string; port: number; user: string },
    poolSize = 2,
  ): Promise<PrivatePgBouncer> {
    const bin = ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer', '/usr/local/bin/pgbouncer'].find((p) =>
      existsSync(p),
    );
    if (!bin) {
      throw new Error('pgbouncer is not installed: run `apt-get install -y pgbouncer` (.ci/run does).');
    }
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'fxf-pgbouncer-'));
    chmodSync(dir, 0o777);
    const ini = join(dir, 'pgbouncer.ini');
    writeFileSync(
      ini,
      [
        '[databases]',
        `* = host=${target.host} port=${target.port} user=${target.user}`,
        '[pgbouncer]',
        'listen_addr = 127.0.0.1',
        `listen_port = ${port}`,
        'unix_socket_dir =',
        'auth_type = any',
        'pool_mode = transaction',
        `default_pool_size = ${poolSize}`,
        'max_client_conn = 50',
        'ignore_startup_parameters = extra_float_digits,options',
        `pidfile = ${join(dir, 'pgbouncer.pid')}`,
      ].join('\n'),
    );
    chmodSync(ini, 0o644);
    // PgBouncer will not run as root: as root, it drops to nobody.
    const asRoot = process.getuid?.() === 0 ? ['-u', 'nobody'] : [];
    const proc = spawn(bin, [...asRoot, ini], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const bouncer = new PrivatePgBouncer(proc, dir, port);
    const deadline = Date.now() + 10_000;
    for (;;) {
      const up = await new Promise<boolean>((resolve) => {
        const s = new Socket();
        s.once('connect', () => (s.destroy(), resolve(true)));
        s.once('error', () => (s.destroy(), resolve(false)));
        s.connect(port, '127.0.0.1');
      });
      if (up) {
        return bouncer;
      }
      if (proc.exitCode !== null || Date.now() > deadline) {
        await bouncer.stop();
        throw new Error(`pgbouncer did not start: ${stderr}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** A URL of the same database through the bouncer. */
  urlOf(databaseUrl: string): string {
    const url = new URL(databaseUrl);
    url.hostname = '127.0.0.1';
    url.port = String(this.port);
    return url.toString();
  }

  async stop(): Promise<void> {
    const proc = this.proc;
    if (proc.exitCode === null) {
      await new Promise<void>((resolve) => {
        proc.once('exit', () => resolve());
        proc.kill('SIGKILL');
      });
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

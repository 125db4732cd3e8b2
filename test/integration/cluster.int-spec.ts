import type { ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { request as httpRequest, Agent } from 'node:http';
import { createServer, type Server } from 'node:net';
import { hostname } from 'node:os';
import { Client } from 'pg';
import sharp from 'sharp';
import { MIGRATIONS_TABLE } from '../../src/database/migrations-location';
import { hashToken, mintApiKey } from '../../src/modules/api-keys/api-key-token';
import { freePort } from '../setup/private-servers';
import { spawnedDeployment } from '../setup/spawned-deployment';
import { waitFor } from '../setup/wait';

const METRICS_TOKEN = 'm'.repeat(32);

/**
 * Issue 14, goal 5: `npm start` with WEB_CONCURRENCY=2 runs a primary and two HTTP worker processes. Which process
 * served a connection is never told to clients; the test finds out from the kernel instead: the accepted socket
 * of each of its connections (/proc/net/tcp*) and the process whose file descriptors hold it (/proc/<pid>/fd).
 */
describe('WEB_CONCURRENCY: one HTTP process per core (Node cluster)', () => {
  const deployment = spawnedDeployment('cluster');

  interface Service {
    child: ChildProcess;
    stdout: () => string;
    stderr: () => string;
    exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  }

  function start(env: Record<string, string>): Service {
    const child = deployment.start({ LOG_LEVEL: 'silent', ...env });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    // 'close', not 'exit': it comes after the pipes have been read to their end, so what the process printed last
    // is in `out`/`err` by then ('exit' can come first). The workers share the pipes; they exit before the primary.
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('close', (code, signal) => resolve({ code, signal })),
    );
    return { child, stdout: () => out, stderr: () => err, exited };
  }

  /** What /proc holds at `path`, or '' when the process or thread ended between listing and reading. */
  function procText(path: string): string {
    try {
      return readFileSync(path, 'utf8');
    } catch (error) {
      if (
        (error as NodeJS.ErrnoException).code === 'ENOENT' ||
        (error as NodeJS.ErrnoException).code === 'ESRCH'
      ) {
        return '';
      }
      throw error;
    }
  }

  /** The child pids of `pid`, over all its threads; [] once it has exited. Threads come and go while this reads. */
  function childrenOf(pid: number): number[] {
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${pid}/task`);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        return [];
      }
      throw error;
    }
    const kids = tasks.flatMap((task) =>
      procText(`/proc/${pid}/task/${task}/children`).trim().split(/\s+/).filter(Boolean),
    );
    return kids.map(Number).sort((a, b) => a - b);
  }

  const alive = (pid: number): boolean => existsSync(`/proc/${pid}`);

  /** SIGTERM: every worker drains and exits, then the primary, with 0; none of `workers` is left. */
  async function expectCleanStop(svc: Service, workers: number[]): Promise<void> {
    svc.child.kill('SIGTERM');
    const { code, signal } = await svc.exited;
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    for (const pid of workers) {
      expect(alive(pid)).toBe(false);
    }
  }

  /** Starts the service and waits for it to exit: its code, what it printed, and every child it had meanwhile. */
  async function startToExit(
    env: Record<string, string>,
  ): Promise<{ code: number | null; stdout: string; stderr: string; children: number[] }> {
    const svc = start(env);
    const children = watchChildren(svc);
    const { code } = await svc.exited;
    children.stop();
    return { code, stdout: svc.stdout(), stderr: svc.stderr(), children: children.seen() };
  }

  /** Every child the service's primary has had so far, polled every 50 ms until `stop()`. */
  function watchChildren(svc: Service): { seen: () => number[]; stop: () => void } {
    const seen = new Set<number>();
    const timer = setInterval(() => {
      for (const pid of childrenOf(svc.child.pid!)) {
        seen.add(pid);
      }
    }, 50);
    return { seen: () => [...seen].sort((a, b) => a - b), stop: () => clearInterval(timer) };
  }

  /** Every TCP socket on this machine (/proc/net/tcp and tcp6): its ports (4 hex digits, as the kernel writes them). */
  function tcpTable(): { local: string; remote: string; inode: string }[] {
    return ['/proc/net/tcp', '/proc/net/tcp6'].flatMap((file) =>
      readFileSync(file, 'utf8')
        .split('\n')
        .slice(1)
        .map((line) => line.trim().split(/\s+/))
        .filter((f) => f.length >= 10)
        .map((f) => ({ local: f[1].split(':')[1], remote: f[2].split(':')[1], inode: f[9] })),
    );
  }

  /** The inode of the server side of each connection from `clientPorts` to `port` (IPv4 and v4-mapped IPv6). */
  function acceptedInodes(port: number, clientPorts: number[]): Map<number, string> {
    const hex = (p: number): string => p.toString(16).toUpperCase().padStart(4, '0');
    const byClient = new Map<number, string>();
    for (const { local, remote, inode } of tcpTable()) {
      for (const c of clientPorts) {
        if (local === hex(port) && remote === hex(c)) {
          byClient.set(c, inode);
        }
      }
    }
    return byClient;
  }

  function socketInodesOf(pid: number): Set<string> {
    const inodes = new Set<string>();
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m) {
          inodes.add(m[1]);
        }
      } catch {
        // closed meanwhile
      }
    }
    return inodes;
  }

  /** GET /healthz on its own kept-alive connection; resolves with the status and the client's local port. */
  function healthz(port: number, agent: Agent): Promise<{ status: number; clientPort: number }> {
    return new Promise((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, path: '/healthz', agent }, (res) => {
        const clientPort = res.socket.localPort!;
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode!, clientPort }));
      });
      req.on('error', reject);
      req.end();
    });
  }

  /**
   * Opens twelve kept-alive connections at once, one GET /healthz each (all must answer 200), and counts how many
   * of them each of `pids` holds. Every accepted connection must be held by one of them (the primary passes it on).
   */
  async function connectionsHeld(port: number, pids: number[]): Promise<number[]> {
    const agent = new Agent({ keepAlive: true, maxSockets: 12 });
    try {
      const answers = await Promise.all(Array.from({ length: 12 }, () => healthz(port, agent)));
      expect(answers.map((a) => a.status)).toEqual(Array(12).fill(200));
      const clientPorts = [...new Set(answers.map((a) => a.clientPort))];
      const inodes = acceptedInodes(port, clientPorts);
      const held = pids.map((pid) => {
        const mine = socketInodesOf(pid);
        return clientPorts.filter((c) => mine.has(inodes.get(c) ?? '-')).length;
      });
      expect(held.reduce((a, b) => a + b, 0)).toBe(clientPorts.length);
      return held;
    } finally {
      agent.destroy();
    }
  }

  it('should serve from two worker processes, replace a killed one, and stop them all on SIGTERM', async () => {
    const port = await freePort();
    const svc = start({ PORT: String(port), WEB_CONCURRENCY: '2' });
    await waitFor('the listening line', () => svc.stdout().includes('listening'), 90_000);
    expect(svc.stdout()).toMatch(
      new RegExp(`^Fixitfy Upload listening on .* \\(port ${port}, 2 processes\\)\\n`),
    );
    const primary = svc.child.pid!;
    const workers = childrenOf(primary);
    expect(workers).toHaveLength(2);

    // Twelve connections kept open at once: the cluster hands them out in turn, so both workers hold some.
    const held = await connectionsHeld(port, workers);
    expect(held.every((n) => n > 0)).toBe(true);

    // A worker that dies is replaced, and the replacement serves.
    process.kill(workers[0], 'SIGKILL');
    await waitFor(
      'a replacement worker',
      () => {
        const now = childrenOf(primary);
        return now.length === 2 && !now.includes(workers[0]);
      },
      90_000,
    );
    const replaced = childrenOf(primary);
    expect(replaced).toContain(workers[1]);
    // The primary writes this line before it forks the replacement, but this process reads the pipe in its own
    // time: /proc can show the new child before the line has arrived here, so wait for the line rather than
    // expecting it already read (CI once saw "" at this point).
    const killedLine = new RegExp(
      `A worker process \\(pid ${workers[0]}\\) exited \\(SIGKILL\\); starting another\\.\\n`,
    );
    await waitFor('the primary to report the killed worker', () => killedLine.test(svc.stderr()), 15_000);
    expect(svc.stderr()).toMatch(killedLine);
    await waitFor(
      'the replacement to accept connections',
      async () => (await connectionsHeld(port, replaced)).every((n) => n > 0),
      90_000,
    );

    // SIGTERM: every worker drains and exits, then the primary, with 0.
    await expectCleanStop(svc, replaced);
  }, 240_000);

  it('should answer heavy uploads sent to both workers at once, their heavy-stage slots granted by the primary', async () => {
    const port = await freePort();
    const svc = start({ PORT: String(port), WEB_CONCURRENCY: '2' });
    try {
      await waitFor('the listening line', () => svc.stdout().includes('listening'), 90_000);
      const token = await newKey();
      // Over 16 MP decoded each (heavy); one connection each, which the cluster hands to its workers in turn.
      const jpegs = await Promise.all(
        [180, 190, 200, 210].map((b) =>
          sharp({ create: { width: 4200, height: 4000, channels: 3, background: { r: 30, g: 60, b } } })
            .jpeg()
            .toBuffer(),
        ),
      );
      const answers = await Promise.all(
        jpegs.map(async (bytes, i) => {
          const form = new FormData();
          form.append('file', new Blob([bytes]), `heavy-${i}.jpg`);
          const res = await fetch(`http://127.0.0.1:${port}/api/v1/upload`, {
            method: 'POST',
            headers: { Authorization: `Bearer ${token}`, Connection: 'close' },
            body: form,
          });
          return [res.status, ((await res.json()) as { width?: number }).width];
        }),
      );
      expect(answers).toEqual(jpegs.map(() => [200, 4200]));
    } finally {
      svc.child.kill('SIGTERM');
      await svc.exited;
    }
  }, 240_000);

  /** GET /metrics with the token: on a connection of its own unless `agent` keeps one. */
  function scrape(
    port: number,
    agent?: Agent,
  ): Promise<{ status: number; text: string; retryAfter: string | undefined }> {
    return new Promise((resolve, reject) => {
      const req = httpRequest(
        {
          host: '127.0.0.1',
          port,
          path: '/metrics',
          agent: agent ?? false,
          headers: { Authorization: `Bearer ${METRICS_TOKEN}` },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (text += chunk));
          res.on('end', () =>
            resolve({ status: res.statusCode!, text, retryAfter: res.headers['retry-after'] }),
          );
        },
      );
      req.on('error', reject);
      req.end();
    });
  }

  /** The /healthz 200s a scrape counts for each worker pid (by its default instance_id, hostname:pid). */
  function healthzCounts(text: string, pids: number[]): (number | undefined)[] {
    return pids.map((pid) => {
      const line = text
        .split('\n')
        .find(
          (l) =>
            l.startsWith('fixitfy_http_requests_total{') &&
            l.includes('route="/healthz"') &&
            l.includes('status="200"') &&
            l.includes(`instance_id="${hostname()}:${pid}"`),
        );
      return line === undefined ? undefined : Number(line.split(' ').pop());
    });
  }

  const missingOf = (text: string): number | undefined => {
    const line = text.split('\n').find((l) => l.startsWith('fixitfy_scrape_processes_missing '));
    return line === undefined ? undefined : Number(line.split(' ').pop());
  };

  it('should answer a scrape of either metrics port for both workers, and say when one could not answer', async () => {
    const [port, metricsPort] = [await freePort(), await freePort()];
    const svc = start({
      PORT: String(port),
      METRICS_PORT: String(metricsPort),
      METRICS_TOKEN,
      WEB_CONCURRENCY: '2',
    });
    const primary = svc.child.pid!;
    let stopped: number | undefined;
    try {
      await waitFor('the listening line', () => svc.stdout().includes('listening'), 90_000);
      const workers = childrenOf(primary);
      expect(workers).toHaveLength(2);
      // Twelve requests, each on a connection of its own: the cluster hands them to the workers in turn.
      for (let i = 0; i < 12; i++) {
        expect((await healthz(port, new Agent({ keepAlive: false }))).status).toBe(200);
      }

      // Before, each scrape reached one worker and showed its series alone. Now every scrape, on either port, shows
      // both workers' series, which add up to the twelve requests.
      for (const via of [port, metricsPort, port, metricsPort, port, metricsPort]) {
        const { status, text } = await scrape(via);
        expect(status).toBe(200);
        const counts = healthzCounts(text, workers);
        expect(counts.every((n) => n !== undefined && n > 0)).toBe(true);
        expect((counts as number[]).reduce((a, b) => a + b, 0)).toBe(12);
        expect(missingOf(text)).toBe(0);
      }

      // A worker that cannot answer (stopped: its event loop does not run) is left out once the primary has
      // waited for it. Two scrapes at once: the cluster hands at most one to the stopped worker.
      stopped = workers[0];
      process.kill(stopped, 'SIGSTOP');
      const [a, b] = [scrape(metricsPort), scrape(metricsPort)];
      const first = await Promise.race([a, b]);
      expect(first.status).toBe(200);
      expect(healthzCounts(first.text, workers)).toEqual([undefined, expect.any(Number)]);
      expect(missingOf(first.text)).toBe(1);
      process.kill(stopped, 'SIGCONT');
      stopped = undefined;
      expect((await Promise.all([a, b])).map((r) => r.status)).toEqual([200, 200]);
      const again = await scrape(port);
      expect(healthzCounts(again.text, workers).every((n) => n !== undefined)).toBe(true);
      expect(missingOf(again.text)).toBe(0);

      // The primary itself cannot answer: a scrape on a connection a worker already holds fails, on either port, as
      // the contract says a dependency's failure does: 503 `unavailable` with Retry-After.
      const kept = [
        new Agent({ keepAlive: true, maxSockets: 1 }),
        new Agent({ keepAlive: true, maxSockets: 1 }),
      ];
      expect((await healthz(port, kept[0])).status).toBe(200);
      expect((await scrape(metricsPort, kept[1])).status).toBe(200);
      stopped = primary;
      process.kill(primary, 'SIGSTOP');
      const refused = await Promise.all([scrape(port, kept[0]), scrape(metricsPort, kept[1])]);
      process.kill(primary, 'SIGCONT');
      stopped = undefined;
      kept.forEach((agent) => agent.destroy());
      for (const answer of refused) {
        expect(answer.status).toBe(503);
        expect(JSON.parse(answer.text)).toEqual({
          ok: false,
          code: 'unavailable',
          error: 'The metrics of the other HTTP processes could not be gathered.',
        });
        expect(answer.retryAfter).toMatch(/^\d+$/);
      }
    } finally {
      if (stopped !== undefined) {
        process.kill(stopped, 'SIGCONT');
      }
      svc.child.kill('SIGTERM');
      await svc.exited;
    }
  }, 240_000);

  /** A user and an API key in the service's database, as the bench makes them: its bearer token. */
  async function newKey(): Promise<string> {
    const pg = new Client({ connectionString: deployment.databaseUrl() });
    await pg.connect();
    try {
      const { rows } = await pg.query<{ id: string }>(
        `insert into users (id, email, password_hash, role, created_at)
           values (gen_random_uuid(), $1, 'x', 'user', now()) returning id`,
        [`heavy-${process.pid}-${Date.now()}@example.com`],
      );
      const key = mintApiKey();
      await pg.query(
        `insert into api_keys (id, user_id, token_hash, prefix, label, request_count, created_at)
           values (gen_random_uuid(), $1, $2, $3, 'heavy', 0, now())`,
        [rows[0].id, hashToken(key.token), key.prefix],
      );
      return key.token;
    } finally {
      await pg.end();
    }
  }

  it('should fail at boot with one line and no worker left behind when the port is taken', async () => {
    const blocker: Server = createServer((s) => s.destroy());
    await new Promise<void>((resolve) => blocker.listen(0, resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      const { code, stdout, stderr, children } = await startToExit({
        PORT: String(port),
        WEB_CONCURRENCY: '2',
      });
      expect(code).toBe(1);
      expect(stdout).toBe('');
      expect(stderr).toBe(`PORT ${port} is in use: stop what listens there or set PORT to a free port.\n`);
      for (const pid of children) {
        expect(alive(pid)).toBe(false);
      }
    } finally {
      blocker.close();
    }
  }, 120_000);

  it('should refuse WEB_CONCURRENCY=0 in one line before starting anything', async () => {
    const { code, stderr, children } = await startToExit({ WEB_CONCURRENCY: '0' });
    expect(code).toBe(1);
    expect(stderr).toBe(
      'Invalid environment variables: WEB_CONCURRENCY must be a whole number from 1 to 64 (got "0"). Fix them (see .env.example).\n',
    );
    expect(children).toEqual([]);
  }, 60_000);

  it('should check before any worker starts: a failed check is one line, and the worker loading meanwhile is gone', async () => {
    const closed = await freePort();
    const { code, stdout, stderr, children } = await startToExit({
      WEB_CONCURRENCY: '2',
      REDIS_URL: `redis://127.0.0.1:${closed}`,
    });
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toBe(
      `No Redis answers at redis://127.0.0.1:${closed}: start one (e.g. \`redis-server --daemonize yes\`, or \`docker run -p 6379:6379 redis:7\`) or set REDIS_URL.\n`,
    );
    // At most the early worker (src/early-worker.ts), which only loads code until the checks pass; none survives.
    expect(children.length).toBeLessThanOrEqual(1);
    for (const pid of children) {
      expect(alive(pid)).toBe(false);
    }
  }, 60_000);

  /** CPU time a process has used so far, in clock ticks (user + system, /proc/<pid>/stat). */
  function cpuTicks(pid: number): number {
    const fields = procText(`/proc/${pid}/stat`).split(') ')[1]?.split(' ') ?? [];
    return Number(fields[11]) + Number(fields[12]);
  }

  /** The TCP sockets a process holds (its socket file descriptors found in /proc/net/tcp and tcp6). */
  function tcpSocketsOf(pid: number): string[] {
    const mine = socketInodesOf(pid);
    return tcpTable()
      .map((row) => row.inode)
      .filter((inode) => mine.has(inode));
  }

  it('should load the first worker while the primary checks, and start that same worker once the checks pass', async () => {
    // The primary's migration check reads the migrations table: a lock held here keeps it checking.
    const pg = new Client({ connectionString: deployment.databaseUrl() });
    await pg.connect();
    await pg.query('begin');
    await pg.query(`lock table ${MIGRATIONS_TABLE} in access exclusive mode`);
    const port = await freePort();
    const svc = start({ PORT: String(port), WEB_CONCURRENCY: '2' });
    const primary = svc.child.pid!;
    let early: number;
    try {
      await waitFor(
        'the primary to wait on the migrations table',
        async () =>
          (
            await pg.query<{ n: number }>(
              `select count(*)::int as n from pg_locks where not granted and relation = '${MIGRATIONS_TABLE}'::regclass`,
            )
          ).rows[0].n > 0,
        60_000,
      );
      // One worker was forked before the checks, and no other.
      await waitFor('the early worker', () => childrenOf(primary).length === 1, 30_000);
      [early] = childrenOf(primary);
      expect(procText(`/proc/${early}/environ`).split('\0')).toContain('FXF_EARLY_WORKER=1');
      // Once it has loaded the app it waits, idle, for the primary's go: connected nowhere, listening nowhere.
      let before = cpuTicks(early);
      await waitFor(
        'the early worker to finish loading',
        async () => {
          await new Promise((r) => setTimeout(r, 500));
          const now = cpuTicks(early);
          const idle = now - before <= 1;
          before = now;
          return idle;
        },
        90_000,
      );
      expect(tcpSocketsOf(early)).toEqual([]);
      expect(childrenOf(primary)).toEqual([early]);
      expect(svc.stdout()).toBe('');
    } finally {
      await pg.query('commit');
      await pg.end();
    }

    // The checks pass: the early worker starts, the second is forked, and both serve.
    await waitFor('the listening line', () => svc.stdout().includes('listening'), 90_000);
    expect(svc.stdout()).toMatch(
      new RegExp(`^Fixitfy Upload listening on .* \\(port ${port}, 2 processes\\)\\n`),
    );
    const workers = childrenOf(primary);
    expect(workers).toHaveLength(2);
    expect(workers).toContain(early);
    const held = await connectionsHeld(port, workers);
    expect(held.every((n) => n > 0)).toBe(true);
    expect(svc.stderr()).toBe('');
    await expectCleanStop(svc, workers);
  }, 240_000);
});

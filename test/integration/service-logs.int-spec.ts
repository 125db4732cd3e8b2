import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { freePort } from '../setup/private-servers';
import { spawnedDeployment } from '../setup/spawned-deployment';
import { TcpProxy } from '../setup/tcp-proxy';
import { waitFor } from '../setup/wait';

/**
 * The service as `npm start` runs it (src/main.ts) writes what the app logs. main.ts creates the app with Nest's
 * log buffer on, so that a failed start is one line; the buffer was never flushed after a good start, so every line
 * logged through Nest's Logger — an unexpected error with its request id (API.md: `internal` "logged with the
 * request id"), the metrics port, the janitor, webhooks — was held in memory for ever and never written.
 */
describe('the service writes its log (src/main.ts)', () => {
  const deployment = spawnedDeployment('service-logs');

  function start(env: Record<string, string>): {
    child: ChildProcess;
    lines: () => Record<string, any>[];
    stdout: () => string;
    stderr: () => string;
    exited: Promise<number | null>;
  } {
    const child = deployment.start({ LOG_LEVEL: 'info', WEB_CONCURRENCY: '1', ...env });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      out += d.toString();
      err += d.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
    const lines = (): Record<string, any>[] =>
      out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, any>);
    return { child, lines, stdout: () => out, stderr: () => err, exited };
  }

  it('should write what the app logs while it starts and after, an unexpected error with its request id', async () => {
    const proxy = await new TcpProxy(
      '127.0.0.1',
      Number(new URL(deployment.databaseUrl()).port || 5432),
    ).start();
    const [port, metricsPort] = [await freePort(), await freePort()];
    const svc = start({
      PORT: String(port),
      METRICS_PORT: String(metricsPort),
      METRICS_TOKEN: 'service-logs-metrics-token-0123',
      DATABASE_URL: proxy.via(deployment.databaseUrl()),
    });
    try {
      await waitFor('the listening line', () => svc.stdout().includes('listening'), 90_000);
      // Logged while the app started (held, then written once it listened).
      await waitFor('the metrics port line', () =>
        svc
          .lines()
          .find((l) => l.msg === `metrics on port ${metricsPort}` && l.context === 'MetricsPortServer'),
      );

      // Logged long after: the database is cut, and the request that needs it fails unexpectedly.
      await proxy.setMode('refuse');
      const res = await fetch(`http://127.0.0.1:${port}/api/v1/auth/register`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ email: `logs-${Date.now()}@example.com`, password: 'correct horse battery' }),
      });
      expect(res.status).toBe(500);
      expect(await res.json()).toEqual({ ok: false, code: 'db_failed', error: expect.any(String) });
      const requestId = res.headers.get('x-request-id');
      expect(requestId).toMatch(/^[0-9a-f-]{36}$/);
      const logged = await waitFor('the error line with the request id', () =>
        svc.lines().find((l) => l.context === 'Errors' && l.requestId === requestId),
      );
      expect(logged).toMatchObject({
        level: 50,
        msg: 'Unexpected error (db_failed)',
        path: '/api/v1/auth/register',
      });
      const requestLine = await waitFor('the request line', () =>
        svc.lines().find((l) => l.req?.id === requestId && l.res?.statusCode === 500),
      ).catch((e: unknown) => {
        throw new Error(`${String(e)}\n${svc.stdout()}`);
      });
      expect(requestLine).toMatchObject({ code: 'db_failed', msg: 'request errored' });
    } finally {
      await proxy.close();
      svc.child.kill('SIGTERM');
      await svc.exited;
    }
  }, 180_000);

  it('should write what the worker role logs (APP_ROLE=worker)', async () => {
    const metricsPort = await freePort();
    const svc = start({ APP_ROLE: 'worker', METRICS_PORT: String(metricsPort) });
    try {
      await waitFor('the worker started line', () => svc.stdout().includes('worker started'), 90_000);
      await waitFor('the metrics port line', () =>
        svc.lines().find((l) => l.msg === `metrics on port ${metricsPort}`),
      ).catch((e: unknown) => {
        throw new Error(`${String(e)}\n${svc.stdout()}`);
      });
    } finally {
      svc.child.kill('SIGTERM');
      await svc.exited;
    }
  }, 180_000);

  // A rejection nothing handles (a bug), made by a preloaded fixture once the process has started.
  it.each([
    ['the HTTP service', {}],
    ['the worker role (APP_ROLE=worker)', { APP_ROLE: 'worker' }],
  ])(
    'should write a crash of %s to its log as one fatal line, and still stop with code 1',
    async (_, env: Record<string, string>) => {
      const svc = start({ ...env, NODE_OPTIONS: `--require "${CRASH_FIXTURE}"` });
      try {
        expect(await svc.exited).toBe(1);
        const fatal = svc.lines().filter((l) => l.level === 60);
        expect(fatal).toEqual([
          expect.objectContaining({
            context: 'Process',
            origin: 'unhandledRejection',
            msg: 'A promise was rejected and nothing handled it: the process stops',
            err: expect.objectContaining({
              type: 'Error',
              message: 'crash fixture: a rejection nothing handles',
              stack: expect.stringContaining('crash-once-started.js'),
            }),
          }),
        ]);
        // Node's own report still goes to stderr, as before.
        expect(svc.stderr()).toContain('crash fixture: a rejection nothing handles');
      } catch (e) {
        throw new Error(`${String(e)}\n${svc.stdout()}`);
      } finally {
        svc.child.kill('SIGKILL');
      }
    },
    180_000,
  );
});

const CRASH_FIXTURE = join(__dirname, '..', 'fixtures', 'preload', 'crash-once-started.js');

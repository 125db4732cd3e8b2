import { type ChildProcess, fork } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../config/app-config';
import { AppError } from '../errors/app-error';
import {
  ClusterMetricsClient,
  ClusterScrapes,
  mergeScrapes,
  type PrimaryMetricsMessage,
} from './cluster-metrics';
import { Metrics } from './metrics.service';

/** The value of the series of `name` whose label set includes `labels`, from a scrape's text; undefined if none. */
function valueOf(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const match = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match?.[1] !== name) {
      continue;
    }
    const have = Object.fromEntries(
      [...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]),
    );
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) {
      return Number(match[3]);
    }
  }
  return undefined;
}

function metricsOf(instanceId: string): Metrics {
  return new Metrics(
    loadConfig({ SECRET_KEY: 'x'.repeat(32), METRICS_TOKEN: 't'.repeat(32), INSTANCE_ID: instanceId }),
  );
}

describe('mergeScrapes: the workers of one npm start as one scrape', () => {
  it('keeps each process apart by instance_id, and adds up what two processes of one named instance share', async () => {
    const a = metricsOf('api-1');
    const b = metricsOf('api-1');
    const c = metricsOf('api-2');
    a.uploads.inc({ outcome: 'ok' }, 3);
    b.uploads.inc({ outcome: 'ok' }, 4);
    c.uploads.inc({ outcome: 'ok' }, 5);
    a.httpDuration.observe({ route: '/healthz', method: 'GET' }, 0.002);
    b.httpDuration.observe({ route: '/healthz', method: 'GET' }, 0.2);
    // Every process reads the same shared queue: its depth must not be added up.
    for (const m of [a, b, c]) {
      m.watchQueueDepth(() => Promise.resolve({ waiting: 7 }));
    }
    const parts = await Promise.all([a, b, c].map((m) => m.registry.getMetricsAsJSON()));
    const text = await mergeScrapes(parts, 1);

    expect(valueOf(text, 'fixitfy_uploads_total', { instance_id: 'api-1', outcome: 'ok' })).toBe(7);
    expect(valueOf(text, 'fixitfy_uploads_total', { instance_id: 'api-2', outcome: 'ok' })).toBe(5);
    const bucket = (le: string): number | undefined =>
      valueOf(text, 'fixitfy_http_request_duration_seconds_bucket', { instance_id: 'api-1', le });
    expect([bucket('0.005'), bucket('0.25'), bucket('+Inf')]).toEqual([1, 2, 2]);
    expect(valueOf(text, 'fixitfy_webhook_queue_jobs', { instance_id: 'api-1', state: 'waiting' })).toBe(7);
    // prom-client's merge drops the start time (aggregator `omit`); each instance keeps one.
    expect(valueOf(text, 'fixitfy_process_start_time_seconds', { instance_id: 'api-1' })).toBeGreaterThan(
      1e9,
    );
    expect(valueOf(text, 'fixitfy_process_start_time_seconds', { instance_id: 'api-2' })).toBeGreaterThan(
      1e9,
    );
    expect(valueOf(text, 'fixitfy_scrape_processes_missing')).toBe(1);
  });
});

/**
 * The primary's side against real processes over a real IPC channel: each child runs a ClusterMetricsClient on its
 * own `process` (or, for `silent`, reads the channel and never answers, like a worker whose event loop is blocked).
 */
describe('ClusterScrapes and ClusterMetricsClient over a real IPC channel', () => {
  let dir: string;
  const children: ChildProcess[] = [];

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'fxf-cluster-metrics-'));
    writeFileSync(
      join(dir, 'worker.js'),
      `
      const { Counter, Registry } = require(${JSON.stringify(require.resolve('prom-client'))});
      const { ClusterMetricsClient } = require(${JSON.stringify(require.resolve('./cluster-metrics'))});
      const registry = new Registry();
      registry.setDefaultLabels({ instance_id: process.argv[2] });
      new Counter({ name: 'fixitfy_uploads_total', help: 'h', labelNames: ['outcome'], registers: [registry] })
        .inc({ outcome: 'ok' }, Number(process.argv[3]));
      if (process.argv[2] !== 'silent') {
        const client = new ClusterMetricsClient(process, registry);
        process.on('message', (m) => m === 'scrape' && client.scrape().then(
          (text) => process.send({ scraped: text }),
          (e) => process.send({ failed: e.code + ': ' + e.message }),
        ));
      } else {
        process.on('message', () => undefined);
      }
      process.send('ready');
      `,
    );
  });
  afterAll(() => {
    for (const child of children) {
      child.kill('SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  });

  /** A child process speaking the worker's side; resolves once it listens on its channel. */
  async function worker(name: string, uploads: number): Promise<ChildProcess> {
    // ts-node compiles cluster-metrics.ts in the child as jest's transform does here.
    const child = fork(join(dir, 'worker.js'), [name, String(uploads)], {
      execArgv: ['-r', 'ts-node/register/transpile-only'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    children.push(child);
    await new Promise<void>((resolve) => child.once('message', () => resolve()));
    return child;
  }

  /** Wires the children to a ClusterScrapes as the primary does, and asks `asker` for a scrape. */
  function scrapeVia(scrapes: ClusterScrapes, peers: ChildProcess[], asker: ChildProcess): Promise<string> {
    const listeners = peers.map((peer) => {
      const listener = (m: unknown): void => void scrapes.handle(peer, m);
      peer.on('message', listener);
      return () => peer.off('message', listener);
    });
    return new Promise<string>((resolve, reject) => {
      asker.on('message', function answer(m: { scraped?: string; failed?: string }) {
        if (m.scraped === undefined && m.failed === undefined) {
          return;
        }
        asker.off('message', answer);
        listeners.forEach((off) => off());
        if (m.scraped !== undefined) {
          resolve(m.scraped);
        } else {
          reject(new Error(m.failed));
        }
      });
      asker.send('scrape');
    });
  }

  it('answers a worker with every worker’s series, and leaves out one that does not answer in time', async () => {
    const [one, two, silent] = await Promise.all([worker('w1', 2), worker('w2', 3), worker('silent', 9)]);
    const all = [one, two, silent];

    const both = await scrapeVia(new ClusterScrapes(() => [one, two], 1000), all, two);
    expect(valueOf(both, 'fixitfy_uploads_total', { instance_id: 'w1' })).toBe(2);
    expect(valueOf(both, 'fixitfy_uploads_total', { instance_id: 'w2' })).toBe(3);
    expect(valueOf(both, 'fixitfy_scrape_processes_missing')).toBe(0);

    const started = Date.now();
    const partial = await scrapeVia(new ClusterScrapes(() => all, 1000), all, one);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(valueOf(partial, 'fixitfy_uploads_total', { instance_id: 'w1' })).toBe(2);
    expect(valueOf(partial, 'fixitfy_uploads_total', { instance_id: 'w2' })).toBe(3);
    expect(valueOf(partial, 'fixitfy_uploads_total', { instance_id: 'silent' })).toBeUndefined();
    expect(valueOf(partial, 'fixitfy_scrape_processes_missing')).toBe(1);
  });

  it('answers at once, without the one it waited for, when a worker exits mid-collect', async () => {
    const [one, silent] = await Promise.all([worker('w1', 2), worker('silent', 9)]);
    const scrapes = new ClusterScrapes(() => [one, silent], 60_000);
    const scraped = scrapeVia(scrapes, [one, silent], one);
    silent.once('exit', () => scrapes.gone(silent));
    silent.kill('SIGKILL');
    const text = await scraped;
    expect(valueOf(text, 'fixitfy_uploads_total', { instance_id: 'w1' })).toBe(2);
    expect(valueOf(text, 'fixitfy_scrape_processes_missing')).toBe(1);
  });

  it('fails a scrape with 503 unavailable when there is no primary to ask', async () => {
    // A channel that is closed: the worker is exiting, or was never forked.
    const closed = { connected: false, on: () => undefined, off: () => undefined };
    const client = new ClusterMetricsClient(closed, metricsOf('api-1').registry);
    const failure = await client.scrape().catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(AppError);
    expect((failure as AppError).code).toBe('unavailable');
    expect((failure as AppError).status).toBe(503);
  });

  it('fails the scrapes still waiting when the app closes', async () => {
    // A channel the primary never answers on.
    const channel = { connected: true, send: () => true, on: () => undefined, off: () => undefined };
    const client = new ClusterMetricsClient(channel, metricsOf('api-1').registry);
    const waiting = client.scrape().catch((e: unknown) => e);
    client.close();
    expect(((await waiting) as AppError).code).toBe('unavailable');
  });

  it('ignores messages that are not its own', () => {
    const scrapes = new ClusterScrapes(() => [], 10);
    const peer = { send: (_m: PrimaryMetricsMessage) => true };
    expect(scrapes.handle(peer, { fxf: 'listening' })).toBe(false);
    expect(scrapes.handle(peer, null)).toBe(false);
    expect(scrapes.handle(peer, { fxf: 'metrics-part', id: 12345 })).toBe(true);
  });
});

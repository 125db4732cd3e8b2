/**
 * What this machine charges for a hop between threads and processes after a pause: informational rows that say how
 * to read every other table (docs/performance.md, "The machine").
 *
 * An upload is a chain of such hops (its key, its limits, its dedupe lookup and its record are round trips to
 * PostgreSQL and Redis; its decode, its review and its write go through libuv's threadpool and the inference
 * workers), and on the virtual machines these tables ran on, a hop to a thread or process that had sat idle for a
 * few milliseconds cost several times one made back to back: the other side's core is woken first. So an upload
 * after a pause is slower at every step, and an upload's fixed cost moves with the host as much as with the service.
 * Each row is that hop's median after a pause against the same hop back to back, with this process's CPU for it beside
 * it (process.cpuUsage: every thread, the worker's side of its round trip too). Its CPU grows too, and more than code
 * run with no hop at all does after the same pause (the last row): the cost is in the waking, not only in cold caches.
 *
 *   npm run bench -- [runs] machine
 */
import { createHash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import Redis from 'ioredis';
import { Client } from 'pg';
import { type BenchSuite, median, row } from '../lib/report';
import { ADMIN_URL, REDIS_URL } from '../lib/service-process';

/** Round trips per run and pattern. */
const TRIPS = 60;
/** The pause before each round trip of the "after a pause" pattern: about a review's length. */
const PAUSE_MS = 20;

/** Work with no hop in it: the SHA-256 of 256 KB (a 1080p JPEG's hash; about 0.15 ms back to back here). */
const BYTES = Buffer.alloc(256 * 1024, 7);
const compute = (): Promise<Buffer> => Promise.resolve(createHash('sha256').update(BYTES).digest());

interface Hop {
  label: string;
  trip: () => Promise<unknown>;
}

interface Timing {
  ms: number;
  cpuMs: number;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The median round trip (ms) and this thread's median CPU for it, each trip after `pauseMs` (none: back to back). */
async function trips(hop: Hop, pauseMs: number): Promise<Timing> {
  const ms: number[] = [];
  const cpuMs: number[] = [];
  for (let i = 0; i < TRIPS; i++) {
    if (pauseMs > 0) {
      await sleep(pauseMs);
    }
    const cpu = process.cpuUsage();
    const started = performance.now();
    await hop.trip();
    ms.push(performance.now() - started);
    const used = process.cpuUsage(cpu);
    cpuMs.push((used.user + used.system) / 1000);
  }
  return { ms: median(ms), cpuMs: median(cpuMs) };
}

export const suite: BenchSuite = {
  name: 'machine',
  async run({ runs }) {
    const worker = new Worker(
      "const { parentPort } = require('node:worker_threads'); parentPort.on('message', (m) => parentPort.postMessage(m));",
      { eval: true },
    );
    const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    const pg = new Client({ connectionString: ADMIN_URL });
    await pg.connect();
    const hops: Hop[] = [
      {
        label: 'a round trip to a worker thread (postMessage and its answer)',
        trip: () =>
          new Promise((resolve) => {
            worker.once('message', resolve);
            worker.postMessage(1);
          }),
      },
      { label: 'a round trip to Redis (PING, ioredis)', trip: () => redis.ping() },
      { label: 'a round trip to PostgreSQL (select 1, pg)', trip: () => pg.query('select 1') },
      { label: 'no hop: the SHA-256 of 256 KB on this thread', trip: compute },
    ];
    const results = hops.map(() => ({ steady: [] as Timing[], paused: [] as Timing[] }));
    try {
      for (const hop of hops) {
        await trips(hop, 0); // warm-up: the code paths and the connections
      }
      for (let r = 0; r < runs; r++) {
        for (const [i, hop] of hops.entries()) {
          results[i].steady.push(await trips(hop, 0));
          results[i].paused.push(await trips(hop, PAUSE_MS));
        }
      }
    } finally {
      await worker.terminate();
      redis.disconnect();
      await pg.end();
    }
    const µs = (ms: number): string => `${(ms * 1000).toFixed(0)} µs`;
    return hops.map((hop, i) => {
      const steady = results[i].steady;
      const paused = results[i].paused;
      return row({
        label: `${hop.label}, after ${PAUSE_MS} ms idle (µs)`,
        value: median(paused.map((t) => t.ms)) * 1000,
        baselineLabel: 'back to back',
        baseline: median(steady.map((t) => t.ms)) * 1000,
        unit: 'µs',
        note:
          `informational; this process's CPU for it ${µs(median(paused.map((t) => t.cpuMs)))} after the pause, ` +
          `${µs(median(steady.map((t) => t.cpuMs)))} back to back; ${runs} runs × ${TRIPS} trips`,
      });
    });
  },
};

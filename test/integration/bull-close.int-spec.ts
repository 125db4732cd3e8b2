import type { Logger } from '@nestjs/common';
import { Queue, Worker } from 'bullmq';
import Redis from 'ioredis';
import { createHook } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AppConfig } from '../../src/config/app-config';
import { closeBull, closeRedis } from '../../src/common/jobs/bull';
import { PeriodicJob } from '../../src/common/jobs/periodic-job';
import { readInfra } from '../setup/infra';
import { freePort, silentServer } from '../setup/private-servers';
import { TcpProxy } from '../setup/tcp-proxy';
import { waitFor } from '../setup/wait';

/**
 * BullMQ (bullmq#3546): a connection closed while it is still coming up, after an earlier attempt failed, rejects
 * its start-up promise with that failure once the socket closes; close() has by then removed the connection's
 * listeners, so the rejection is unhandled. A server (Node ends on an unhandled rejection) would crash in its
 * shutdown; in jest it failed whichever test was closing an app whose Redis was down (CI, rate-limits e2e,
 * "connect ECONNREFUSED 127.0.0.1:1").
 */
describe('Closing BullMQ objects whose Redis is not up (integration)', () => {
  const unhandled: unknown[] = [];
  const collect = (reason: unknown): void => {
    unhandled.push(reason);
  };

  beforeAll(() => {
    process.on('unhandledRejection', collect);
  });

  afterAll(() => {
    process.off('unhandledRejection', collect);
  });

  it('should leave no rejection unhandled when a connection that was refused is mid-handshake at close', async () => {
    // Nothing listens on the port at first: every connection's first attempt is refused (its last error)...
    const port = await freePort();
    const config = { redisUrl: `redis://127.0.0.1:${port}`, redisPrefix: `bullclose${port}:` } as AppConfig;
    // The job logs its connection's errors (the worker's 'error', a failed schedule) as warnings.
    let warned = 0;
    const logger = { warn: () => warned++ } as unknown as Logger;
    const job = PeriodicJob.start(
      config,
      { queue: 'q', schedulerId: 's', name: 'n', everyMs: 60_000, run: () => Promise.resolve(0) },
      logger,
    );
    await waitFor('a refused attempt', () => warned > 0, 10_000);
    // ...then a Redis that accepts and never answers: the retries connect and hang in the handshake.
    const silent = await silentServer(port);
    try {
      // The shared connection and the worker's blocking one.
      await waitFor('two connections to the silent Redis', () => silent.sockets.length >= 2, 10_000);
      unhandled.length = 0;
      await job.close();
    } finally {
      silent.close();
    }
    // Whatever the close left to the sockets' own close events has happened by now.
    await sleep(500);
    expect(unhandled.map((e) => String(e))).toEqual([]);
  });
});

/** Tracks every timer made from now until stop(); pending() names those still pending by the stack that made each. */
function trackTimers(): { pending: () => string[]; stop: () => void } {
  const live = new Map<number, { timer: NodeJS.Timeout; stack: string }>();
  const hook = createHook({
    init(id, type, _trigger, resource) {
      if (type === 'Timeout') {
        live.set(id, { timer: resource as NodeJS.Timeout, stack: new Error().stack ?? '' });
      }
    },
    destroy(id) {
      live.delete(id);
    },
  });
  hook.enable();
  return {
    pending: () =>
      [...live.values()]
        .filter(({ timer }) => timer.hasRef() && !(timer as unknown as { _destroyed: boolean })._destroyed)
        .map(({ stack }) => stack),
    stop: () => hook.disable(),
  };
}

describe('A BullMQ worker that closeBull gives up on (integration)', () => {
  it("should stop the worker's timers and drop its blocking connection when a run outlasts the polite close", async () => {
    const prefix = `bullabandon${randomUUID().slice(0, 8)}`;
    const connection = new Redis(readInfra().redisUrl, { maxRetriesPerRequest: null });
    const queue = new Queue('q', { connection, prefix });
    // Its own connection: giving up on the worker drops the connections it was given.
    const workerConnection = new Redis(readInfra().redisUrl, { maxRetriesPerRequest: null });
    const timers = trackTimers();
    let started = false;
    // A run that never ends: what a job stuck on a dependency that never answers looks like from BullMQ.
    const worker = new Worker(
      'q',
      () => {
        started = true;
        return new Promise<void>(() => undefined);
      },
      // Short periods, so each timer has re-armed several times over the test: the lock extender every 100 ms.
      { connection: workerConnection, prefix, lockDuration: 400, stalledInterval: 300 },
    );
    try {
      await queue.add('n', {});
      await waitFor('the run to start', () => started, 10_000);
      const bullTimers = (): string[] =>
        timers.pending().filter((stack) => /startLockExtenderTimer|stalledChecker/.test(stack));
      // Both timers run while the worker runs.
      await waitFor('the lock extender and the stalled-job checker', () => bullTimers().length >= 2, 5_000);
      // Redis lists a worker by the name of the blocking connection BullMQ made for it.
      expect(await queue.getWorkers()).toHaveLength(1);

      expect(await closeBull(worker, true, 300)).toBe(false);
      // Longer than either period: a timer that re-arms itself would be pending again by now.
      await sleep(700);
      expect(bullTimers()).toEqual([]);
      expect(await queue.getWorkers()).toEqual([]);
    } finally {
      timers.stop();
      await queue.obliterate({ force: true });
      await closeBull(queue, true, 2000);
      await closeRedis(connection);
      await closeRedis(workerConnection);
    }
  });
});

describe('closeRedis (integration)', () => {
  it('should leave no timer behind for a connection that has ended already', async () => {
    const connection = new Redis(readInfra().redisUrl);
    await connection.ping();
    connection.disconnect();
    await waitFor('the connection to end', () => connection.status === 'end', 5_000);
    const timers = trackTimers();
    try {
      await closeRedis(connection);
      // ioredis's disconnect would end the closed socket again and wait 2 s for a close event that came before.
      expect(timers.pending()).toEqual([]);
    } finally {
      timers.stop();
    }
  });
});

describe('A periodic job whose Redis path went silent (integration)', () => {
  it('should make its connection anew while idle and run again once the path is back', async () => {
    const proxy = await TcpProxy.inFrontOf(readInfra().redisUrl);
    const prefix = `bullsilent${randomUUID().slice(0, 8)}:`;
    const config = { redisUrl: proxy.via(readInfra().redisUrl), redisPrefix: prefix } as AppConfig;
    const warnings: string[] = [];
    const logger = {
      warn: (m: unknown, text?: string) => warnings.push(String(text ?? m)),
    } as unknown as Logger;
    let runs = 0;
    const job = PeriodicJob.start(
      config,
      { queue: 'q', schedulerId: 's', name: 'tick', everyMs: 500, run: () => Promise.resolve(++runs) },
      logger,
    );
    try {
      await waitFor('a first run', () => runs > 0, 10_000);
      // Its open connections stay open and carry nothing, as when a Redis host is lost without a reset.
      await proxy.setMode('silence');
      await sleep(1000);
      await proxy.setMode('pass');
      // Found dead by its heartbeat, with no run asking anything of it: without the watch it waited for TCP (about
      // 15 minutes), and the job did not run meanwhile.
      await waitFor(
        'the connection made anew',
        () => warnings.some((w) => /^tick's Redis connection sent nothing for \d+ ms/.test(w)),
        15_000,
      );
      const before = runs;
      await waitFor('runs again', () => runs > before, 15_000);
    } finally {
      // A blocking connection still in the dead path: cut it, so the close is quick.
      await proxy.setMode('refuse');
      await proxy.setMode('pass');
      await job.queue.obliterate({ force: true }).catch(() => undefined);
      await job.close();
      await proxy.close();
    }
  });
});

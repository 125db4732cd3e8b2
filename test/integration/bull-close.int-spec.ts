import type { Logger } from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AppConfig } from '../../src/config/app-config';
import { PeriodicJob } from '../../src/common/jobs/periodic-job';
import { freePort, silentServer } from '../setup/private-servers';
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

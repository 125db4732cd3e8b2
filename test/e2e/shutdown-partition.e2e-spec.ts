import Redis from 'ioredis';
import { PrivateRedis } from '../setup/private-servers';
import { TcpProxy } from '../setup/tcp-proxy';
import { createTestApp } from '../setup/test-app';
import { waitFor } from '../setup/wait';

/** janitor, expiry sweep, request-count flush, sessions, webhook retention, webhook reconciler. */
const PERIODIC_JOBS = 6;

/** Far longer than a clean close (about a second here), far shorter than "never". */
const CLOSE_WITHIN_MS = 40_000;

/**
 * A service told to stop while Redis is partitioned away still stops: every Redis client (the shared one, BullMQ's
 * queues and workers, the periodic jobs) gives up waiting for a reply and drops its socket. Before the bounded
 * closes, app.close() could wait forever for a QUIT or a worker that never got an answer (SIGTERM then hangs
 * until the orchestrator's SIGKILL). Real faults: the app's own redis-server behind a proxy that accepts and never
 * answers, and the same server killed.
 */
describe('Shutdown while Redis is unreachable (e2e)', () => {
  let redis: PrivateRedis;
  let proxy: TcpProxy;

  beforeEach(async () => {
    redis = await PrivateRedis.start();
    proxy = await new TcpProxy('127.0.0.1', redis.port).start();
  });
  afterEach(async () => {
    await proxy?.close();
    await redis?.stop();
  });

  async function closeAfter(fault: () => Promise<void>): Promise<'closed' | 'hung'> {
    const t = await createTestApp({ env: { REDIS_URL: proxy.via(redis.url) } });
    expect((await t.http.get('/readyz')).status).toBe(200);
    // The periodic jobs have scheduled themselves (their BullMQ connections are initialised). A partition in the
    // very first moments, while BullMQ still initialises them, makes BullMQ emit an error on a connection it has
    // already closed at shutdown: an unhandled rejection inside BullMQ, not a hang, and outside this test.
    const direct = new Redis(redis.url);
    try {
      await waitFor('the periodic jobs scheduled', async () => {
        const keys = await direct.keys(`${t.config.redisPrefix}{bull}:*:repeat`);
        return keys.length >= PERIODIC_JOBS;
      });
    } finally {
      direct.disconnect();
    }
    await fault();
    // The fault is seen: the app says it is not ready (its Redis check times out or is refused).
    expect((await t.http.get('/readyz')).status).toBe(503);
    let timer: NodeJS.Timeout | undefined;
    const hung = new Promise<'hung'>((resolve) => {
      timer = setTimeout(() => resolve('hung'), CLOSE_WITHIN_MS);
    });
    try {
      return await Promise.race([t.close().then(() => 'closed' as const), hung]);
    } finally {
      clearTimeout(timer);
    }
  }

  it('should close while Redis accepts connections and never answers', async () => {
    expect(await closeAfter(() => proxy.setMode('blackhole'))).toBe('closed');
    // Nothing left behind: every client's socket is gone (ioredis destroys a half-closed one after its
    // disconnectTimeout, 2 s, when the peer never closes its side).
    await waitFor('no connection left', () => Promise.resolve(proxy.openConnections === 0), 10_000);
  }, 90_000);

  it('should close while the redis-server is gone', async () => {
    expect(await closeAfter(() => redis.stop())).toBe('closed');
  }, 90_000);
});

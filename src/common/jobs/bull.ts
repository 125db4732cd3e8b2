import { RedisConnection } from 'bullmq';
import type Redis from 'ioredis';
import type { AppConfig } from '../../config/app-config';
import { settleWithin, withTimeout } from '../time/timeout';

/**
 * BullMQ's key prefix: REDIS_PREFIX + "{bull}", so each deployment (and each test file) has its own queues. The hash
 * tag puts every key of every queue in one Redis Cluster slot: BullMQ's scripts touch several keys of a queue at once.
 */
export function bullPrefix(config: AppConfig): string {
  return `${config.redisPrefix}{bull}`;
}

/**
 * BullMQ (bullmq#3546; in 5.63.0, the version pinned here): a connection closed while it is still coming up (an
 * earlier attempt failed, a later one is mid-handshake) removes its listeners at once, and its start-up promise
 * rejects with that earlier failure only when the socket has closed, a moment later; its constructor re-emits the
 * rejection as an 'error' that nobody listens to any more, and the emit throws: an unhandled rejection, which ends a
 * process at shutdown (and failed a test whose Redis was down). So every connection BullMQ makes, the worker's
 * blocking one included (it makes that one itself, so a Connection subclass can't reach it), keeps a listener that
 * drops errors after its close. Applied once, when this module loads: every BullMQ object in the service is built by
 * code that imports it.
 */
const { close: bullClose } = RedisConnection.prototype as {
  close: (this: RedisConnection, force?: boolean) => Promise<void>;
};
RedisConnection.prototype.close = async function closeQuietly(this: RedisConnection, force?: boolean) {
  try {
    await bullClose.call(this, force);
  } finally {
    // After close's own removeAllListeners(). For a connection still coming up, close() only disconnects and ends
    // within microtasks, so this listener is in place before the socket's close event brings the rejection.
    this.on('error', () => undefined);
  }
};

/** The one shutdown wait (common/time), re-exported for the queue code that uses it beside the helpers here. */
export { settleWithin };

/** Whether a connection is up or still coming up (not retrying a Redis that's down, not closed). */
export function redisReachable(connection: Redis): boolean {
  return ['ready', 'connect', 'connecting'].includes(connection.status);
}

/** How long a QUIT, a PING or a forced close may wait for Redis at shutdown. */
export const QUIT_WAIT_MS = 2000;

/** How long a BullMQ object whose connections still come up may take to get ready before it is closed. */
const READY_WAIT_MS = 2000;

/**
 * QUIT when connected (pending replies arrive first), else drop the socket: never wait on a Redis that's down. A
 * connection that still says `ready` across a partition (the peer accepts and never answers) would wait for QUIT's
 * reply forever and hold the whole shutdown, so the QUIT gets QUIT_WAIT_MS.
 */
export async function closeRedis(connection: Redis): Promise<void> {
  if (connection.status === 'ready') {
    await withTimeout(connection.quit(), QUIT_WAIT_MS, () => new Error('quit')).catch(() =>
      connection.disconnect(),
    );
  } else {
    connection.disconnect();
  }
}

/** Whether Redis answers a PING on `connection` now (within QUIT_WAIT_MS). */
export async function redisAnswers(connection: Redis): Promise<boolean> {
  if (!redisReachable(connection)) {
    return false;
  }
  return withTimeout(connection.ping(), QUIT_WAIT_MS, () => new Error('ping')).then(
    () => true,
    () => false,
  );
}

/** A BullMQ Worker or Queue, as closeBull uses it. */
interface Closable {
  waitUntilReady(): Promise<unknown>;
  close(force?: boolean): Promise<void>;
  disconnect(): Promise<void>;
}

/**
 * Closes a BullMQ worker or queue at shutdown without ever hanging on Redis. While Redis answers (`answering`:
 * redisAnswers() on the connection the object was given), the close is polite: a worker lets the jobs it runs
 * finish, within `politeMs`, else its connections are dropped. While Redis does not answer (down, or a partition
 * that accepts and never answers), the close is forced at once: BullMQ's polite close QUITs its own blocking
 * connection, and that QUIT would wait for a reply forever. True when the close was polite and finished in time.
 */
export async function closeBull(target: Closable, answering: boolean, politeMs: number): Promise<boolean> {
  if (answering) {
    // Closing an object whose connections are still initialising leaves an ioredis rejection unhandled.
    await settleWithin(target.waitUntilReady(), READY_WAIT_MS);
    const closed = await withTimeout(
      target.close().then(() => true),
      politeMs,
      () => new Error('close'),
    ).catch(() => false);
    if (closed) {
      return true;
    }
    await settleWithin(target.disconnect(), QUIT_WAIT_MS);
    return false;
  }
  await settleWithin(target.close(true), QUIT_WAIT_MS);
  return false;
}

import type { Logger } from '@nestjs/common';
import { RedisConnection, Worker } from 'bullmq';
import Redis, { type RedisOptions } from 'ioredis';
import type { AppConfig } from '../../config/app-config';
import { REDIS_STALL_MS, watchForStalls } from '../redis/stall-watch';
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

/** The stall watch (with its heartbeat) of each connection bullConnection made, stopped by closeRedis. */
const stallWatches = new WeakMap<Redis, () => void>();

/**
 * A Redis connection for BullMQ objects (a queue, a worker), watched as the shared client is (common/redis/
 * stall-watch): once its commands have waited REDIS_STALL_MS for nothing, a connection whose path died without a
 * reset (a Redis host lost, a NAT that forgot the flow) is dropped and made anew, instead of when TCP gives up, about
 * 15 minutes later. Unwatched, it held the outbox relay's enqueues and a worker's scripts that long, and with them
 * every webhook delivery and periodic job, though Redis was back. The watch's heartbeat finds an idle connection dead
 * too, before its next job needs it. A stall is a warning on `logger`: "<owner>'s Redis connection sent nothing for…".
 * A worker's blocking connection (BZPOPMIN) is BullMQ's own, which drops it when a call outlasts its timeout by a
 * second. closeRedis stops the watch.
 */
export function bullConnection(
  url: string,
  options: RedisOptions,
  logger: Pick<Logger, 'warn'>,
  owner: string,
): Redis {
  const connection = new Redis(url, options);
  // Connection errors surface through the commands that fail; don't crash on the emitter.
  connection.on('error', () => undefined);
  const onStall = (silentMs: number): void =>
    logger.warn(
      `${owner}'s Redis connection sent nothing for ${silentMs} ms while commands waited: reconnecting`,
    );
  stallWatches.set(connection, watchForStalls(connection, onStall, REDIS_STALL_MS, { heartbeat: true }));
  return connection;
}

/**
 * QUIT when connected (pending replies arrive first), else drop the socket: never wait on a Redis that's down. A
 * connection that still says `ready` across a partition (the peer accepts and never answers) would wait for QUIT's
 * reply forever and hold the whole shutdown, so the QUIT gets QUIT_WAIT_MS.
 */
export async function closeRedis(connection: Redis): Promise<void> {
  stallWatches.get(connection)?.();
  stallWatches.delete(connection);
  if (connection.status === 'end') {
    // Closed already (a BullMQ object given up on drops the connections it was given): ioredis's disconnect would end
    // the closed socket again and keep a 2 s timer waiting for a close event that came long ago.
    return;
  }
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
 * finish, within `politeMs`, else its connections are dropped and it is abandoned (below). While Redis does not
 * answer (down, or a partition that accepts and never answers), the close is forced at once: BullMQ's polite close
 * QUITs its own blocking connection, and that QUIT would wait for a reply forever. True when the close was polite and
 * finished in time.
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
    await abandon(target);
    return false;
  }
  await settleWithin(target.close(true), QUIT_WAIT_MS);
  await abandon(target);
  return false;
}

/** The parts of a BullMQ 5.63 Worker that its close() settles only once it has run to its end. */
interface WorkerInternals {
  closed: boolean;
  extendLocksTimer?: ReturnType<typeof setTimeout> | null;
  stalledCheckStopper?: () => void;
  blockingConnection: RedisConnection;
}

/**
 * What a worker's close() does at its end, for a worker whose close() did not get there: a run that outlasts the
 * wait, or a blocking call stuck on a connection that came back. Its disconnect() drops only the connection it was
 * given, not the blocking one BullMQ made for it, and until close() ends, its lock extender re-arms itself and its
 * stalled-job checker goes on. Once closeBull has given up, nothing of the worker may run on: an abandoned run's lock
 * must lapse so that another instance's stalled-job check takes the job back. (In a test process, those timers and
 * that socket outlived the app that made them for the rest of the jest worker's life.)
 */
async function abandon(target: Closable): Promise<void> {
  if (!(target instanceof Worker)) {
    return;
  }
  const worker = target as unknown as WorkerInternals;
  worker.closed = true;
  clearTimeout(worker.extendLocksTimer ?? undefined);
  worker.stalledCheckStopper?.();
  // A check still waiting on Redis arms its next wait (stalledInterval, 30 s by default) when that call fails, and
  // looks at the worker's state only once the wait is over: each wait it arms from now on ends as it is armed.
  Object.defineProperty(worker, 'stalledCheckStopper', {
    configurable: true,
    get: () => undefined,
    set: (stop: () => void) => stop(),
  });
  // Forced: a QUIT could wait on a Redis that does not answer. A no-op when close() got that far.
  await settleWithin(worker.blockingConnection.close(true), QUIT_WAIT_MS);
}

import type { JobsOptions } from 'bullmq';
import type Redis from 'ioredis';
import type { AppConfig } from '../../config/app-config';

/** The BullMQ queue that carries one job per (event, endpoint); the job id is the outbox row id. */
export const WEBHOOK_DELIVERY_QUEUE = 'webhook-delivery';

/** The storage janitor's sweeps (a job scheduler plus one sweep after each start). */
export const JANITOR_QUEUE = 'janitor';

export interface WebhookDeliveryJob {
  /** The outbox row, which is also the delivery id (X-Fixitfy-Delivery). */
  eventId: string;
}

/** API.md: at least 5 attempts over about an hour. With a 30 s base: 30 s, 1, 2, 4, 8, 16, 32 min (−20 % jitter). */
export const MAX_DELIVERY_ATTEMPTS = 8;

/** Consecutive failed attempts after which an endpoint is disabled. */
export const AUTO_DISABLE_AFTER_FAILURES = 100;

export const MAX_WEBHOOKS_PER_ACCOUNT = 10;

/** Job options for a delivery: retries with exponential backoff and jitter are BullMQ's, kept on the job. */
export function deliveryJobOptions(eventId: string, retryBaseMs: number): JobsOptions {
  return {
    // Deterministic: a second enqueue of the same event (the relay crashed before marking it) is a no-op.
    jobId: eventId,
    attempts: MAX_DELIVERY_ATTEMPTS,
    backoff: { type: 'exponential', delay: retryBaseMs, jitter: 0.2 },
    removeOnComplete: { age: 24 * 3600, count: 10_000 },
    removeOnFail: { age: 7 * 24 * 3600 },
  };
}

/** BullMQ's key prefix: REDIS_PREFIX + "bull", so each deployment (and each test file) has its own queues. */
export function bullPrefix(config: AppConfig): string {
  return `${config.redisPrefix}bull`;
}

/** Waits for a promise to settle, at most `ms`; never throws. */
export async function settleWithin(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    promise.catch(() => undefined),
    new Promise((resolve) => (timer = setTimeout(resolve, ms))),
  ]);
  clearTimeout(timer);
}

/** Whether a connection is up or still coming up (not retrying a Redis that's down, not closed). */
export function redisReachable(connection: Redis): boolean {
  return ['ready', 'connect', 'connecting'].includes(connection.status);
}

/** QUIT when connected (pending replies arrive first), else drop the socket: never wait on a Redis that's down. */
export async function closeRedis(connection: Redis): Promise<void> {
  if (connection.status === 'ready') {
    await connection.quit().catch(() => connection.disconnect());
  } else {
    connection.disconnect();
  }
}

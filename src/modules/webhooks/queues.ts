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

/** Periodic webhook work (the reconciler): one job per period across all instances, from a job scheduler. */
export const WEBHOOK_MAINTENANCE_QUEUE = 'webhook-maintenance';

/** Webhook retention: one prune per hour across all instances, from a job scheduler. */
export const WEBHOOK_RETENTION_QUEUE = 'webhook-retention';

export const MAX_WEBHOOKS_PER_ACCOUNT = 10;

/** The backoff type of delivery jobs, computed by retryDelayMs in the worker (BullMQ's own has no ceiling). */
export const DELIVERY_BACKOFF = 'webhook';

/** The time between the failed attempt `attempt` (1-based) and the next one, ceiling and jitter applied. */
export function retryDelayMs(
  attempt: number,
  config: Pick<AppConfig, 'webhookRetryBaseMs' | 'webhookRetryMaxDelayMs'>,
  random: number = Math.random(),
): number {
  const full = Math.min(
    config.webhookRetryBaseMs * 2 ** Math.min(attempt - 1, 40),
    config.webhookRetryMaxDelayMs,
  );
  // Up to 20 % shorter, so a burst that failed together doesn't come back together.
  return Math.floor(full * (1 - 0.2 * random));
}

/** Job options for a delivery: retries with capped exponential backoff and jitter are BullMQ's, kept on the job. */
export function deliveryJobOptions(eventId: string, maxAttempts: number): JobsOptions {
  return {
    // Deterministic: a second enqueue of the same event (the relay crashed before marking it) is a no-op.
    jobId: eventId,
    attempts: maxAttempts,
    backoff: { type: DELIVERY_BACKOFF },
    // The database keeps the record (outbox row + attempts); a finished job is removed at once, so an event that is
    // held and released later, or re-enqueued by the reconciler, can be added again under the same id.
    removeOnComplete: true,
    removeOnFail: true,
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

import type { JobsOptions } from 'bullmq';
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

// Moved to common/jobs (the periodic jobs use them too); re-exported for the webhook code.
export {
  bullConnection,
  bullPrefix,
  closeBull,
  closeRedis,
  QUIT_WAIT_MS,
  redisAnswers,
} from '../../common/jobs/bull';

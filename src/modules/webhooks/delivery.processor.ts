import {
  type BeforeApplicationShutdown,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  Optional,
} from '@nestjs/common';
import { DelayedError, type Job, Worker } from 'bullmq';
import type Redis from 'ioredis';
import { ProcessRoleService } from '../../common/jobs/process-role.service';
import { Metrics } from '../../common/metrics/metrics.service';
import { AppConfig } from '../../config/app-config';
import {
  bullConnection,
  bullPrefix,
  closeBull,
  closeRedis,
  DELIVERY_BACKOFF,
  redisAnswers,
  retryDelayMs,
  WEBHOOK_DELIVERY_QUEUE,
  type WebhookDeliveryJob,
} from './queues';
import { DeliveryFailedError, WebhookDeliveryService } from './webhook-delivery.service';

const CONCURRENCY = 8;
/** A run that found its event claimed by another comes back after this, without spending an attempt. */
const BUSY_RETRY_MS = 5000;

/**
 * The BullMQ worker for deliveries: in the roles that start 'delivery' (all, worker; never api or cli). It is made here rather
 * than through @nestjs/bullmq's @Processor so the role decides whether it exists at all, and so shutdown drains
 * in-flight deliveries (worker.close()) before the database connection closes (beforeApplicationShutdown runs
 * ahead of every onApplicationShutdown).
 */
@Injectable()
export class WebhookDeliveryProcessor implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(WebhookDeliveryProcessor.name);
  private worker: Worker<WebhookDeliveryJob> | null = null;
  private connection: Redis | null = null;

  constructor(
    private readonly config: AppConfig,
    private readonly deliveries: WebhookDeliveryService,
    private readonly roles: ProcessRoleService,
    @Optional() private readonly metrics?: Metrics,
  ) {}

  onApplicationBootstrap(): void {
    if (!this.roles.starts('delivery')) {
      return;
    }
    // Workers block on Redis: BullMQ requires maxRetriesPerRequest null on their connection.
    this.connection = bullConnection(
      this.config.redisUrl,
      { maxRetriesPerRequest: null },
      this.logger,
      'the worker',
    );
    this.worker = new Worker<WebhookDeliveryJob>(
      WEBHOOK_DELIVERY_QUEUE,
      (job, token) => this.process(job, token),
      {
        connection: this.connection,
        prefix: bullPrefix(this.config),
        concurrency: CONCURRENCY,
        // A delivery cut by a crash goes back to the queue rather than failing for good.
        maxStalledCount: 5,
        settings: {
          // Exponential from WEBHOOK_RETRY_BASE_MS, capped at WEBHOOK_RETRY_MAX_DELAY_MS, with jitter.
          backoffStrategy: (attemptsMade, type) =>
            type === DELIVERY_BACKOFF
              ? retryDelayMs(attemptsMade, this.config)
              : this.config.webhookRetryBaseMs,
        },
      },
    );
    this.worker.on('error', (err) => this.logger.warn({ err }, 'webhook worker error'));
  }

  /** Thin, like a controller: one attempt; a throw makes BullMQ retry with the job's backoff. */
  async process(job: Job<WebhookDeliveryJob>, token?: string): Promise<void> {
    const outcome = await this.deliveries.deliver(job.data.eventId);
    this.metrics?.webhookDeliveries.inc({ outcome: outcome.kind });
    if (outcome.kind === 'retry') {
      throw new DeliveryFailedError(outcome.error);
    }
    if (outcome.kind === 'busy' && token) {
      // Another run is sending this very attempt; if it dies, its claim expires and this one takes over.
      await job.moveToDelayed(Date.now() + BUSY_RETRY_MS, token);
      throw new DelayedError();
    }
  }

  async beforeApplicationShutdown(): Promise<void> {
    if (this.worker && this.connection) {
      // In-flight deliveries finish (each is bounded by WEBHOOK_TIMEOUT_MS) while Redis answers; a worker whose
      // Redis does not answer is closed at once instead of holding the shutdown.
      const waitMs = this.config.webhookTimeoutMs + 5000;
      if (!(await closeBull(this.worker, await redisAnswers(this.connection), waitMs))) {
        this.logger.warn('the webhook worker was closed without waiting for its deliveries');
      }
    }
    if (this.connection) {
      await closeRedis(this.connection);
    }
  }
}

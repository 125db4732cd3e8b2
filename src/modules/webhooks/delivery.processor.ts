import {
  type BeforeApplicationShutdown,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { type Job, Worker } from 'bullmq';
import Redis from 'ioredis';
import { AppConfig } from '../../config/app-config';
import {
  bullPrefix,
  closeRedis,
  redisReachable,
  settleWithin,
  WEBHOOK_DELIVERY_QUEUE,
  type WebhookDeliveryJob,
} from './queues';
import { WebhookDeliveryService } from './webhook-delivery.service';

const CONCURRENCY = 8;
const READY_WAIT_MS = 2000;

/**
 * The BullMQ worker for deliveries: in APP_ROLE all (default) and worker, never in api. It is made here rather
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
  ) {}

  onApplicationBootstrap(): void {
    if (this.config.appRole === 'api') {
      return;
    }
    // Workers block on Redis: BullMQ requires maxRetriesPerRequest null on their connection.
    this.connection = new Redis(this.config.redisUrl, { maxRetriesPerRequest: null });
    this.connection.on('error', () => undefined);
    this.worker = new Worker<WebhookDeliveryJob>(WEBHOOK_DELIVERY_QUEUE, (job) => this.process(job), {
      connection: this.connection,
      prefix: bullPrefix(this.config),
      concurrency: CONCURRENCY,
      // A delivery cut by a crash goes back to the queue rather than failing for good.
      maxStalledCount: 5,
    });
    this.worker.on('error', (err) => this.logger.warn({ err }, 'webhook worker error'));
  }

  /** Thin, like a controller: one attempt; a throw makes BullMQ retry with the job's backoff. */
  async process(job: Job<WebhookDeliveryJob>): Promise<void> {
    const lastAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
    await this.deliveries.deliver(job.data.eventId, lastAttempt);
  }

  async beforeApplicationShutdown(): Promise<void> {
    if (this.worker) {
      // Closing a worker whose connections are still initialising leaves an ioredis rejection unhandled (seen
      // with the CLI, which closes right after start): let it get ready first, but not wait on a Redis that's down.
      if (this.connection && redisReachable(this.connection)) {
        await settleWithin(this.worker.waitUntilReady(), READY_WAIT_MS);
      }
      await this.worker.close();
    }
    if (this.connection) {
      await closeRedis(this.connection);
    }
  }
}

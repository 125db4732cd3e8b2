import { Injectable, Logger, type OnApplicationShutdown, Optional } from '@nestjs/common';
import { Queue } from 'bullmq';
import type Redis from 'ioredis';
import { Metrics } from '../../common/metrics/metrics.service';
import { AppConfig } from '../../config/app-config';
import {
  bullConnection,
  bullPrefix,
  deliveryJobOptions,
  closeBull,
  closeRedis,
  QUIT_WAIT_MS,
  redisAnswers,
  WEBHOOK_DELIVERY_QUEUE,
  type WebhookDeliveryJob,
} from './queues';

/** The producer side of the delivery queue, used by the outbox relay. */
@Injectable()
export class WebhookQueue implements OnApplicationShutdown {
  private readonly logger = new Logger(WebhookQueue.name);
  private readonly connection: Redis;
  private readonly queue: Queue<WebhookDeliveryJob>;

  constructor(
    private readonly config: AppConfig,
    @Optional() metrics?: Metrics,
  ) {
    // Its own connection (BullMQ refuses ioredis keyPrefix). Commands fail fast while Redis is down, so the relay
    // rolls back and keeps the rows for its next poll instead of waiting on an offline queue.
    this.connection = bullConnection(
      config.redisUrl,
      { maxRetriesPerRequest: 1, connectTimeout: 2000 },
      this.logger,
      'the queue',
    );
    this.queue = new Queue<WebhookDeliveryJob>(WEBHOOK_DELIVERY_QUEUE, {
      connection: this.connection,
      prefix: bullPrefix(config),
    });
    this.queue.on('error', () => undefined);
    metrics?.watchQueueDepth(() => this.queue.getJobCounts('waiting', 'delayed', 'active', 'failed'));
  }

  /** Adds one job per event; an event already queued (same job id) is left as it is. */
  async addBulk(eventIds: string[]): Promise<void> {
    await this.queue.addBulk(
      eventIds.map((eventId) => ({
        name: 'deliver',
        data: { eventId },
        opts: deliveryJobOptions(eventId, this.config.webhookMaxAttempts),
      })),
    );
  }

  /**
   * The events among `eventIds` that have no live job: none at all (Redis lost it) or one already finished (kept
   * only if an older version queued it with removeOnComplete/removeOnFail off). A finished one is removed, so the
   * same id can be added again.
   */
  async lost(eventIds: string[]): Promise<string[]> {
    const states = await Promise.all(eventIds.map((id) => this.queue.getJobState(id)));
    const lost: string[] = [];
    for (const [i, state] of states.entries()) {
      if (state === 'completed' || state === 'failed') {
        await this.queue.remove(eventIds[i]);
        lost.push(eventIds[i]);
      } else if (state === 'unknown') {
        lost.push(eventIds[i]);
      }
    }
    return lost;
  }

  async onApplicationShutdown(): Promise<void> {
    await closeBull(this.queue, await redisAnswers(this.connection), QUIT_WAIT_MS);
    await closeRedis(this.connection);
  }
}

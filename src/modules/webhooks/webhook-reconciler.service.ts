import { EntityManager } from '@mikro-orm/postgresql';
import {
  type BeforeApplicationShutdown,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { AppConfig } from '../../config/app-config';
import { PeriodicJob } from '../../common/jobs/periodic-job';
import { ProcessRoleService } from '../../common/jobs/process-role.service';
import { WEBHOOK_MAINTENANCE_QUEUE } from './queues';
import { WebhookQueue } from './webhook-queue';

const SCHEDULER_ID = 'webhook-reconcile';
const BATCH_SIZE = 500;

/**
 * Re-enqueues what Redis lost. An event marked relayed but still open (not delivered, given up or held) after
 * WEBHOOK_RECONCILE_AFTER_MS whose job Redis no longer has — Redis restarted empty or was flushed, or the relay died
 * between marking and enqueueing — is enqueued again under its own id (delivery is idempotent by event id).
 *
 * It runs as a BullMQ job scheduler on the maintenance queue (common/jobs/periodic-job.ts), so one run per
 * WEBHOOK_RECONCILE_EVERY_MS across all instances whose role runs periodic work (never api or cli).
 */
@Injectable()
export class WebhookReconciler implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(WebhookReconciler.name);
  private job: PeriodicJob | null = null;

  constructor(
    private readonly em: EntityManager,
    private readonly config: AppConfig,
    private readonly deliveries: WebhookQueue,
    private readonly roles: ProcessRoleService,
  ) {}

  onApplicationBootstrap(): void {
    if (!this.roles.starts('periodic')) {
      return;
    }
    this.job = PeriodicJob.start(
      this.config,
      {
        queue: WEBHOOK_MAINTENANCE_QUEUE,
        schedulerId: SCHEDULER_ID,
        name: 'reconcile',
        everyMs: this.config.webhookReconcileEveryMs,
        run: () => this.reconcile(),
      },
      this.logger,
    );
  }

  /** Re-enqueues the lost events of one pass; returns how many. */
  async reconcile(): Promise<number> {
    const cutoff = new Date(Date.now() - this.config.webhookReconcileAfterMs);
    let requeued = 0;
    // Keyset on (relayed_at, id): one relay pass marks a whole batch with the same time.
    let after: [Date, string] = [new Date(0), '00000000-0000-0000-0000-000000000000'];
    for (;;) {
      const rows = await this.em.getConnection().execute<{ id: string; relayed_at: Date }[]>(
        `select id, relayed_at from outbox_events
          where delivered_at is null and failed_at is null and relayed_at is not null
            and (relayed_at, id) > (?, ?) and relayed_at < ? and held_at is null
          order by relayed_at, id limit ?`,
        [...after, cutoff, BATCH_SIZE],
      );
      if (rows.length === 0) {
        break;
      }
      const lost = await this.deliveries.lost(rows.map((r) => r.id));
      if (lost.length > 0) {
        await this.deliveries.addBulk(lost);
        requeued += lost.length;
      }
      if (rows.length < BATCH_SIZE) {
        break;
      }
      const last = rows[rows.length - 1];
      after = [new Date(last.relayed_at), last.id];
    }
    if (requeued > 0) {
      this.logger.warn({ requeued }, 'webhook events re-enqueued: their jobs were missing from Redis');
    }
    return requeued;
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.job?.close();
  }
}

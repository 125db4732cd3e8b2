import { EntityManager } from '@mikro-orm/postgresql';
import {
  type BeforeApplicationShutdown,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { PeriodicJob } from '../../common/jobs/periodic-job';
import { ProcessRoleService } from '../../common/jobs/process-role.service';
import { AppConfig } from '../../config/app-config';
import { WEBHOOK_RETENTION_QUEUE } from './queues';

const RUN_EVERY_MS = 60 * 60 * 1000;
/** Settled events and recorded attempts are kept this long: the deliveries page shows a month of history. */
export const WEBHOOK_RETENTION_MS = 30 * 24 * 60 * 60 * 1000;

/**
 * Keeps the outbox and the delivery log from growing forever: hourly, once across the deployment (a job scheduler
 * in the roles that run periodic work), it removes events that
 * were delivered or given up more than 30 days ago, events held for a disabled endpoint for more than 30 days, and
 * attempts recorded before then. Events being delivered are never touched, whatever their age.
 */
@Injectable()
export class WebhookRetentionService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(WebhookRetentionService.name);
  private job: PeriodicJob | null = null;

  constructor(
    private readonly em: EntityManager,
    private readonly config: AppConfig,
    private readonly roles: ProcessRoleService,
  ) {}

  onApplicationBootstrap(): void {
    if (!this.roles.starts('periodic')) {
      return;
    }
    this.job = PeriodicJob.start(
      this.config,
      {
        queue: WEBHOOK_RETENTION_QUEUE,
        schedulerId: 'webhook-retention',
        name: 'prune',
        everyMs: RUN_EVERY_MS,
        run: () => this.prune(),
      },
      this.logger,
    );
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.job?.close();
  }

  async prune(now = Date.now()): Promise<{ events: number; attempts: number }> {
    const cutoff = new Date(now - WEBHOOK_RETENTION_MS);
    const conn = this.em.getConnection();
    const events = await conn.execute<{ affectedRows?: number }>(
      'delete from outbox_events where coalesce(delivered_at, failed_at) < ? or held_at < ?',
      [cutoff, cutoff],
      'run',
    );
    const attempts = await conn.execute<{ affectedRows?: number }>(
      'delete from webhook_deliveries where created_at < ?',
      [cutoff],
      'run',
    );
    return { events: events.affectedRows ?? 0, attempts: attempts.affectedRows ?? 0 };
  }
}

import { EntityManager } from '@mikro-orm/postgresql';
import { Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { AppConfig } from '../../config/app-config';

const RUN_EVERY_MS = 60 * 60 * 1000;
/** Settled events and recorded attempts are kept this long: the deliveries page shows a month of history. */
export const WEBHOOK_RETENTION_MS = 30 * 24 * 60 * 60 * 1000;

/**
 * Keeps the outbox and the delivery log from growing forever: hourly, outside APP_ROLE=api, it removes events that
 * were delivered or given up more than 30 days ago, events held for a disabled endpoint for more than 30 days, and
 * attempts recorded before then. Events being delivered are never touched, whatever their age.
 */
@Injectable()
export class WebhookRetentionService implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(WebhookRetentionService.name);
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly em: EntityManager,
    private readonly config: AppConfig,
  ) {}

  onModuleInit(): void {
    if (this.config.appRole === 'api') {
      return;
    }
    this.timer = setInterval(() => {
      this.prune().catch((err: unknown) => this.logger.warn({ err }, 'webhook retention failed'));
    }, RUN_EVERY_MS);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
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

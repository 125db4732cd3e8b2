import {
  type BeforeApplicationShutdown,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { PeriodicJob } from '../../common/jobs/periodic-job';
import { ProcessRoleService } from '../../common/jobs/process-role.service';
import { AppConfig } from '../../config/app-config';
import { UploadsService } from './uploads.service';

/** The expiry sweep's queue (one job scheduler across the deployment). */
export const UPLOAD_EXPIRY_QUEUE = 'upload-expiry';
const BATCH = 200;
/** A sweep stops after this many batches; the next period carries on. */
const MAX_BATCHES = 50;

/**
 * Soft-deletes uploads past their expiry (API.md Part 3), every EXPIRY_SWEEP_SECONDS (default 30, so within a minute
 * of their time), on exactly one instance per period: a BullMQ job scheduler like the janitor's
 * (common/jobs/periodic-job.ts), in the roles that run periodic work. Reads already treat an expired upload as gone;
 * this makes it deleted for good (audit `upload.expired`, event `upload.deleted` with reason `expired`, bytes removed).
 * Two runs racing on one upload are settled by the conditional update in UploadsService: one wins.
 */
@Injectable()
export class ExpirySweepService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(ExpirySweepService.name);
  private job: PeriodicJob | null = null;

  constructor(
    private readonly uploads: UploadsService,
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
        queue: UPLOAD_EXPIRY_QUEUE,
        schedulerId: 'upload-expiry-sweep',
        name: 'expire',
        everyMs: this.config.expirySweepMs,
        run: () => this.sweep(),
        keep: 20,
      },
      this.logger,
    );
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.job?.close();
  }

  /** One sweep: every due upload, a batch at a time. Returns how many it deleted. */
  async sweep(): Promise<number> {
    let total = 0;
    for (let i = 0; i < MAX_BATCHES; i++) {
      const done = await this.uploads.expireDue(BATCH);
      total += done;
      if (done < BATCH) {
        break;
      }
    }
    if (total > 0) {
      this.logger.log({ expired: total }, 'expired uploads deleted');
    }
    return total;
  }
}

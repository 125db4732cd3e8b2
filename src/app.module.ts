import { type DynamicModule, Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { LoggerModule } from 'nestjs-pino';
import { AuthGuard } from './common/auth/auth.guard';
import { CommonModule } from './common/common.module';
import { JobsModule } from './common/jobs/jobs.module';
import type { ProcessRole } from './common/jobs/process-role';
import { loggerOptions } from './common/logging/logger-options';
import { MetricsModule } from './common/metrics/metrics.module';
import { RateLimitGuard } from './common/rate-limit/rate-limit.guard';
import { RateLimitModule } from './common/rate-limit/rate-limit.module';
import { AppConfig } from './config/app-config';
import { ConfigModule } from './config/config.module';
import { DatabaseModule } from './database/database.module';
import { AdminModule } from './modules/admin/admin.module';
import { ApiKeysModule } from './modules/api-keys/api-keys.module';
import { AuditModule } from './modules/audit/audit.module';
import { AuthModule } from './modules/auth/auth.module';
import { HealthModule } from './modules/health/health.module';
import { ModerationModule } from './modules/moderation/moderation.module';
import { UploadsModule } from './modules/uploads/uploads.module';
import { DeliveryModule } from './modules/delivery/delivery.module';
import { WebhooksModule } from './modules/webhooks/webhooks.module';
import { WebModule } from './modules/web/web.module';

@Module({})
export class AppModule {
  /**
   * The whole app for one resolved config (databaseUrl set: main.ts starts the embedded PostgreSQL first). `role`
   * decides what starts (common/jobs/process-role.ts): APP_ROLE for the service, 'cli' for the operator CLI.
   */
  static forRoot(config: AppConfig, role: ProcessRole = config.appRole): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot(config),
        JobsModule.forRoot(role),
        LoggerModule.forRoot(loggerOptions(config)),
        CommonModule,
        MetricsModule,
        RateLimitModule,
        DatabaseModule.forRoot(),
        AuditModule,
        AuthModule,
        ApiKeysModule,
        ModerationModule,
        UploadsModule,
        DeliveryModule,
        WebhooksModule,
        HealthModule,
        AdminModule,
        WebModule,
      ],
      // Global guards run in this order: authenticate first, then rate-limit the known key before any body is read.
      providers: [
        { provide: APP_GUARD, useClass: AuthGuard },
        { provide: APP_GUARD, useClass: RateLimitGuard },
      ],
    };
  }
}

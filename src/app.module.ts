import {
  type DynamicModule,
  type MiddlewareConsumer,
  Module,
  type NestModule,
  RequestMethod,
} from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { LoggerModule } from 'nestjs-pino';
import { AuthGuard } from './common/auth/auth.guard';
import { requestBodyMiddleware } from './common/http/request-body';
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
export class AppModule implements NestModule {
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

  /**
   * Bodies and cookies are read here, not by parsers on the Express app: Nest applies a module's middleware after
   * the global modules' (the request log's and the metrics'), so an unreadable body is logged, counted and answered
   * with its request id. The app is created with `bodyParser: false` (HTTP_APP_OPTIONS) for the same reason.
   */
  configure(consumer: MiddlewareConsumer): void {
    consumer.apply(...requestBodyMiddleware()).forRoutes({ path: '{*path}', method: RequestMethod.ALL });
  }
}

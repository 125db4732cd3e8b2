import { Module } from '@nestjs/common';
import { ThrottlerModule } from '@nestjs/throttler';
import { AppConfig } from '../../config/app-config';
import { limitSubject, type Principal } from '../auth/principal';
import { RedisService } from '../redis/redis.module';
import { Clock } from '../time/clock';
import type { ThrottlerName } from './rate-limit.decorator';
import { RateLimiter } from './rate-limiter';
import { RedisRateLimitStorage } from './redis-rate-limit.storage';

const MINUTE_MS = 60_000;
const DAY_MS = 24 * 60 * MINUTE_MS;

/**
 * @nestjs/throttler configured from AppConfig.rateLimit, on the shared Redis storage. The RateLimitGuard itself is
 * registered in AppModule, after the AuthGuard, because APP_GUARDs run in registration order; both it and the read
 * fast path admit requests through RateLimiter.
 */
@Module({
  imports: [
    ThrottlerModule.forRootAsync({
      inject: [AppConfig, RedisService, Clock],
      useFactory: (config: AppConfig, redis: RedisService, clock: Clock) => {
        const { uploadsPerMinute, uploadsPerDay, managementPerMinute } = config.rateLimit;
        const throttlers: { name: ThrottlerName; ttl: number; limit: number }[] = [
          { name: 'uploads-minute', ttl: MINUTE_MS, limit: uploadsPerMinute },
          { name: 'uploads-day', ttl: DAY_MS, limit: uploadsPerDay },
          { name: 'management', ttl: MINUTE_MS, limit: managementPerMinute },
        ];
        return {
          throttlers,
          storage: new RedisRateLimitStorage(redis, clock),
          // Per key (a ut_ token as its minting key) or per session user; never per IP.
          getTracker: (req: Record<string, unknown>) => limitSubject(req.principal as Principal),
          // One budget per subject across all routes of a group; {…} keeps a subject's windows in one cluster slot
          // (the one script checks them together). "rlw": the bounded windows; the old "rl:" sorted sets just expire.
          generateKey: (_ctx, tracker, name) => `rlw:{${tracker}}:${name}`,
        };
      },
    }),
  ],
  providers: [RateLimiter],
  exports: [RateLimiter],
})
export class RateLimitModule {}

import { Injectable, Logger, Optional } from '@nestjs/common';
import {
  InjectThrottlerOptions,
  InjectThrottlerStorage,
  type ThrottlerGenerateKeyFunction,
  type ThrottlerGetTrackerFunction,
  type ThrottlerModuleOptions,
  type ThrottlerOptions,
} from '@nestjs/throttler';
import { AppConfig } from '../../config/app-config';
import type { Principal } from '../auth/principal';
import { AppError } from '../errors/app-error';
import { Metrics } from '../metrics/metrics.service';
import { type RateLimitGroup, THROTTLERS, type ThrottlerName } from './rate-limit.decorator';
import type { RateWindow, RateWindowState } from './redis-rate-limit.storage';
import { RedisRateLimitStorage } from './redis-rate-limit.storage';

const seconds = (ms: number): number => Math.max(0, Math.ceil(ms / 1000));

/**
 * One request of a principal against every window of a rate-limit group (API.md "Rate limits"), in one atomic call to
 * the shared storage, with the throttlers, trackers and keys @nestjs/throttler is configured with (RateLimitModule).
 * The RateLimitGuard asks it for every routed request; the read fast path (uploads/read-fast-path.ts) for the reads it
 * answers in front of Express.
 */
@Injectable()
export class RateLimiter {
  private readonly logger = new Logger('RateLimitGuard');
  private readonly throttlers: ThrottlerOptions[];
  private readonly trackerOf: ThrottlerGetTrackerFunction;
  private readonly keyOf: ThrottlerGenerateKeyFunction;

  constructor(
    @InjectThrottlerOptions() options: ThrottlerModuleOptions,
    @InjectThrottlerStorage() private readonly storage: RedisRateLimitStorage,
    private readonly config: AppConfig,
    @Optional() private readonly metrics?: Metrics,
  ) {
    if (Array.isArray(options) || !options.getTracker || !options.generateKey) {
      throw new Error('RateLimiter needs throttlers with getTracker and generateKey (RateLimitModule)');
    }
    this.throttlers = options.throttlers;
    this.trackerOf = options.getTracker;
    this.keyOf = options.generateKey;
  }

  /**
   * Admits the request or throws the refusal: AppError 429 (`rate_limit` or `rate_limit_day`, with Retry-After and
   * the refusing window's X-RateLimit-* headers), or 503 when Redis can't answer (unless RATE_LIMIT_FAIL_OPEN).
   * Resolves with the X-RateLimit-* headers to answer with (none when admitted fail-open).
   */
  async admit(group: RateLimitGroup, principal: Principal): Promise<Record<string, string>> {
    // RateLimitModule's tracker reads only the principal, its key only the tracker and the throttler's name.
    const tracker = await this.trackerOf({ principal }, undefined as never);
    const windows: (RateWindow & { name: ThrottlerName })[] = [];
    for (const t of this.throttlers) {
      const name = t.name as ThrottlerName;
      if (THROTTLERS[name]?.group !== group) {
        continue;
      }
      windows.push({
        name,
        key: this.keyOf(undefined as never, tracker, name),
        windowMs: t.ttl as number,
        limit: t.limit as number,
      });
    }

    let decision;
    try {
      decision = await this.storage.consume(windows);
    } catch (err) {
      if (this.config.rateLimit.failOpen) {
        this.logger.warn({ err }, 'rate limiter unavailable; admitting (RATE_LIMIT_FAIL_OPEN)');
        return {};
      }
      this.logger.error({ err }, 'rate limiter unavailable; refusing');
      throw new AppError('unavailable', 'The rate limiter is unavailable. Retry with backoff.', {
        cause: err,
      });
    }

    if (!decision.admitted) {
      // The window that keeps the request out longest decides the code and the wait.
      const refusing = decision.windows
        .map((state, i) => ({ state, name: windows[i].name }))
        .filter(({ state }) => state.waitMs > 0)
        .sort((a, b) => b.state.waitMs - a.state.waitMs)[0];
      const retryAfter = String(seconds(refusing.state.waitMs));
      this.metrics?.rateLimitRefusals.inc({ group, code: THROTTLERS[refusing.name].code });
      throw new AppError(THROTTLERS[refusing.name].code, undefined, {
        headers: {
          'Retry-After': retryAfter,
          'X-RateLimit-Limit': String(refusing.state.limit),
          'X-RateLimit-Remaining': '0',
          'X-RateLimit-Reset': retryAfter,
        },
      });
    }
    const reported = mostConstrained(decision.windows);
    return {
      'X-RateLimit-Limit': String(reported.limit),
      'X-RateLimit-Remaining': String(Math.max(0, reported.limit - reported.count)),
      'X-RateLimit-Reset': String(seconds(reported.resetMs)),
    };
  }
}

/** The window with the fewest requests left (the longer one on a tie): what a client should pace itself by. */
function mostConstrained(states: RateWindowState[]): RateWindowState {
  return states.reduce((best, s) => {
    const left = s.limit - s.count;
    const bestLeft = best.limit - best.count;
    return left < bestLeft || (left === bestLeft && s.resetMs > best.resetMs) ? s : best;
  });
}

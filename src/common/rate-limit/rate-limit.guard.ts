import { type ExecutionContext, Injectable, Logger, Optional } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import {
  InjectThrottlerOptions,
  InjectThrottlerStorage,
  ThrottlerGuard,
  type ThrottlerModuleOptions,
  type ThrottlerOptions,
} from '@nestjs/throttler';
import type { Response } from 'express';
import { AppConfig } from '../../config/app-config';
import type { AuthedRequest } from '../auth/current-principal.decorator';
import { AppError } from '../errors/app-error';
import { Metrics } from '../metrics/metrics.service';
import {
  RATE_LIMIT_GROUP,
  type RateLimitGroup,
  THROTTLERS,
  type ThrottlerName,
} from './rate-limit.decorator';
import type { RateWindow, RateWindowState } from './redis-rate-limit.storage';
import { RedisRateLimitStorage } from './redis-rate-limit.storage';

const seconds = (ms: number): number => Math.max(0, Math.ceil(ms / 1000));

/**
 * @nestjs/throttler's guard, registered as an APP_GUARD right after the AuthGuard: it runs once the credential is
 * known and before the handler reads any body, so a refused upload never streams its 20 MB. It departs from the
 * stock guard in one way: the stock loop checks each named throttler in turn, so a request that passes the minute
 * and fails the day would still use a minute slot; here all throttlers of the route's group go to the storage in one
 * atomic call. Refusals are AppErrors, rendered by the one exception filter.
 */
@Injectable()
export class RateLimitGuard extends ThrottlerGuard {
  private readonly logger = new Logger(RateLimitGuard.name);

  constructor(
    @InjectThrottlerOptions() options: ThrottlerModuleOptions,
    @InjectThrottlerStorage() private readonly storage: RedisRateLimitStorage,
    reflector: Reflector,
    private readonly config: AppConfig,
    @Optional() private readonly metrics?: Metrics,
  ) {
    super(options, storage, reflector);
  }

  override async canActivate(context: ExecutionContext): Promise<boolean> {
    const group = this.reflector.getAllAndOverride<RateLimitGroup | undefined>(RATE_LIMIT_GROUP, [
      context.getHandler(),
      context.getClass(),
    ]);
    const { req, res } = this.getRequestResponse(context) as { req: AuthedRequest; res: Response };
    // The auth guard's request count (AuthedRequest.counted) finishes before any handler runs, whatever we decide.
    const counted = req.counted ?? Promise.resolve();
    if (!group || !req.principal) {
      await counted;
      return true;
    }
    const throttlers = this.throttlers.filter((t) => THROTTLERS[t.name as ThrottlerName]?.group === group);
    const tracker = await this.commonOptions.getTracker!(req, context);
    const windows: (RateWindow & { name: ThrottlerName })[] = [];
    for (const t of throttlers) {
      windows.push({
        name: t.name as ThrottlerName,
        key: this.commonOptions.generateKey!(context, tracker, t.name!),
        windowMs: await resolve(context, t.ttl),
        limit: await resolve(context, t.limit),
      });
    }

    let decision;
    try {
      [decision] = await Promise.all([this.storage.consume(windows), counted]);
    } catch (err) {
      if (this.config.rateLimit.failOpen) {
        this.logger.warn({ err }, 'rate limiter unavailable; admitting (RATE_LIMIT_FAIL_OPEN)');
        return true;
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
    res.setHeader('X-RateLimit-Limit', String(reported.limit));
    res.setHeader('X-RateLimit-Remaining', String(Math.max(0, reported.limit - reported.count)));
    res.setHeader('X-RateLimit-Reset', String(seconds(reported.resetMs)));
    return true;
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

async function resolve(context: ExecutionContext, value: ThrottlerOptions['ttl']): Promise<number> {
  return typeof value === 'function' ? value(context) : value;
}

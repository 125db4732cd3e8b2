import { type CanActivate, type ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Response } from 'express';
import type { AuthedRequest } from '../auth/current-principal.decorator';
import { RATE_LIMIT_GROUP, type RateLimitGroup } from './rate-limit.decorator';
import { RateLimiter } from './rate-limiter';

/**
 * Registered as an APP_GUARD right after the AuthGuard: it runs once the credential is known and before the handler
 * reads any body, so a refused upload never streams its 20 MB. It departs from @nestjs/throttler's stock guard in one
 * way: the stock loop checks each named throttler in turn, so a request that passes the minute and fails the day
 * would still use a minute slot; here all throttlers of the route's group go to the storage in one atomic call
 * (RateLimiter). Refusals are AppErrors, rendered by the one exception filter.
 */
@Injectable()
export class RateLimitGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly limiter: RateLimiter,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const group = this.reflector.getAllAndOverride<RateLimitGroup | undefined>(RATE_LIMIT_GROUP, [
      context.getHandler(),
      context.getClass(),
    ]);
    const http = context.switchToHttp();
    const req = http.getRequest<AuthedRequest>();
    // The auth guard's request count (AuthedRequest.counted) finishes before any handler runs, whatever we decide.
    const counted = req.counted ?? Promise.resolve();
    if (!group || !req.principal) {
      await counted;
      return true;
    }
    const [headers] = await Promise.all([
      this.limiter.admit(group, req.principal).catch(async (err: unknown) => {
        await counted;
        throw err;
      }),
      counted,
    ]);
    const res = http.getResponse<Response>();
    for (const [name, value] of Object.entries(headers)) {
      res.setHeader(name, value);
    }
    return true;
  }
}

import { type CanActivate, type ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Response } from 'express';
import passport from 'passport';
import { Strategy as BearerStrategy } from 'passport-http-bearer';
import { AppError } from '../errors/app-error';
import { AUTH_POLICY, type AuthPolicy, PUBLIC_ROUTE } from './auth.decorator';
import { BearerAuthenticator, RequestCounter, SESSION_COOKIE, SessionAuthenticator } from './authenticators';
import type { AuthedRequest } from './current-principal.decorator';
import type { Principal } from './principal';
import { RATE_LIMIT_GROUP, type RateLimitGroup } from '../rate-limit/rate-limit.decorator';
import { RateLimiter } from '../rate-limit/rate-limiter';
import { AUTH_SCOPES, type Scope } from './scopes';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

type VerifyBearer = (token: string, done: (err: unknown, user?: Principal) => void) => void;

/**
 * The global guard. Deny by default: a route needs @Auth(...) or @Public(). A bearer header wins over a cookie;
 * every credential is checked against the database on every request (revocation and bans are instant).
 */
@Injectable()
export class AuthGuard implements CanActivate {
  /**
   * passport-http-bearer parses `Authorization: Bearer <token>` (scheme case-insensitive). The strategy is this app's
   * own instance, not one registered by name on the process-wide passport object: two apps in one process (the
   * multi-instance tests) would otherwise both authenticate through whichever registered last.
   */
  private readonly bearer: BearerStrategy<VerifyBearer>;

  constructor(
    private readonly reflector: Reflector,
    private readonly sessions: SessionAuthenticator,
    private readonly counter: RequestCounter,
    private readonly limiter: RateLimiter,
    authenticator: BearerAuthenticator,
  ) {
    this.bearer = new BearerStrategy((token, done) => {
      authenticator.authenticate(token).then(
        (principal) => done(null, principal),
        (err: unknown) => done(err),
      );
    });
  }

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const targets = [context.getHandler(), context.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC_ROUTE, targets)) {
      return true;
    }
    const policy = this.reflector.getAllAndOverride<AuthPolicy | undefined>(AUTH_POLICY, targets);
    if (!policy) {
      throw new AppError('internal', 'This route has no access rule.');
    }
    const req = context.switchToHttp().getRequest<AuthedRequest>();
    const principal = await this.resolve(context, req);
    if (!principal) {
      throw new AppError('unauthorized');
    }
    const refusal = this.refusal(principal, policy, req, targets);
    if (refusal) {
      // A known caller refused on a limited route: the answer carries its X-RateLimit-* headers like any other (API.md),
      // and the refusal takes a request of its limit (a 429 answers instead once the limit is spent).
      const group = this.reflector.getAllAndOverride<RateLimitGroup | undefined>(RATE_LIMIT_GROUP, targets);
      if (group) {
        const headers = await this.limiter.admit(group, principal);
        const res = context.switchToHttp().getResponse<Response>();
        for (const [name, value] of Object.entries(headers)) {
          res.setHeader(name, value);
        }
      }
      throw refusal;
    }
    req.principal = principal;
    // Awaited by the RateLimitGuard (registered right after this one), together with its own Redis call.
    req.counted = this.counter.count(principal);
    return true;
  }

  /** Why an authenticated caller may not use this route (403 `forbidden`), or null. */
  private refusal(
    principal: Principal,
    policy: AuthPolicy,
    req: AuthedRequest,
    targets: Parameters<Reflector['getAllAndOverride']>[1],
  ): AppError | null {
    if (!policy.kinds.includes(principal.kind)) {
      return new AppError(
        'forbidden',
        principal.kind === 'upload_token'
          ? 'An upload token may only be used on POST /api/v1/upload.'
          : principal.kind === 'session'
            ? 'This endpoint needs an API key.'
            : 'This endpoint needs a dashboard session; an API key cannot do this.',
      );
    }
    if (principal.kind === 'session' && !SAFE_METHODS.has(req.method)) {
      const header = req.header('x-csrf-token');
      if (!this.sessions.verifyCsrf(principal, header)) {
        return new AppError('forbidden', 'Missing or invalid X-CSRF-Token header.');
      }
    }
    if (policy.admin && principal.role !== 'admin') {
      return new AppError('forbidden', 'This endpoint is for admins.');
    }
    const needed = this.reflector.getAllAndOverride<Scope[] | undefined>(AUTH_SCOPES, targets) ?? [];
    const missing = principal.kind === 'session' ? [] : needed.filter((s) => !principal.scopes.includes(s));
    if (missing.length > 0) {
      return new AppError(
        'forbidden',
        `This API key lacks the ${missing.map((s) => `"${s}"`).join(' and ')} scope${missing.length > 1 ? 's' : ''}.`,
      );
    }
    return null;
  }

  private async resolve(context: ExecutionContext, req: AuthedRequest): Promise<Principal | null> {
    if (req.headers.authorization !== undefined) {
      return this.authenticateBearer(req, context.switchToHttp().getResponse<Response>());
    }
    const cookies = (req as { cookies?: Record<string, string | undefined> }).cookies;
    const token = cookies?.[SESSION_COOKIE];
    return token ? this.sessions.authenticate(token) : null;
  }

  /** Runs the bearer strategy, its failures turned into the contract's 401 envelope. */
  private authenticateBearer(req: AuthedRequest, res: Response): Promise<Principal> {
    const malformed = (): AppError =>
      new AppError('unauthorized', 'Missing or malformed Authorization header.');
    // A fresh object per request, as passport makes for named strategies: it binds success/fail onto the instance.
    const strategy = Object.create(this.bearer) as BearerStrategy<VerifyBearer>;
    return new Promise((resolve, reject) => {
      const run = passport.authenticate(
        strategy,
        { session: false },
        (err: unknown, user: Principal | false) => {
          if (err) {
            // Only the authenticator reports errors here (passport's own header checks call fail(), below). An
            // AppError is its verdict (unauthorized, banned); anything else is a dependency failure (the database
            // is down) and goes to the filter as itself, so a valid key is never told it is invalid.
            reject(err as Error);
          } else if (!user) {
            reject(malformed());
          } else {
            resolve(user);
          }
        },
      ) as (req: AuthedRequest, res: Response, next: () => void) => void;
      run(req, res, () => reject(malformed()));
    });
  }
}

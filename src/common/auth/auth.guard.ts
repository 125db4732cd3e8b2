import { type CanActivate, type ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { AuthGuard as PassportAuthGuard } from '@nestjs/passport';
import { AppError } from '../errors/app-error';
import { AUTH_POLICY, type AuthPolicy, PUBLIC_ROUTE } from './auth.decorator';
import { RequestCounter, SESSION_COOKIE, SessionAuthenticator } from './authenticators';
import type { AuthedRequest } from './current-principal.decorator';
import type { Principal } from './principal';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** passport-http-bearer, with its failures turned into the contract's 401 envelope. */
class BearerPassportGuard extends PassportAuthGuard('bearer') {
  override handleRequest<T>(err: unknown, user: T | false): T {
    if (err) {
      // The strategy throws AppError (unauthorized/banned); anything else from passport is a bad header.
      throw err instanceof AppError ? err : new AppError('unauthorized', 'Missing or malformed Authorization header.');
    }
    if (!user) {
      throw new AppError('unauthorized', 'Missing or malformed Authorization header.');
    }
    return user;
  }
}

/**
 * The global guard. Deny by default: a route needs @Auth(...) or @Public(). A bearer header wins over a cookie;
 * every credential is checked against the database on every request (revocation and bans are instant).
 */
@Injectable()
export class AuthGuard implements CanActivate {
  private readonly bearer = new BearerPassportGuard();

  constructor(
    private readonly reflector: Reflector,
    private readonly sessions: SessionAuthenticator,
    private readonly counter: RequestCounter,
  ) {}

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
    if (!policy.kinds.includes(principal.kind)) {
      throw new AppError(
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
        throw new AppError('forbidden', 'Missing or invalid X-CSRF-Token header.');
      }
    }
    if (policy.admin && principal.role !== 'admin') {
      throw new AppError('forbidden', 'This endpoint is for admins.');
    }
    req.principal = principal;
    await this.counter.count(principal);
    return true;
  }

  private async resolve(context: ExecutionContext, req: AuthedRequest): Promise<Principal | null> {
    if (req.headers.authorization !== undefined) {
      await this.bearer.canActivate(context);
      return (req as AuthedRequest & { user?: Principal }).user ?? null;
    }
    const cookies = (req as { cookies?: Record<string, string | undefined> }).cookies;
    const token = cookies?.[SESSION_COOKIE];
    return token ? this.sessions.authenticate(token) : null;
  }
}

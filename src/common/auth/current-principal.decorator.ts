import { createParamDecorator, type ExecutionContext } from '@nestjs/common';
import type { Request } from 'express';
import type { Principal } from './principal';

export interface AuthedRequest extends Request {
  principal?: Principal;
  /**
   * The request count the auth guard sent to Redis (never rejects). The rate-limit guard, which runs next, awaits it
   * beside its own Redis call: both travel on one connection in one round trip, and both are done before any handler.
   * It resolves with the key's running request_count, this request included (null: not counted).
   */
  counted?: Promise<number | null>;
}

/** The Principal the auth guard attached. */
export const CurrentPrincipal = createParamDecorator((_data: unknown, ctx: ExecutionContext): Principal => {
  const principal = ctx.switchToHttp().getRequest<AuthedRequest>().principal;
  if (!principal) {
    throw new Error('CurrentPrincipal used on a route without @Auth');
  }
  return principal;
});

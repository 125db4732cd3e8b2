import { createParamDecorator, type ExecutionContext } from '@nestjs/common';
import type { Request } from 'express';
import type { Principal } from './principal';

export interface AuthedRequest extends Request {
  principal?: Principal;
}

/** The Principal the auth guard attached. */
export const CurrentPrincipal = createParamDecorator((_data: unknown, ctx: ExecutionContext): Principal => {
  const principal = ctx.switchToHttp().getRequest<AuthedRequest>().principal;
  if (!principal) {
    throw new Error('CurrentPrincipal used on a route without @Auth');
  }
  return principal;
});

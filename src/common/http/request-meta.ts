import { createParamDecorator, type ExecutionContext } from '@nestjs/common';
import type { AuthedRequest } from '../auth/current-principal.decorator';
import { clientIp } from './client-ip';

/** Who did something and from where: what the audit log records next to an action. */
export interface RequestMeta {
  actorId: string | null;
  /** The display prefix of the API key (or of the key that minted the ut_ token) that acted. */
  keyPrefix: string | null;
  ip: string | null;
  userAgent: string | null;
}

export const NO_REQUEST: RequestMeta = { actorId: null, keyPrefix: null, ip: null, userAgent: null };

export function requestMeta(req: AuthedRequest): RequestMeta {
  const p = req.principal;
  return {
    actorId: p?.userId ?? null,
    keyPrefix: p && p.kind !== 'session' ? p.keyPrefix : null,
    ip: clientIp(req),
    userAgent: req.header('user-agent')?.slice(0, 512) ?? null,
  };
}

/** The RequestMeta of the current request (after the auth guard, so the actor is known). */
export const ReqMeta = createParamDecorator(
  (_data: unknown, ctx: ExecutionContext): RequestMeta =>
    requestMeta(ctx.switchToHttp().getRequest<AuthedRequest>()),
);

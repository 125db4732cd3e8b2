import { applyDecorators, SetMetadata } from '@nestjs/common';
import { ApiBearerAuth, ApiCookieAuth } from '@nestjs/swagger';
import { ApiErrorResponses } from '../errors/error-response';
import type { PrincipalKind } from './principal';

export const AUTH_POLICY = 'fxf:auth-policy';
export const PUBLIC_ROUTE = 'fxf:public';

export interface AuthPolicy {
  kinds: PrincipalKind[];
  admin: boolean;
}

/** Who may call a route. Sessions also need X-CSRF-Token on state-changing methods (API.md Part 2). */
export type AuthLevel = 'upload' | 'key' | 'user' | 'session' | 'admin';

const POLICIES: Record<AuthLevel, AuthPolicy> = {
  // POST /api/v1/upload: fxf_ key, ut_ token or a dashboard session.
  upload: { kinds: ['key', 'upload_token', 'session'], admin: false },
  // fxf_ key only (POST /api/v1/upload-token).
  key: { kinds: ['key'], admin: false },
  // The management API: an fxf_ key or a session; a ut_ token is forbidden.
  user: { kinds: ['key', 'session'], admin: false },
  // Dashboard-only: API keys and webhooks can't be managed with a key.
  session: { kinds: ['session'], admin: false },
  admin: { kinds: ['key', 'session'], admin: true },
};

/** Marks a route's auth level and documents it in the OpenAPI document. */
export function Auth(level: AuthLevel): MethodDecorator & ClassDecorator {
  const policy = POLICIES[level];
  const docs: (MethodDecorator & ClassDecorator)[] = [];
  if (policy.kinds.includes('key')) {
    docs.push(ApiBearerAuth('apiKey'));
  }
  if (policy.kinds.includes('upload_token')) {
    docs.push(ApiBearerAuth('uploadToken'));
  }
  if (policy.kinds.includes('session')) {
    // X-CSRF-Token is declared on the state-changing operations only, by buildOpenApi (src/swagger.ts).
    docs.push(ApiCookieAuth('session'));
  }
  return applyDecorators(
    SetMetadata(AUTH_POLICY, policy),
    ...docs,
    ApiErrorResponses('unauthorized', 'banned', 'forbidden'),
  );
}

/** A route anyone may call (direct links, delete links, health, login). */
export const Public = (): MethodDecorator & ClassDecorator => SetMetadata(PUBLIC_ROUTE, true);

import { SetMetadata } from '@nestjs/common';

/** What an API key may do (API.md Part 3, "Keys and tokens"). A key without `scopes` at creation gets all three. */
export const SCOPES = ['upload', 'read', 'delete'] as const;
export type Scope = (typeof SCOPES)[number];

export const AUTH_SCOPES = 'fxf:auth-scopes';

/**
 * The scopes an `fxf_` key (or the key behind a `ut_` token) needs for a route; a session has them all. Outside
 * them the guard answers 403 `forbidden` naming what is missing.
 */
export const RequireScopes = (...scopes: Scope[]): MethodDecorator & ClassDecorator =>
  SetMetadata(AUTH_SCOPES, scopes);

/** The scopes in their canonical order, without repeats. */
export function normaliseScopes(scopes: readonly string[] | undefined | null): Scope[] {
  if (!scopes) {
    return [...SCOPES];
  }
  return SCOPES.filter((s) => scopes.includes(s));
}

import type { Principal, SessionPrincipal } from './principal';

/**
 * Resolves a bearer token (`fxf_` / `ut_`) to a Principal, checking revocation and bans on every call
 * (no cache: revocation is instant on every instance). Throws AppError('unauthorized' | 'banned').
 * Provided by the api-keys module; the guard in common depends only on this abstraction.
 */
export abstract class BearerAuthenticator {
  abstract authenticate(token: string): Promise<Principal>;
}

/** Resolves a session cookie token to a Principal, or null when it is unknown or expired. Throws 'banned'. */
export abstract class SessionAuthenticator {
  abstract authenticate(token: string): Promise<SessionPrincipal | null>;
  abstract verifyCsrf(principal: SessionPrincipal, header: string | undefined): boolean;
}

/**
 * Counts an authenticated request for a key (API.md: request_count), off the database's hot path. Resolves with the
 * key's running total including this request, or null when there is none (a session, or Redis did not answer).
 */
export abstract class RequestCounter {
  abstract count(principal: Principal): Promise<number | null>;
}

export const SESSION_COOKIE = 'fxf_session';

import type { Principal } from '../../common/auth/principal';
import { AppError } from '../../common/errors/app-error';

/** API.md Part 3: an upload lives 60 s to 1 year (365 days). */
export const EXPIRY_SECONDS = { min: 60, max: 31_536_000 } as const;

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})$/;

/**
 * When an upload expires: its `expires_in` (seconds) or `expires_at` (ISO-8601 with a zone, in the future, at most a
 * year ahead), else the key's default_expires_in, else never (null). Both parts at once, or a bad value → 400.
 */
export function resolveExpiry(
  principal: Principal,
  raw: { expiresIn?: string; expiresAt?: string },
  now: number,
): Date | null {
  const { expiresIn, expiresAt } = raw;
  if (expiresIn !== undefined && expiresAt !== undefined) {
    throw new AppError('bad_request', 'Send either "expires_in" or "expires_at", not both.');
  }
  if (expiresIn !== undefined) {
    const seconds = /^\d{1,9}$/.test(expiresIn.trim()) ? Number(expiresIn.trim()) : NaN;
    if (!(seconds >= EXPIRY_SECONDS.min && seconds <= EXPIRY_SECONDS.max)) {
      throw new AppError(
        'bad_request',
        `"expires_in" must be a whole number of seconds from ${EXPIRY_SECONDS.min} to ${EXPIRY_SECONDS.max}.`,
      );
    }
    return new Date(now + seconds * 1000);
  }
  if (expiresAt !== undefined) {
    const at = ISO.test(expiresAt.trim()) ? Date.parse(expiresAt.trim()) : NaN;
    if (Number.isNaN(at)) {
      throw new AppError('bad_request', '"expires_at" must be an ISO-8601 timestamp with a time zone.');
    }
    if (at <= now || at > now + EXPIRY_SECONDS.max * 1000) {
      throw new AppError('bad_request', '"expires_at" must be in the future and at most one year ahead.');
    }
    return new Date(at);
  }
  const fallback = principal.kind === 'session' ? null : principal.defaultExpiresIn;
  return fallback ? new Date(now + fallback * 1000) : null;
}

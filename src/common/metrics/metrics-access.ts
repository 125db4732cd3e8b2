import { createHash, timingSafeEqual } from 'node:crypto';
import type { MetricsConfig } from '../../config/app-config';

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/**
 * Who may read /metrics (API.md Part 3): `not_found` when no METRICS_TOKEN is set (on the main port), `unauthorized`
 * unless the Authorization header is `Bearer <token>` (the scheme in any case), the token compared in constant time
 * (digests of equal length, so neither the token's length nor its prefix leaks).
 */
export function metricsAccess(
  config: MetricsConfig,
  authorization: string | undefined,
  separatePort = false,
): 'ok' | 'not_found' | 'unauthorized' {
  if (!config.token) {
    // A separate METRICS_PORT without a token is the operator's private network's business.
    return separatePort ? 'ok' : 'not_found';
  }
  // The scheme word is case-insensitive (API.md Conventions), the token is not.
  const token = /^bearer (.*)$/is.exec(authorization ?? '')?.[1];
  return token !== undefined && timingSafeEqual(digest(token), digest(config.token)) ? 'ok' : 'unauthorized';
}

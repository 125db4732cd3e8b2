import { withTimeout } from '../time/timeout';

/** Redis did not answer in time (classified as a dependency failure: 503 unavailable). */
export class RedisTimeoutError extends Error {
  override readonly name = 'RedisTimeoutError';
}

/**
 * Rejects when `promise` has not settled within `ms`. ioredis fails fast when Redis refuses connections, but a Redis
 * that accepts them and never answers (a partition, a stalled host) would hold a request forever.
 */
export function withRedisTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return withTimeout(
    promise,
    ms,
    () => new RedisTimeoutError(`${what}: no answer from Redis within ${ms} ms`),
  );
}

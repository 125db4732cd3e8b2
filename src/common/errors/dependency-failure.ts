import { DriverException } from '@mikro-orm/core';

/** Seconds a client should wait before retrying after a dependency failure (db_failed, unavailable). */
export const DEPENDENCY_RETRY_AFTER_SECONDS = 5;

/** Socket-level failures: the peer is down, unreachable, or cut the connection. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'ENOTFOUND',
]);

/**
 * Messages of failures that reach us without an errno: pg's "Connection terminated (unexpectedly)", "timeout
 * exceeded when trying to connect" and "timeout expired" (its connectionTimeoutMillis: a handshake that got no
 * answer), knex/tarn's pool timeout, a server that closed the socket.
 */
const DATABASE_MESSAGES =
  /connection terminated|timeout exceeded when trying to connect|^timeout expired$|timeout acquiring a connection|connection (?:is )?closed|client has encountered a connection error|the database system is (?:starting up|shutting down)|terminating connection/i;

/** ioredis with maxRetriesPerRequest / a closed connection / our own withRedisTimeout. */
const REDIS_MESSAGES =
  /max retries per request|connection is closed\.|stream isn't writeable|no answer from Redis|redis is (?:loading|busy)/i;

function chain(err: unknown): { name?: string; message?: string; code?: unknown }[] {
  const out: { name?: string; message?: string; code?: unknown }[] = [];
  let current: unknown = err;
  for (let depth = 0; depth < 5 && current && typeof current === 'object'; depth++) {
    out.push(current as { name?: string; message?: string; code?: unknown });
    current = (current as { cause?: unknown }).cause;
  }
  return out;
}

/** PostgreSQL SQLSTATEs that mean "the server can't serve us now": connection exceptions, shutdown, too many clients. */
function isUnavailableSqlState(code: unknown): boolean {
  return typeof code === 'string' && (/^08...$/.test(code) || /^57P0[1-4]$/.test(code) || code === '53300');
}

/** A Redis client failure (down, cut, or not answering in time). */
export function isRedisFailure(err: unknown): boolean {
  return chain(err).some(
    (e) =>
      e.name === 'MaxRetriesPerRequestError' ||
      e.name === 'RedisTimeoutError' ||
      (typeof e.message === 'string' && REDIS_MESSAGES.test(e.message)),
  );
}

/**
 * A database failure, including the raw connection errors that arrive outside the ORM's exception types (a refused
 * or reset socket, pg's "Connection terminated", the pool's acquire timeout). Checked after isRedisFailure: a bare
 * ECONNREFUSED reaching the filter comes from pg, since ioredis reports its own as the errors above.
 */
export function isDatabaseFailure(err: unknown): boolean {
  if (err instanceof DriverException) {
    return true;
  }
  return chain(err).some(
    (e) =>
      e instanceof DriverException ||
      isPostgresError(e) ||
      e.name === 'KnexTimeoutError' ||
      (typeof e.code === 'string' && (NETWORK_CODES.has(e.code) || isUnavailableSqlState(e.code))) ||
      (typeof e.message === 'string' && DATABASE_MESSAGES.test(e.message)),
  );
}

/**
 * An error the PostgreSQL server sent (pg's DatabaseError: a severity and a five-character SQLSTATE), as a raw
 * statement run through the ORM's connection raises it outside the ORM's exception types.
 */
export function isPostgresError(e: unknown): e is Error & { code: string; severity: string } {
  const err = e as { code?: unknown; severity?: unknown } | null;
  return (
    typeof err === 'object' &&
    err !== null &&
    typeof err.severity === 'string' &&
    typeof err.code === 'string' &&
    /^[0-9A-Z]{5}$/.test(err.code)
  );
}

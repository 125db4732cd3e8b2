import type Redis from 'ioredis';
import type { AppConfig } from '../../config/app-config';

/** BullMQ's key prefix: REDIS_PREFIX + "bull", so each deployment (and each test file) has its own queues. */
export function bullPrefix(config: AppConfig): string {
  return `${config.redisPrefix}bull`;
}

/** Waits for a promise to settle, at most `ms`; never throws. */
export async function settleWithin(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    promise.catch(() => undefined),
    new Promise((resolve) => (timer = setTimeout(resolve, ms))),
  ]);
  clearTimeout(timer);
}

/** Whether a connection is up or still coming up (not retrying a Redis that's down, not closed). */
export function redisReachable(connection: Redis): boolean {
  return ['ready', 'connect', 'connecting'].includes(connection.status);
}

/** QUIT when connected (pending replies arrive first), else drop the socket: never wait on a Redis that's down. */
export async function closeRedis(connection: Redis): Promise<void> {
  if (connection.status === 'ready') {
    await connection.quit().catch(() => connection.disconnect());
  } else {
    connection.disconnect();
  }
}

import type Redis from 'ioredis';
import type { AppConfig } from '../../config/app-config';

/**
 * BullMQ's key prefix: REDIS_PREFIX + "{bull}", so each deployment (and each test file) has its own queues. The hash
 * tag puts every key of every queue in one Redis Cluster slot: BullMQ's scripts touch several keys of a queue at once.
 */
export function bullPrefix(config: AppConfig): string {
  return `${config.redisPrefix}{bull}`;
}

/** The one shutdown wait (common/time), re-exported for the queue code that uses it beside the helpers here. */
export { settleWithin } from '../time/timeout';

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

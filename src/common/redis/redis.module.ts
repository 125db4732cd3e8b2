import { Global, Inject, Injectable, Logger, Module, type OnApplicationShutdown } from '@nestjs/common';
import Redis from 'ioredis';
import { AppConfig } from '../../config/app-config';
import { closeRedis } from '../jobs/bull';
import { withRedisTimeout } from './redis-timeout';
import { watchForStalls } from './stall-watch';

/** The shared ioredis client; every key it touches carries config.redisPrefix. */
@Injectable()
export class RedisService implements OnApplicationShutdown {
  readonly client: Redis;
  private readonly stopWatching: () => void;

  constructor(@Inject(AppConfig) readonly config: AppConfig) {
    this.client = new Redis(config.redisUrl, {
      keyPrefix: config.redisPrefix,
      // Fail fast instead of queueing commands forever while Redis is down: callers answer 503.
      maxRetriesPerRequest: 1,
      enableOfflineQueue: true,
      connectTimeout: 2000,
      lazyConnect: false,
    });
    // Connection errors surface through the commands that fail; don't crash on the emitter.
    this.client.on('error', () => undefined);
    // A connection that went silent without closing is made anew in seconds, not when TCP gives up.
    const logger = new Logger('Redis');
    this.stopWatching = watchForStalls(this.client, (silentMs) =>
      logger.warn(`Redis sent nothing for ${silentMs} ms while commands waited: reconnecting`),
    );
  }

  /** True when Redis answers PONG within `timeoutMs`; a Redis that accepts and never answers is not ready. */
  async ping(timeoutMs = 2000): Promise<boolean> {
    try {
      return (await withRedisTimeout(this.client.ping(), timeoutMs, 'ping')) === 'PONG';
    } catch {
      return false;
    }
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopWatching();
    await closeRedis(this.client);
  }
}

@Global()
@Module({ providers: [RedisService], exports: [RedisService] })
export class RedisModule {}

import { Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import type Redis from 'ioredis';
import { AppConfig } from '../../config/app-config';
import { RedisService } from './redis.module';
import { withRedisTimeout } from './redis-timeout';
import { REDIS_STALL_MS, watchForStalls } from './stall-watch';

/** Everything cached may be stale (the subscription was lost or is new): drop it all. */
export const INVALIDATE_ALL = '*';

/** What an instance may cache about a thing, now stale. `upload:<filename>` or `owner:<user id>`. */
export type InvalidationHandler = (what: string) => void;

const PUBLISH_TIMEOUT_MS = 1000;

/**
 * Tells every instance that something it may have cached changed (issue 14: per-instance caches of direct-link
 * metadata, dropped at once on delete and ban). Redis pub/sub on `<REDIS_PREFIX>invalidate`; the publishing
 * instance drops its own entries synchronously, before the publish.
 *
 * `ready` is true only while this instance's subscription is confirmed: a cache must not answer from memory while
 * it could miss a message. Losing the connection (or resubscribing) delivers INVALIDATE_ALL to every handler.
 */
@Injectable()
export class InvalidationBus implements OnApplicationShutdown {
  private readonly logger = new Logger(InvalidationBus.name);
  private readonly handlers = new Set<InvalidationHandler>();
  private readonly channel: string;
  private subscriber: Redis | null = null;
  private stopWatching: (() => void) | null = null;
  private subscribed = false;
  private closed = false;

  constructor(
    private readonly redis: RedisService,
    config: AppConfig,
  ) {
    // Channels are not prefixed by ioredis' keyPrefix: the prefix is added here, so deployments sharing a Redis stay apart.
    this.channel = `${config.redisPrefix}invalidate`;
  }

  get ready(): boolean {
    return this.subscribed;
  }

  /** Registers a handler and starts the subscription (once per instance). */
  listen(handler: InvalidationHandler): void {
    this.handlers.add(handler);
    if (!this.subscriber && !this.closed) {
      this.subscribe();
    }
  }

  /** Drops `what` here at once, then on every other instance. Never throws: the caches' TTL bounds a lost message. */
  async publish(what: string): Promise<void> {
    this.deliver(what);
    try {
      await withRedisTimeout(
        this.redis.client.publish(this.channel, what),
        PUBLISH_TIMEOUT_MS,
        'invalidation',
      );
    } catch (err) {
      this.logger.warn({ err, what }, 'cache invalidation not published; other instances catch up by TTL');
    }
  }

  onApplicationShutdown(): Promise<void> {
    this.closed = true;
    this.subscribed = false;
    this.stopWatching?.();
    // disconnect, not quit: a subscriber has nothing to flush, and quit() would wait forever for a Redis that is gone.
    // Not a second time: ioredis's disconnect waits 2 s for a close event that an ended connection never sends.
    if (this.subscriber && this.subscriber.status !== 'end') {
      this.subscriber.disconnect();
    }
    return Promise.resolve();
  }

  private subscribe(): void {
    // Subscribed here on every 'ready' (below), not by ioredis: its own resubscribe on a new connection is a command
    // nothing awaits, so a connection closed before the answer (a flapping Redis, a shutdown, the stall watch) left
    // its "Connection is closed." rejection unhandled, which ends a Node process.
    const sub = this.redis.client.duplicate({
      maxRetriesPerRequest: null,
      enableOfflineQueue: true,
      autoResubscribe: false,
    });
    this.subscriber = sub;
    sub.on('error', () => undefined);
    sub.on('message', (channel: string, message: string) => {
      if (channel === this.channel) {
        this.deliver(message);
      }
    });
    const lost = (): void => {
      if (this.subscribed) {
        this.subscribed = false;
        this.deliver(INVALIDATE_ALL);
      }
    };
    sub.on('close', lost);
    sub.on('end', lost);
    sub.on('reconnecting', lost);
    // A subscription whose connection went silent without closing would look confirmed while messages are lost:
    // the heartbeat's PING goes unanswered, the watch drops the connection, `lost` runs, and it subscribes anew.
    this.stopWatching = watchForStalls(
      sub,
      (silentMs) =>
        this.logger.warn(`the invalidation subscription heard nothing for ${silentMs} ms: reconnecting`),
      REDIS_STALL_MS,
      { heartbeat: true },
    );
    sub.on('ready', () => {
      sub.subscribe(this.channel).then(
        () => {
          if (!this.closed && sub.status === 'ready') {
            // Whatever happened while we were not listening is unknown: start empty.
            this.deliver(INVALIDATE_ALL);
            this.subscribed = true;
          }
        },
        () => lost(),
      );
    });
  }

  private deliver(what: string): void {
    for (const handler of this.handlers) {
      handler(what);
    }
  }
}

import { EntityManager } from '@mikro-orm/postgresql';
import { Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { RequestCounter } from '../../common/auth/authenticators';
import type { Principal } from '../../common/auth/principal';
import { RedisService } from '../../common/redis/redis.module';
import { withRedisTimeout } from '../../common/redis/redis-timeout';

// One atomic step per request: seed the total from the database if Redis lost it, count, stamp, mark dirty.
const COUNT_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SET', KEYS[1], ARGV[1]) end
local n = redis.call('INCR', KEYS[1])
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
return n`;

const FLUSH_INTERVAL_MS = 10_000;
/** A Redis that stops answering must not hold every authenticated request. */
const COUNT_TIMEOUT_MS = 1000;

/**
 * request_count and last_used_at without a row update per request (a busy key would serialise on its row lock):
 * Redis holds the running total, a flusher copies it to api_keys with GREATEST() every few seconds, and readers
 * take the larger of the two, so the figure is exact while Redis lives and never goes backwards.
 */
@Injectable()
export class RequestCounterService extends RequestCounter implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(RequestCounterService.name);
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly redis: RedisService,
    private readonly em: EntityManager,
  ) {
    super();
  }

  onModuleInit(): void {
    this.timer = setInterval(
      () => void this.flush().catch((err: unknown) => this.logger.warn({ err }, 'flush failed')),
      FLUSH_INTERVAL_MS,
    );
    this.timer.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    await this.flush().catch(() => undefined);
  }

  async count(principal: Principal): Promise<void> {
    if (principal.kind === 'session') {
      return;
    }
    const id = principal.keyId;
    try {
      const counted = this.redis.client.eval(
        COUNT_SCRIPT,
        3,
        `keyreq:${id}`,
        `keyused:${id}`,
        'keyreq:dirty',
        String(principal.storedRequestCount),
        String(Date.now()),
        id,
      );
      await withRedisTimeout(counted, COUNT_TIMEOUT_MS, 'request count');
    } catch (err) {
      // Counting must not fail the request; the rate limiter is what refuses work when Redis is down.
      this.logger.warn({ err }, 'request count not recorded');
    }
  }

  /** The live figures for keys, merged with what the database holds. */
  async live(keyIds: string[]): Promise<Map<string, { count: number | null; lastUsed: Date | null }>> {
    const out = new Map<string, { count: number | null; lastUsed: Date | null }>();
    if (keyIds.length === 0) {
      return out;
    }
    try {
      const pipe = this.redis.client.pipeline();
      for (const id of keyIds) {
        pipe.get(`keyreq:${id}`).get(`keyused:${id}`);
      }
      const res = (await pipe.exec()) ?? [];
      keyIds.forEach((id, i) => {
        const count = res[2 * i]?.[1] as string | null;
        const used = res[2 * i + 1]?.[1] as string | null;
        out.set(id, { count: count ? Number(count) : null, lastUsed: used ? new Date(Number(used)) : null });
      });
    } catch {
      // Redis down: the database figures stand.
    }
    return out;
  }

  async flush(): Promise<void> {
    for (;;) {
      const ids = await this.redis.client.spop('keyreq:dirty', 200);
      if (ids.length === 0) {
        return;
      }
      const live = await this.live(ids);
      const conn = this.em.getConnection();
      for (const id of ids) {
        const v = live.get(id);
        if (!v || v.count === null) {
          continue;
        }
        await conn.execute(
          `update api_keys set request_count = greatest(request_count, ?),
             last_used_at = greatest(coalesce(last_used_at, to_timestamp(0)), ?) where id = ?`,
          [v.count, v.lastUsed ?? new Date(0), id],
        );
      }
    }
  }
}

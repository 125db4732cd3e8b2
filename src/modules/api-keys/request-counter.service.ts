import { EntityManager } from '@mikro-orm/postgresql';
import {
  type BeforeApplicationShutdown,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { RequestCounter } from '../../common/auth/authenticators';
import type { Principal } from '../../common/auth/principal';
import { PeriodicJob } from '../../common/jobs/periodic-job';
import { ProcessRoleService } from '../../common/jobs/process-role.service';
import { LuaScript } from '../../common/redis/lua-script';
import { RedisService } from '../../common/redis/redis.module';
import { withRedisTimeout } from '../../common/redis/redis-timeout';
import { AppConfig } from '../../config/app-config';

// One atomic step per request: seed the total from the database if Redis lost it, count, stamp, mark dirty.
const COUNT_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SET', KEYS[1], ARGV[1]) end
local n = redis.call('INCR', KEYS[1])
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
return n`;
const COUNT = new LuaScript(COUNT_SCRIPT);

// After the database took a batch: unmark each key whose counter is still the figure written (a request counted
// meanwhile keeps its mark for the next flush). KEYS: the dirty set, then {keyreq}:<id> per key; ARGV: id, count pairs.
const UNMARK_SCRIPT = `
for i = 2, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[2 * i - 2] then redis.call('SREM', KEYS[1], ARGV[2 * i - 3]) end
end
return 0`;

/**
 * Every key of the counter shares the {keyreq} hash tag: the scripts touch a key's counter and the dirty set (or many
 * counters) at once, which Redis Cluster allows only within one slot.
 */
const DIRTY = '{keyreq}:dirty';

const FLUSH_INTERVAL_MS = 10_000;
/** The BullMQ queue of the flush's job scheduler. */
export const REQUEST_COUNT_FLUSH_QUEUE = 'request-count-flush';
const FLUSH_BATCH = 200;
/** A Redis that stops answering must not hold every authenticated request. */
const COUNT_TIMEOUT_MS = 1000;
/**
 * Each Redis step of a flush: a Redis that accepts and never answers fails the flush (the dirty marks stay for the
 * next one) instead of holding the periodic worker, or the shutdown's last flush, until ioredis gives up.
 */
const FLUSH_REDIS_TIMEOUT_MS = 5000;

/**
 * request_count and last_used_at without a row update per request (a busy key would serialise on its row lock):
 * Redis holds the running total, a flusher copies it to api_keys with GREATEST() every few seconds, and readers
 * take the larger of the two, so the figure is exact while Redis lives and never goes backwards.
 */
@Injectable()
export class RequestCounterService
  extends RequestCounter
  implements OnApplicationBootstrap, BeforeApplicationShutdown, OnApplicationShutdown
{
  private readonly logger = new Logger(RequestCounterService.name);
  private job: PeriodicJob | null = null;

  constructor(
    private readonly redis: RedisService,
    private readonly em: EntityManager,
    private readonly config: AppConfig,
    private readonly roles: ProcessRoleService,
  ) {
    super();
  }

  /**
   * The counts live in Redis, shared by every instance (not in the memory of the instance that counted them), so
   * one flush per period across the deployment copies them all: a job scheduler where the role runs periodic work.
   */
  onApplicationBootstrap(): void {
    if (!this.roles.starts('periodic')) {
      return;
    }
    this.job = PeriodicJob.start(
      this.config,
      {
        queue: REQUEST_COUNT_FLUSH_QUEUE,
        schedulerId: 'request-count-flush',
        name: 'flush',
        everyMs: FLUSH_INTERVAL_MS,
        run: () => this.flush(),
      },
      this.logger,
    );
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.job?.close();
  }

  /** Where requests are counted, one last flush at shutdown, so the database is current without waiting for a worker. */
  async onApplicationShutdown(): Promise<void> {
    if (this.roles.starts('countFlushOnShutdown')) {
      await this.flush().catch(() => undefined);
    }
  }

  async count(principal: Principal): Promise<number | null> {
    if (principal.kind === 'session') {
      return null;
    }
    const id = principal.keyId;
    try {
      const counted = COUNT.run(
        this.redis.client,
        [`{keyreq}:${id}`, `{keyreq}:used:${id}`, DIRTY],
        [String(principal.storedRequestCount), String(Date.now()), id],
      );
      return Number(await withRedisTimeout(counted, COUNT_TIMEOUT_MS, 'request count'));
    } catch (err) {
      // Counting must not fail the request; the rate limiter is what refuses work when Redis is down.
      this.logger.warn({ err }, 'request count not recorded');
      return null;
    }
  }

  /** The live figures for keys, merged with what the database holds. */
  async live(keyIds: string[]): Promise<Map<string, { count: number | null; lastUsed: Date | null }>> {
    try {
      return await this.readLive(keyIds, COUNT_TIMEOUT_MS);
    } catch {
      // Redis down: the database figures stand.
      return new Map();
    }
  }

  private async readLive(
    keyIds: string[],
    timeoutMs: number,
  ): Promise<Map<string, { count: number | null; lastUsed: Date | null }>> {
    const out = new Map<string, { count: number | null; lastUsed: Date | null }>();
    if (keyIds.length === 0) {
      return out;
    }
    const pipe = this.redis.client.pipeline();
    for (const id of keyIds) {
      pipe.get(`{keyreq}:${id}`).get(`{keyreq}:used:${id}`);
    }
    const res = (await withRedisTimeout(pipe.exec(), timeoutMs, 'request counts')) ?? [];
    keyIds.forEach((id, i) => {
      const [countErr, count] = res[2 * i] ?? [];
      const [usedErr, used] = res[2 * i + 1] ?? [];
      const err = countErr ?? usedErr;
      if (err) {
        throw err;
      }
      out.set(id, {
        count: count ? Number(count as string) : null,
        lastUsed: used ? new Date(Number(used as string)) : null,
      });
    });
    return out;
  }

  /**
   * Copies the live figures of the dirty keys to api_keys. A key stays marked dirty until the database write that
   * carries its figure has committed, so a failed write (database down) loses nothing: the next flush retries it.
   */
  async flush(): Promise<void> {
    let cursor = '0';
    do {
      const [next, ids] = await withRedisTimeout(
        this.redis.client.sscan(DIRTY, cursor, 'COUNT', FLUSH_BATCH),
        FLUSH_REDIS_TIMEOUT_MS,
        'request count flush',
      );
      cursor = next;
      if (ids.length > 0) {
        await this.flushBatch([...new Set(ids)]);
      }
    } while (cursor !== '0');
  }

  private async flushBatch(ids: string[]): Promise<void> {
    const live = await this.readLive(ids, FLUSH_REDIS_TIMEOUT_MS);
    const rows = ids.flatMap((id) => {
      const v = live.get(id);
      return v && v.count !== null ? [{ id, count: v.count, lastUsed: v.lastUsed ?? new Date(0) }] : [];
    });
    if (rows.length > 0) {
      // One statement for the batch: it commits or fails as a whole.
      await this.em.getConnection().execute(
        `update api_keys k set request_count = greatest(k.request_count, v.count),
           last_used_at = greatest(coalesce(k.last_used_at, to_timestamp(0)), v.last_used)
           from jsonb_to_recordset(?::jsonb) as v(id uuid, count bigint, last_used timestamptz)
          where k.id = v.id`,
        [JSON.stringify(rows)],
      );
    }
    const counted = new Set(rows.map((r) => r.id));
    // A key with no counter left (Redis lost it) has nothing to write: unmark it as well.
    const stale = ids.filter((id) => !counted.has(id));
    if (stale.length > 0) {
      await withRedisTimeout(
        this.redis.client.srem(DIRTY, ...stale),
        FLUSH_REDIS_TIMEOUT_MS,
        'request count flush',
      );
    }
    if (rows.length > 0) {
      await withRedisTimeout(
        this.redis.client.eval(
          UNMARK_SCRIPT,
          1 + rows.length,
          DIRTY,
          ...rows.map((r) => `{keyreq}:${r.id}`),
          ...rows.flatMap((r) => [r.id, String(r.count)]),
        ),
        FLUSH_REDIS_TIMEOUT_MS,
        'request count flush',
      );
    }
  }
}

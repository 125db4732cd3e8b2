import { Injectable } from '@nestjs/common';
import type { ThrottlerStorage } from '@nestjs/throttler';
import { createHash, randomUUID } from 'node:crypto';
import { RedisService } from '../redis/redis.module';
import { withRedisTimeout } from '../redis/redis-timeout';
import { Clock } from '../time/clock';

/** One limit to enforce: at most `limit` admissions in any span of `windowMs`, kept under `key`. */
export interface RateWindow {
  key: string;
  windowMs: number;
  limit: number;
}

export interface RateWindowState {
  limit: number;
  /** Admissions now inside the window, this request included when it was admitted. */
  count: number;
  /** Milliseconds until the oldest admission leaves the window and frees a slot (windowMs when it is empty). */
  resetMs: number;
  /** Milliseconds until this window would admit again (0 unless it refused). */
  waitMs: number;
}

export interface RateDecision {
  admitted: boolean;
  windows: RateWindowState[];
}

/**
 * A sliding window log per window: a sorted set of admission times. All windows of a request are checked and, only
 * if every one has room, the request is recorded in all of them, in one script, so parallel requests on any number
 * of instances can't overshoot and a refused request consumes nothing. Time comes from the caller (the Clock).
 * KEYS[i]: the window's set. ARGV: now, member, then windowMs and limit per window.
 */
const SLIDING_WINDOW_SCRIPT = `
local now = tonumber(ARGV[1])
local member = ARGV[2]
local admitted = 1
local out = {}
for i, key in ipairs(KEYS) do
  local window = tonumber(ARGV[1 + 2 * i])
  local limit = tonumber(ARGV[2 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local count = redis.call('ZCARD', key)
  local wait = 0
  if count >= limit then
    admitted = 0
    local nth = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
    wait = tonumber(nth[2]) + window - now
  end
  out[i] = { count, 0, wait }
end
for i, key in ipairs(KEYS) do
  local window = tonumber(ARGV[1 + 2 * i])
  if admitted == 1 then
    redis.call('ZADD', key, now, member)
    redis.call('PEXPIRE', key, window)
    out[i][1] = out[i][1] + 1
  end
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  out[i][2] = oldest[2] and (tonumber(oldest[2]) + window - now) or window
end
return { admitted, out }`;

type ThrottlerStorageRecord = Awaited<ReturnType<ThrottlerStorage['increment']>>;

const SCRIPT_SHA = createHash('sha1').update(SLIDING_WINDOW_SCRIPT).digest('hex');

/** How long a limiter call may take before the request is treated as "Redis unavailable". */
const REDIS_TIMEOUT_MS = 2000;

/**
 * The rate-limit state shared by every instance, in Redis. Ours rather than @nest-lab/throttler-storage-redis: that
 * one is a fixed window (INCR + PEXPIRE), which admits 2× the limit across a window edge, counts refused requests,
 * and reads Redis' own clock, so tests couldn't move time.
 */
@Injectable()
export class RedisRateLimitStorage implements ThrottlerStorage {
  constructor(
    private readonly redis: RedisService,
    private readonly clock: Clock,
  ) {}

  /** Admits the request only if every window has room; throws when Redis can't answer. */
  async consume(windows: RateWindow[]): Promise<RateDecision> {
    const args = [
      String(this.clock.now()),
      randomUUID(),
      ...windows.flatMap((w) => [String(w.windowMs), String(w.limit)]),
    ];
    const keys = windows.map((w) => w.key);
    const [admitted, states] = (await withRedisTimeout(
      this.run(keys, args),
      REDIS_TIMEOUT_MS,
      'rate limiter',
    )) as [number, number[][]];
    return {
      admitted: admitted === 1,
      windows: windows.map((w, i) => ({
        limit: w.limit,
        count: states[i][0],
        resetMs: states[i][1],
        waitMs: states[i][2],
      })),
    };
  }

  /** @nestjs/throttler's storage contract, for a single window (times in seconds, as the guard expects). */
  async increment(key: string, ttl: number, limit: number): Promise<ThrottlerStorageRecord> {
    const { admitted, windows } = await this.consume([{ key, windowMs: ttl, limit }]);
    const [w] = windows;
    return {
      totalHits: admitted ? w.count : w.count + 1,
      timeToExpire: Math.ceil(w.resetMs / 1000),
      isBlocked: !admitted,
      timeToBlockExpire: Math.ceil(w.waitMs / 1000),
    };
  }

  private async run(keys: string[], args: string[]): Promise<unknown> {
    const client = this.redis.client;
    try {
      return await client.evalsha(SCRIPT_SHA, keys.length, ...keys, ...args);
    } catch (err) {
      if (err instanceof Error && err.message.startsWith('NOSCRIPT')) {
        return client.eval(SLIDING_WINDOW_SCRIPT, keys.length, ...keys, ...args);
      }
      throw err;
    }
  }
}

import { Injectable, Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { limitSubject, type Principal } from '../../common/auth/principal';
import { AppError } from '../../common/errors/app-error';
import { LuaScript } from '../../common/redis/lua-script';
import { RedisService } from '../../common/redis/redis.module';
import { withRedisTimeout } from '../../common/redis/redis-timeout';
import { AppConfig } from '../../config/app-config';

/**
 * A slot lives this long without a heartbeat: the safety net for an instance that died mid-upload (kill -9), whose
 * slots would otherwise count forever. Live uploads refresh theirs every third of it.
 */
export const SLOT_TTL_MS = 60_000;
const HEARTBEAT_MS = SLOT_TTL_MS / 3;
const REDIS_TIMEOUT_MS = 2000;
/** An upload usually finishes within seconds; a client that waits this long finds a free slot. */
const RETRY_AFTER_SECONDS = '1';

/**
 * Takes a slot if the subject has fewer than `limit` live ones. KEYS[1]: the subject's sorted set (member → last
 * heartbeat). ARGV: now, member, ttl, limit. Slots older than the TTL are dropped first.
 */
const ACQUIRE_SCRIPT = `
local now = tonumber(ARGV[1])
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  return 0
end
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('PEXPIRE', KEYS[1], ttl)
return 1`;
const ACQUIRE = new LuaScript(ACQUIRE_SCRIPT);

/** A held slot; release() frees it (idempotent). */
export interface UploadSlot {
  release: () => Promise<void>;
}

/**
 * UPLOADS_IN_FLIGHT_PER_KEY: how many uploads one key (a ut_ token counts as its key) or dashboard user may have in
 * progress at once, counted in Redis so the limit holds across instances. Over it → 429 `rate_limit` with
 * Retry-After: the client's own parallelism, which waiting cures. Redis down → 503 `unavailable`, or admitted under
 * RATE_LIMIT_FAIL_OPEN, like the rate limits.
 */
@Injectable()
export class UploadSlots {
  private readonly logger = new Logger(UploadSlots.name);

  constructor(
    private readonly redis: RedisService,
    private readonly config: AppConfig,
  ) {}

  async acquire(principal: Principal): Promise<UploadSlot> {
    const limit = this.config.uploadsInFlightPerKey;
    const key = `uploads-in-flight:${limitSubject(principal)}`;
    const member = randomUUID();
    const client = this.redis.client;
    let admitted: unknown;
    try {
      admitted = await withRedisTimeout(
        ACQUIRE.run(client, [key], [String(Date.now()), member, String(SLOT_TTL_MS), String(limit)]),
        REDIS_TIMEOUT_MS,
        'upload slots',
      );
    } catch (err) {
      if (this.config.rateLimit.failOpen) {
        this.logger.warn({ err }, 'upload slots unavailable; admitting (RATE_LIMIT_FAIL_OPEN)');
        return { release: () => Promise.resolve() };
      }
      this.logger.error({ err }, 'upload slots unavailable; refusing');
      throw new AppError('unavailable', 'The upload limiter is unavailable. Retry with backoff.', {
        cause: err,
        headers: { 'Retry-After': '5' },
      });
    }
    if (admitted !== 1) {
      throw new AppError(
        'rate_limit',
        `This key already has ${limit} uploads in progress; send the next one when one of them has finished.`,
        { headers: { 'Retry-After': RETRY_AFTER_SECONDS } },
      );
    }
    const heartbeat = setInterval(() => {
      client
        .multi()
        .zadd(key, 'XX', Date.now(), member)
        .pexpire(key, SLOT_TTL_MS)
        .exec()
        .catch(() => undefined);
    }, HEARTBEAT_MS);
    heartbeat.unref();
    let released = false;
    return {
      release: async () => {
        if (released) {
          return;
        }
        released = true;
        clearInterval(heartbeat);
        // If Redis is away, the slot expires on its own after SLOT_TTL_MS.
        await withRedisTimeout(client.zrem(key, member), REDIS_TIMEOUT_MS, 'upload slots').catch(
          () => undefined,
        );
      },
    };
  }
}

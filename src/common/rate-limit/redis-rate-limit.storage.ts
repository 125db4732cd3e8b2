import { Injectable } from '@nestjs/common';
import type { ThrottlerStorage } from '@nestjs/throttler';
import { LuaScript } from '../redis/lua-script';
import { RedisService } from '../redis/redis.module';
import { withRedisTimeout } from '../redis/redis-timeout';
import { Clock } from '../time/clock';

/** One limit to enforce: at most `limit` admissions in any span of `windowMs`, kept under `key`. */
export interface RateWindow {
  key: string;
  windowMs: number;
  limit: number;
  /**
   * The most admissions one bucket of this window can ever hold (default: `limit`). A day window checked together
   * with a per-minute window can't take more than the minute's limit in one calendar minute, which lets it store
   * each bucket in one byte.
   */
  maxPerBucket?: number;
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

/** Windows up to this long are kept as an exact log of per-second entries; longer ones as a ring of minute buckets. */
export const LOG_MAX_WINDOW_MS = 120_000;
/** Admissions of a log window in the same second share one entry (stamped with the latest of them). */
export const LOG_BUCKET_MS = 1000;
/** Bucket width of the long (day) windows. */
export const RING_BUCKET_MS = 60_000;
/**
 * Appended to a log window's key: its format gained a header on 2026-12-05, and a key of the format before (an
 * instance of the version before, during a rolling upgrade) must never be read as the other. For that upgrade's
 * minute, the two versions each count their own admissions.
 */
const LOG_KEY_SUFFIX = ':v2';

/** Whether a window is kept as a log (else as a ring of minute buckets). */
const isLog = (w: RateWindow): boolean => w.windowMs <= LOG_MAX_WINDOW_MS;

/** The Redis key that holds a window. */
export function storedKey(w: RateWindow): string {
  return isLog(w) ? `${w.key}${LOG_KEY_SUFFIX}` : w.key;
}

/**
 * Bounded-size windows, checked and recorded for all windows of a request in one script, so parallel requests on any
 * number of instances can't overshoot and a refused request consumes (and writes) nothing. Time comes from the caller
 * (the Clock). Every key of one call carries the same {hash tag}, so the script is Redis Cluster-safe.
 *
 * "log" (windows ≤ 2 min; the per-minute limits): a 4-byte header (struct '>I4': the admissions the entries hold)
 * and 12-byte entries (struct '>dI4': time in ms, count), oldest first, at most one per second of the window (≤ 61
 * for a minute, ~0.8 KB whatever the limit). An entry holds the admissions of one calendar second and is stamped with
 * the LATEST of them, so it leaves the window no earlier than any admission in it: no span of windowMs ever admits
 * more than the limit, and a request refused for the minute waits at most 1 s longer than with a full log (exactly
 * as long when its admissions were ≥ 1 s apart). The header's total spares a call the reading of every entry: it
 * reads the ones that left the window (from the front, usually none) and the newest, and writes the newest back
 * (23 µs of Redis's time a call with 61 entries, when each call unpacked and packed them all).
 *
 * "ring" (the day): 25-byte header (struct '>dddB': newest bucket, running total, oldest possibly non-empty bucket,
 * bytes per slot) + one slot per minute bucket, windowMs/60 s + 1 of them (1441 for a day, 1 byte each while a
 * bucket can't exceed 255). An admission counts as if made at the END of its calendar minute: it stays in the window
 * until that end + windowMs, i.e. between 0 and 60 s longer than exactly (never shorter, so no span of 24 h admits
 * more than the daily limit either).
 *
 * KEYS[i]: window i. ARGV: now, then per window: mode, windowMs, limit, bucketMs, bytes per slot.
 * Returns { admitted, { {count, resetMs, waitMs} per window } }.
 */
const WINDOWS_SCRIPT = `
local now = tonumber(ARGV[1])
local HDR = 25

local LOG_HDR = 4

-- w.s: the stored string; w.off: where its first entry still in the window starts; w.total: the admissions from there.
local function load_log(w)
  w.s, w.off, w.total = '', LOG_HDR + 1, 0
  local s = redis.call('GET', w.key)
  if not s or #s < LOG_HDR or (#s - LOG_HDR) % 12 ~= 0 then return end
  local total = struct.unpack('>I4', s)
  local pos = LOG_HDR + 1
  while pos + 11 <= #s do
    local t, c = struct.unpack('>dI4', s, pos)
    if t + w.window > now then break end
    total = total - c
    pos = pos + 12
  end
  w.s, w.off, w.total = s, pos, total
end

local function slot_fmt(width) return '>I' .. width end

local function decode(data, width, n)
  local out = {}
  local fmt = slot_fmt(width)
  for i = 0, n - 1 do out[i] = struct.unpack(fmt, data, i * width + 1) end
  return out
end

local function encode(slots, width, n)
  local parts = {}
  local fmt = slot_fmt(width)
  for i = 0, n - 1 do parts[i + 1] = struct.pack(fmt, slots[i]) end
  return table.concat(parts)
end

local function width_for(v)
  if v <= 255 then return 1 elseif v <= 65535 then return 2 else return 4 end
end

-- Buckets from..to (to - from < n) leave the window: their admissions leave the total, their slots are zeroed. Only
-- those slots are read, and the data is copied once (twice past the ring's end), where decoding and encoding every
-- slot took 227 µs of Redis's time at the first call of each minute.
local function zero_range(w, from, to)
  local fmt = slot_fmt(w.width)
  for b = from, to do
    w.total = w.total - struct.unpack(fmt, w.data, (b % w.n) * w.width + 1)
  end
  local i, j = from % w.n, to % w.n
  if i <= j then
    w.data = string.sub(w.data, 1, i * w.width) .. string.rep('\\0', (j - i + 1) * w.width)
      .. string.sub(w.data, (j + 1) * w.width + 1)
  else
    w.data = string.rep('\\0', (j + 1) * w.width) .. string.sub(w.data, (j + 1) * w.width + 1, i * w.width)
      .. string.rep('\\0', (w.n - i) * w.width)
  end
end

local function load_ring(w)
  w.n = math.ceil(w.window / w.bucket) + 1
  local m = math.floor(now / w.bucket)
  local s = redis.call('GET', w.key)
  if s and #s >= HDR then
    w.last, w.total, w.oldest, w.width = struct.unpack('>dddB', s)
    w.data = string.sub(s, HDR + 1)
    if #w.data ~= w.n * w.width then
      w.total, w.oldest, w.data = 0, m, string.rep('\\0', w.n * w.width)
    end
  else
    w.last, w.total, w.oldest, w.width = m, 0, m, w.want
    w.data = string.rep('\\0', w.n * w.width)
  end
  if w.want > w.width then
    w.data = encode(decode(w.data, w.width, w.n), w.want, w.n)
    w.width = w.want
  end
  -- A clock behind the newest bucket (another instance's) counts in the newest bucket: later, never earlier.
  if m < w.last then m = w.last end
  if m > w.last then
    if m - w.last >= w.n then
      w.data, w.total = string.rep('\\0', w.n * w.width), 0
    else
      zero_range(w, w.last + 1, m)
    end
    w.last = m
  end
  if w.oldest < m - w.n + 1 then w.oldest = m - w.n + 1 end
  if w.total == 0 then w.oldest = m end
end

local function ring_slot(w, b)
  return (struct.unpack(slot_fmt(w.width), w.data, (b % w.n) * w.width + 1))
end

-- Walks the admissions oldest first until 'need' of them have left; returns the ms until then.
local function wait_for(w, need)
  local removed = 0
  if w.mode == 'log' then
    for pos = w.off, #w.s - 11, 12 do
      local t, c = struct.unpack('>dI4', w.s, pos)
      removed = removed + c
      if removed >= need then return t + w.window - now end
    end
  else
    for b = w.oldest, w.last do
      local c = ring_slot(w, b)
      if c > 0 then
        if removed == 0 then w.oldest = b end
        removed = removed + c
        if removed >= need then return (b + 1) * w.bucket + w.window - now end
      end
    end
  end
  return w.window
end

local function add(w)
  w.total = w.total + 1
  if w.mode == 'log' then
    -- The entries still in the window; the newest takes this admission if it is of the same second, else a new one.
    local body = string.sub(w.s, w.off)
    local t = now
    local n = #body
    if n >= 12 then
      local lt, lc = struct.unpack('>dI4', body, n - 11)
      if lt > t then t = lt end
      if math.floor(lt / w.bucket) == math.floor(t / w.bucket) then
        body = string.sub(body, 1, n - 12) .. struct.pack('>dI4', t, lc + 1)
      else
        body = body .. struct.pack('>dI4', t, 1)
      end
    else
      body = struct.pack('>dI4', t, 1)
    end
    w.s, w.off = struct.pack('>I4', w.total) .. body, LOG_HDR + 1
    redis.call('SET', w.key, w.s, 'PX', math.ceil(t + w.window - now))
  else
    local c = ring_slot(w, w.last) + 1
    local need = width_for(c)
    if need > w.width then
      w.data = encode(decode(w.data, w.width, w.n), need, w.n)
      w.width = need
    end
    local off = (w.last % w.n) * w.width
    w.data = string.sub(w.data, 1, off) .. struct.pack(slot_fmt(w.width), c) .. string.sub(w.data, off + w.width + 1)
    local hdr = struct.pack('>dddB', w.last, w.total, w.oldest, w.width)
    redis.call('SET', w.key, hdr .. w.data, 'PX', math.ceil((w.last + 1) * w.bucket + w.window - now))
  end
end

local windows = {}
local admitted = 1
for i = 1, #KEYS do
  local a = 2 + (i - 1) * 5
  local w = { key = KEYS[i], mode = ARGV[a], window = tonumber(ARGV[a + 1]), limit = tonumber(ARGV[a + 2]),
    bucket = tonumber(ARGV[a + 3]), want = tonumber(ARGV[a + 4]), wait = 0 }
  if w.mode == 'log' then load_log(w) else load_ring(w) end
  if w.total + 1 > w.limit then
    admitted = 0
    w.wait = wait_for(w, w.total + 1 - w.limit)
  end
  windows[i] = w
end
local out = {}
for i, w in ipairs(windows) do
  if admitted == 1 then add(w) end
  local reset = w.window
  if w.total > 0 then reset = wait_for(w, 1) end
  out[i] = { w.total, reset, w.wait }
end
return { admitted, out }`;

type ThrottlerStorageRecord = Awaited<ReturnType<ThrottlerStorage['increment']>>;

const WINDOWS = new LuaScript(WINDOWS_SCRIPT);

/** How long a limiter call may take before the request is treated as "Redis unavailable". */
const REDIS_TIMEOUT_MS = 2000;

const slotBytes = (max: number): number => (max <= 255 ? 1 : max <= 65_535 ? 2 : 4);

/**
 * The rate-limit state shared by every instance, in Redis, at a bounded size per key (≤ ~1.6 KB, see the script).
 * Ours rather than @nest-lab/throttler-storage-redis: that one is a fixed window (INCR + PEXPIRE), which admits 2×
 * the limit across a window edge, counts refused requests, and reads Redis' own clock, so tests couldn't move time.
 */
@Injectable()
export class RedisRateLimitStorage implements ThrottlerStorage {
  constructor(
    private readonly redis: RedisService,
    private readonly clock: Clock,
  ) {}

  /** Admits the request only if every window has room; throws when Redis can't answer. */
  async consume(windows: RateWindow[]): Promise<RateDecision> {
    // A day window checked with a per-minute one can't take more than the minute's limit in one minute bucket.
    const perMinute = windows.filter((w) => w.windowMs >= RING_BUCKET_MS && isLog(w)).map((w) => w.limit);
    const args = [
      String(this.clock.now()),
      ...windows.flatMap((w) =>
        isLog(w)
          ? ['log', String(w.windowMs), String(w.limit), String(LOG_BUCKET_MS), '0']
          : [
              'ring',
              String(w.windowMs),
              String(w.limit),
              String(RING_BUCKET_MS),
              String(slotBytes(Math.min(w.limit, w.maxPerBucket ?? w.limit, ...perMinute))),
            ],
      ),
    ];
    const keys = windows.map(storedKey);
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

  private run(keys: string[], args: string[]): Promise<unknown> {
    return WINDOWS.run(this.redis.client, keys, args);
  }
}

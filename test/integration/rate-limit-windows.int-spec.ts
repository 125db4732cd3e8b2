import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import {
  type RateWindow,
  RedisRateLimitStorage,
  storedKey,
} from '../../src/common/rate-limit/redis-rate-limit.storage';
import type { RedisService } from '../../src/common/redis/redis.module';
import { FakeClock } from '../setup/fake-clock';
import { readInfra } from '../setup/infra';
import { dropRedisKeys } from '../setup/test-app';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const DAY = 24 * 60 * MINUTE;

/** A deterministic pseudo-random sequence (xorshift32), so a failing schedule can be replayed. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x1_0000_0000;
  };
}

/** The most admissions inside any span of `span` ms (half-open spans starting at an admission are the worst case). */
function busiestSpan(times: number[], span: number): number {
  let most = 0;
  let lo = 0;
  for (let hi = 0; hi < times.length; hi++) {
    while (times[hi] - times[lo] >= span) {
      lo++;
    }
    most = Math.max(most, hi - lo + 1);
  }
  return most;
}

describe('Rate-limit windows in Redis (bounded size, one script)', () => {
  const { redisUrl } = readInfra();
  const prefix = `fxf-test:${randomBytes(6).toString('hex')}:`;
  const client = new Redis(redisUrl, { keyPrefix: prefix });
  const clock = new FakeClock(Date.UTC(2026, 5, 1, 12, 0, 0, 0) + 123);
  const storage = new RedisRateLimitStorage({ client } as unknown as RedisService, clock);
  let n = 0;
  const subject = () => `{s${++n}}`;

  afterAll(async () => {
    client.disconnect();
    await dropRedisKeys(redisUrl, prefix);
  });

  const uploads = (s: string, perMinute: number, perDay: number): RateWindow[] => [
    { key: `rlw:${s}:uploads-minute`, windowMs: MINUTE, limit: perMinute },
    { key: `rlw:${s}:uploads-day`, windowMs: DAY, limit: perDay },
  ];
  const memory = async (key: string) =>
    Number(await client.call('MEMORY', 'USAGE', `${prefix}${key}`, 'SAMPLES', '0'));

  it('should never admit more than the per-minute limit in any span of 60 s, under bursts at random times', async () => {
    const s = subject();
    const next = rng(15);
    const admitted: number[] = [];
    let refused = 0;
    // ~3,000 attempts over ~40 simulated minutes: bursts in the same millisecond, in the same second, and gaps,
    // crossing second and minute boundaries at arbitrary offsets.
    for (let i = 0; i < 3000; i++) {
      const r = next();
      clock.advance(r < 0.3 ? 0 : r < 0.7 ? Math.floor(next() * 400) : Math.floor(next() * 4000));
      const d = await storage.consume(uploads(s, 7, 1_000_000));
      if (d.admitted) {
        admitted.push(clock.now());
      } else {
        refused++;
        // What it says to wait is enough: the same request after waitMs is never refused by the minute.
        expect(d.windows[0].waitMs).toBeGreaterThan(0);
        expect(d.windows[0].waitMs).toBeLessThanOrEqual(MINUTE);
      }
    }
    expect(refused).toBeGreaterThan(100);
    expect(admitted.length).toBeGreaterThan(100);
    expect(busiestSpan(admitted, MINUTE)).toBe(7);
  });

  it('should admit at the exact millisecond an admission leaves when admissions are ≥ 1 s apart', async () => {
    const s = subject();
    const start = clock.now();
    for (let i = 0; i < 3; i++) {
      expect((await storage.consume(uploads(s, 3, 100))).admitted).toBe(true);
      clock.advance(1500);
    }
    clock.set(start + MINUTE - 1);
    const refused = await storage.consume(uploads(s, 3, 100));
    expect({ admitted: refused.admitted, wait: refused.windows[0].waitMs }).toEqual({
      admitted: false,
      wait: 1,
    });
    clock.set(start + MINUTE);
    expect((await storage.consume(uploads(s, 3, 100))).admitted).toBe(true);
  });

  it('should stamp admissions of one second with the latest of them: late by < 1 s, never early', async () => {
    const s = subject();
    const second = Math.ceil(clock.now() / SECOND) * SECOND;
    clock.set(second + 100);
    expect((await storage.consume(uploads(s, 2, 100))).admitted).toBe(true);
    clock.set(second + 900);
    expect((await storage.consume(uploads(s, 2, 100))).admitted).toBe(true);
    clock.set(second + 100 + MINUTE);
    const d = await storage.consume(uploads(s, 2, 100));
    // Exactly, the first would have left now; counted as made at +900 ms, it leaves 800 ms later.
    expect({ admitted: d.admitted, wait: d.windows[0].waitMs }).toEqual({ admitted: false, wait: 800 });
    clock.set(second + 900 + MINUTE);
    expect((await storage.consume(uploads(s, 2, 100))).admitted).toBe(true);
  });

  it('should keep the day in minute buckets: never more than the daily limit in any 24 h span', async () => {
    const s = subject();
    const next = rng(7);
    const admitted: number[] = [];
    // 60 admissions a day allowed, attempts every 0–40 min for 3 simulated days.
    const end = clock.now() + 3 * DAY;
    while (clock.now() < end) {
      clock.advance(Math.floor(next() * 40 * MINUTE));
      for (let burst = Math.floor(next() * 6); burst >= 0; burst--) {
        if ((await storage.consume(uploads(s, 5, 60))).admitted) {
          admitted.push(clock.now());
        }
      }
    }
    expect(admitted.length).toBeGreaterThan(120);
    expect(busiestSpan(admitted, DAY)).toBe(60);
  });

  it('should free a day slot at the end of its minute + 24 h, as the refusal says', async () => {
    const s = subject();
    const first = clock.now();
    expect((await storage.consume(uploads(s, 5, 2))).admitted).toBe(true);
    clock.advance(5 * MINUTE);
    expect((await storage.consume(uploads(s, 5, 2))).admitted).toBe(true);
    clock.advance(MINUTE);
    const refused = await storage.consume(uploads(s, 5, 2));
    const leaves = (Math.floor(first / MINUTE) + 1) * MINUTE + DAY;
    expect({ admitted: refused.admitted, wait: refused.windows[1].waitMs }).toEqual({
      admitted: false,
      wait: leaves - clock.now(),
    });
    clock.set(leaves - 1);
    expect((await storage.consume(uploads(s, 5, 2))).admitted).toBe(false);
    clock.set(leaves);
    expect((await storage.consume(uploads(s, 5, 2))).admitted).toBe(true);
  });

  it('should hold a key at its daily cap (2,000 a day at 30 a minute) in ≤ 2 KB per window key', async () => {
    const s = subject();
    const limits = uploads(s, 30, 2000);
    // The cap reached over a day: 2,000 admissions, one every 43 s (one in each of ~1,430 minute buckets).
    for (let i = 0; i < 2000; i++) {
      expect((await storage.consume(limits)).admitted).toBe(true);
      clock.advance(43_000);
    }
    // ...and a full minute of the per-minute limit, in 30 different seconds.
    const m = subject();
    for (let i = 0; i < 30; i++) {
      expect((await storage.consume(uploads(m, 30, 2000))).admitted).toBe(true);
      clock.advance(1900);
    }
    const mgmt = subject();
    for (let i = 0; i < 120; i++) {
      expect(
        (await storage.consume([{ key: `rlw:${mgmt}:management`, windowMs: MINUTE, limit: 120 }])).admitted,
      ).toBe(true);
      clock.advance(490);
    }
    const sizes = {
      day: await memory(storedKey(limits[1])),
      minute: await memory(storedKey(uploads(m, 30, 2000)[0])),
      management: await memory(storedKey({ key: `rlw:${mgmt}:management`, windowMs: MINUTE, limit: 120 })),
    };
    expect((await storage.consume(limits)).windows[1].count).toBe(2000);
    for (const size of Object.values(sizes)) {
      expect(size).toBeGreaterThan(0);
      expect(size).toBeLessThanOrEqual(2048);
    }
  });

  it('should widen a bucket that outgrows its byte (limits raised at a restart) without losing counts', async () => {
    const s = subject();
    for (let i = 0; i < 255; i++) {
      expect((await storage.consume(uploads(s, 255, 10_000))).admitted).toBe(true);
    }
    // Restarted with a higher per-minute limit: the same minute bucket now goes past 255.
    for (let i = 0; i < 45; i++) {
      expect((await storage.consume(uploads(s, 1000, 10_000))).admitted).toBe(true);
    }
    const d = await storage.consume(uploads(s, 1000, 300));
    expect({ admitted: d.admitted, day: d.windows[1].count }).toEqual({ admitted: false, day: 300 });
  });

  it('should refuse without writing: a refused request leaves the keys as they were', async () => {
    const s = subject();
    const limits = uploads(s, 1, 10);
    expect((await storage.consume(limits)).admitted).toBe(true);
    const before = await Promise.all(limits.map((w) => client.getBuffer(storedKey(w))));
    expect(before.every((stored) => stored !== null)).toBe(true);
    clock.advance(SECOND);
    expect((await storage.consume(limits)).admitted).toBe(false);
    expect(await Promise.all(limits.map((w) => client.getBuffer(storedKey(w))))).toEqual(before);
  });

  it('should read a value that is not of its format (another version, damage) as an empty window, and mend it', async () => {
    const s = subject();
    const minute: RateWindow = { key: `rlw:${s}:management`, windowMs: MINUTE, limit: 2 };
    // One entry of the format before the header (12 bytes: time, count), a count far over the limit.
    const old = Buffer.alloc(12);
    old.writeDoubleBE(clock.now(), 0);
    old.writeUInt32BE(1000, 8);
    await client.set(storedKey(minute), old);
    const first = await storage.consume([minute]);
    expect({ admitted: first.admitted, count: first.windows[0].count }).toEqual({ admitted: true, count: 1 });
    expect((await client.getBuffer(storedKey(minute)))?.length).toBe(4 + 12);
    expect((await storage.consume([minute])).windows[0].count).toBe(2);
    expect((await storage.consume([minute])).admitted).toBe(false);
  });
});

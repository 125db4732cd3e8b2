import { loadConfig } from '../../config/app-config';
import { retryDelayMs } from './queues';

describe('retryDelayMs', () => {
  const config = loadConfig({ SECRET_KEY: 'x'.repeat(32) });
  /** When attempt n (1-based) starts, in ms after the first, with no jitter (the longest waits). */
  const startOf = (n: number, random = 0): number => {
    let t = 0;
    for (let a = 1; a < n; a++) {
      t += retryDelayMs(a, config, random);
    }
    return t;
  };

  it('should keep the API.md promise: at least 5 attempts within about an hour', () => {
    expect(startOf(5)).toBeLessThan(3600_000);
    expect(startOf(8)).toBeLessThanOrEqual(65 * 60_000);
  });

  it('should spread the default 22 attempts over about three days, waiting at most 6 hours', () => {
    expect(config.webhookMaxAttempts).toBe(22);
    const last = startOf(config.webhookMaxAttempts);
    expect(last).toBeGreaterThan(3 * 24 * 3600_000);
    expect(last).toBeLessThan(3.2 * 24 * 3600_000);
    // With the full jitter (every wait 20 % shorter) it still covers well over two and a half days.
    expect(startOf(config.webhookMaxAttempts, 0.9999)).toBeGreaterThan(2.4 * 24 * 3600_000);
    expect(retryDelayMs(30, config, 0)).toBe(6 * 3600_000);
  });

  it('should double from the base and shorten by at most 20 % for jitter', () => {
    expect([1, 2, 3].map((a) => retryDelayMs(a, config, 0))).toEqual([30_000, 60_000, 120_000]);
    expect(retryDelayMs(1, config, 0.9999)).toBeGreaterThanOrEqual(24_000);
  });
});

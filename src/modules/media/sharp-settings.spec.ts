import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

/**
 * niceImageThreads changes the niceness of threads for good (an unprivileged process cannot lower it again), so it
 * runs in a child process of its own, not in this jest worker. The child compiles sharp-settings.ts with ts-node, as
 * jest's transform does here, and prints what it saw.
 */
const CHILD = `
const { readdirSync, readFileSync } = require('node:fs');
const { getPriority } = require('node:os');
const sharp = require('sharp');
const { niceImageThreads } = require(${JSON.stringify(join(__dirname, 'sharp-settings'))});
const vips = () => readdirSync('/proc/self/task').map(Number).filter((tid) => {
  try { return readFileSync('/proc/self/task/' + tid + '/comm', 'latin1').trim() === 'libvips worker'; } catch { return false; }
});
(async () => {
  // A resize spreads over libvips' worker threads.
  await sharp({ create: { width: 2000, height: 2000, channels: 3, background: '#8a4' } }).resize(500).png().toBuffer();
  const first = niceImageThreads(5);
  const threads = vips();
  const lowered = threads.map((tid) => getPriority(tid));
  const again = niceImageThreads(5);
  // Another niceness: a call skips the threads it has already seen; the pool's once-a-second full pass does not.
  const skipped = niceImageThreads(7);
  const unchanged = threads.map((tid) => getPriority(tid));
  const full = niceImageThreads(7, true);
  const relowered = threads.map((tid) => getPriority(tid));
  console.log(JSON.stringify({ first, threads: threads.length, lowered, again, skipped, unchanged, full, relowered }));
})();
`;

describe('niceImageThreads', () => {
  // Raising a thread's niceness needs no privilege (lowering it again would): the steps only raise it.
  it('should lower every libvips worker thread once, and look again at all of them only in a full pass', async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['-r', 'ts-node/register/transpile-only', '-e', CHILD],
      { cwd: join(__dirname, '..', '..', '..') },
    );
    const seen = JSON.parse(stdout) as { threads: number } & Record<string, number | number[]>;
    const all = (nice: number): number[] => Array<number>(seen.threads).fill(nice);
    expect(seen.threads).toBeGreaterThan(0);
    expect(seen.first).toBe(seen.threads);
    expect(seen.lowered).toEqual(all(5));
    expect(seen.again).toBe(0);
    expect(seen.skipped).toBe(0);
    expect(seen.unchanged).toEqual(all(5));
    expect(seen.full).toBe(seen.threads);
    expect(seen.relowered).toEqual(all(7));
  });
});

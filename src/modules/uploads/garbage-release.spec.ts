import { GarbageRelease, widenHeapGrowth } from './garbage-release';

const MB = 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('GarbageRelease', () => {
  const releases: GarbageRelease[] = [];
  const made = (idleMs: number, minBytes: number): { release: GarbageRelease; runs: () => number } => {
    let runs = 0;
    const release = new GarbageRelease(() => runs++, idleMs, minBytes);
    releases.push(release);
    return { release, runs: () => runs };
  };
  afterEach(() => releases.splice(0).forEach((r) => r.close()));

  it('should collect once when the stage has stayed empty for idleMs after enough went through it', async () => {
    const { release, runs } = made(40, 10 * MB);
    release.add(12 * MB);
    release.idle();
    await sleep(20);
    expect(runs()).toBe(0);
    await sleep(60);
    expect(runs()).toBe(1);
    // Counted afresh: an empty stage with nothing new through it collects nothing more.
    release.idle();
    await sleep(80);
    expect(runs()).toBe(1);
  });

  it('should leave a stage that saw less than minBytes to V8', async () => {
    const { release, runs } = made(20, 10 * MB);
    release.add(4 * MB);
    release.add(5 * MB);
    release.idle();
    await sleep(60);
    expect(runs()).toBe(0);
  });

  it('should not collect while uploads follow one another, only after the last', async () => {
    const { release, runs } = made(60, 10 * MB);
    for (let i = 0; i < 4; i++) {
      release.add(20 * MB);
      release.idle();
      await sleep(25);
    }
    expect(runs()).toBe(0);
    await sleep(80);
    expect(runs()).toBe(1);
  });

  it('should not count bytes freed already, nor go below nothing', async () => {
    const { release, runs } = made(20, 10 * MB);
    release.add(12 * MB);
    release.forget(4 * MB);
    expect(release.pendingBytes).toBe(8 * MB);
    release.idle();
    await sleep(60);
    expect(runs()).toBe(0);

    release.forget(20 * MB);
    expect(release.pendingBytes).toBe(0);
    release.add(9 * MB);
    release.idle();
    await sleep(60);
    expect(runs()).toBe(0);
  });

  it('should stop a pending collection on close', async () => {
    const { release, runs } = made(20, MB);
    release.add(2 * MB);
    release.idle();
    release.close();
    await sleep(60);
    expect(runs()).toBe(0);
  });
});

describe('widenHeapGrowth', () => {
  it('should leave a growing factor given on the node command line, in either spelling', () => {
    expect(widenHeapGrowth(['--heap-growing-percent=30'])).toBe(false);
    expect(widenHeapGrowth(['--max-old-space-size=512', '--heap_growing_percent=5'])).toBe(false);
  });

  it('should set its own when the command line has none', () => {
    expect(widenHeapGrowth(['--max-old-space-size=512', '--heap-growing-percentile'])).toBe(true);
    expect(widenHeapGrowth([])).toBe(true);
  });
});

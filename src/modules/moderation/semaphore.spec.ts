import { Semaphore } from './semaphore';

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

describe(Semaphore.name, () => {
  it('should run at most `permits` tasks at once and queue the rest in arrival order', async () => {
    const gate = new Semaphore(2);
    let running = 0;
    let peak = 0;
    const started: number[] = [];
    const releases: (() => void)[] = [];
    const tasks = Array.from({ length: 16 }, (_, i) =>
      gate.use(async () => {
        started.push(i);
        peak = Math.max(peak, ++running);
        await new Promise<void>((resolve) => releases.push(resolve));
        running--;
        return i;
      }),
    );
    await tick();
    expect(started).toEqual([0, 1]);
    expect(gate.pending).toBe(14);
    while (releases.length > 0) {
      releases.shift()!();
      await tick();
      await tick();
    }
    await expect(Promise.all(tasks)).resolves.toEqual([...Array(16).keys()]);
    expect(peak).toBe(2);
    expect(started).toEqual([...Array(16).keys()]);
    expect(gate.pending).toBe(0);
  });

  it('should release the permit when a task fails', async () => {
    const gate = new Semaphore(1);
    await expect(gate.use(() => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    await expect(gate.use(() => Promise.resolve('next'))).resolves.toBe('next');
  });

  it('should hand out permits with acquire(), each released once however often its release is called', async () => {
    const gate = new Semaphore(1);
    const first = await gate.acquire();
    let second: (() => void) | undefined;
    void gate.acquire().then((release) => (second = release));
    let third: (() => void) | undefined;
    void gate.acquire().then((release) => (third = release));
    await tick();
    expect(second).toBeUndefined();
    first();
    first();
    await tick();
    // The second call of the first release did not free a second permit: the third still waits.
    expect(second).toBeDefined();
    expect(third).toBeUndefined();
    expect(gate.pending).toBe(1);
    second!();
    await tick();
    expect(third).toBeDefined();
  });

  it('should refuse a permit count below one', () => {
    expect(() => new Semaphore(0)).toThrow();
  });
});

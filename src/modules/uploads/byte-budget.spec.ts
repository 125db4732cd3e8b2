import { ByteBudget } from './byte-budget';

const tick = () => new Promise((r) => setImmediate(r));

function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

describe(ByteBudget.name, () => {
  it('should run tasks whose bytes fit together, and hold the next until one finishes', async () => {
    const budget = new ByteBudget(100);
    const a = gate();
    const b = gate();
    const started: string[] = [];
    const runA = budget.use(60, async () => (started.push('a'), a.promise));
    const runB = budget.use(40, async () => (started.push('b'), b.promise));
    const runC = budget.use(10, () => Promise.resolve(started.push('c')));
    await tick();
    expect(started).toEqual(['a', 'b']);
    expect(budget.inUse).toBe(100);
    expect(budget.pending).toBe(1);
    a.open();
    await runA;
    await runC;
    expect(started).toEqual(['a', 'b', 'c']);
    b.open();
    await runB;
    expect(budget.inUse).toBe(0);
  });

  it('should say whether a task would wait: when it does not fit, and behind anything already waiting', async () => {
    const budget = new ByteBudget(100);
    const a = gate();
    const runA = budget.use(60, () => a.promise);
    expect(budget.wouldWait(40)).toBe(false);
    expect(budget.wouldWait(41)).toBe(true);
    // Heavier than the whole budget: it runs alone, so it waits for the 60 to finish.
    expect(budget.wouldWait(500)).toBe(true);
    const runB = budget.use(50, () => Promise.resolve());
    // 10 would fit, but the 50 waits before it.
    expect(budget.wouldWait(10)).toBe(true);
    a.open();
    await Promise.all([runA, runB]);
    expect(budget.wouldWait(100)).toBe(false);
  });

  it('should keep arrival order: a small task does not overtake a waiting large one', async () => {
    const budget = new ByteBudget(100);
    const first = gate();
    const started: string[] = [];
    const runFirst = budget.use(50, async () => (started.push('first'), first.promise));
    const runLarge = budget.use(80, () => Promise.resolve(started.push('large')));
    const runSmall = budget.use(10, () => Promise.resolve(started.push('small')));
    await tick();
    expect(started).toEqual(['first']);
    first.open();
    await Promise.all([runFirst, runLarge, runSmall]);
    expect(started).toEqual(['first', 'large', 'small']);
  });

  it('should run a task heavier than the whole budget alone, and release its bytes when it fails', async () => {
    const budget = new ByteBudget(100);
    await expect(budget.use(500, () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(budget.inUse).toBe(0);
    await expect(budget.use(500, () => Promise.resolve('ok'))).resolves.toBe('ok');
  });

  it('should lend bytes without waiting only when they fit and nothing waits, and start waiting tasks once given back', async () => {
    const budget = new ByteBudget(100);
    expect(budget.tryTake(70)).toBe(true);
    expect(budget.inUse).toBe(70);
    expect(budget.tryTake(31)).toBe(false);
    expect(budget.tryTake(30)).toBe(true);
    expect(budget.tryTake(-1)).toBe(false);
    const started: string[] = [];
    const runA = budget.use(50, () => Promise.resolve(started.push('a')));
    await tick();
    expect(started).toEqual([]);
    budget.give(30);
    // 30 free, but a task waits: nothing is lent before it.
    expect(budget.tryTake(10)).toBe(false);
    budget.give(70);
    await runA;
    expect(started).toEqual(['a']);
    expect(budget.inUse).toBe(0);
    expect(budget.tryTake(100)).toBe(true);
  });

  it('should call onWait when a task starts waiting, not when it runs at once', async () => {
    let calls = 0;
    const budget = new ByteBudget(100, () => calls++);
    const a = gate();
    const runA = budget.use(80, () => a.promise);
    expect(calls).toBe(0);
    const runB = budget.use(30, () => Promise.resolve());
    expect(calls).toBe(1);
    a.open();
    await Promise.all([runA, runB]);
    await budget.use(100, () => Promise.resolve());
    expect(calls).toBe(1);
  });

  it('should refuse a capacity that is not a positive integer', () => {
    expect(() => new ByteBudget(0)).toThrow(/positive integer/);
  });
});

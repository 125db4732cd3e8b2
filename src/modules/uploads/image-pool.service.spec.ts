import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../config/app-config';
import { BODY_MEMORY_MAX_BYTES, ImagePool } from './image-pool.service';

const MB = 1024 * 1024;

describe('ImagePool: IMAGE_MEMORY_MB across the HTTP processes', () => {
  let dir: string;
  const pools: ImagePool[] = [];
  const pool = (env: Record<string, string>): ImagePool => {
    const made = new ImagePool(loadConfig({ DATA_DIR: dir, IMAGE_HEAVY_PROCESS: 'false', ...env }));
    pools.push(made);
    return made;
  };
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'fxf-pool-'));
  });
  afterEach(async () => {
    await Promise.all(pools.splice(0).map((p) => p.onModuleDestroy()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('should give each HTTP process its part of the budget: one per core by default, WEB_CONCURRENCY otherwise', () => {
    expect(pool({ IMAGE_MEMORY_MB: '48' }).budgetBytes).toBe(Math.floor((48 * MB) / availableParallelism()));
    expect(pool({ IMAGE_MEMORY_MB: '48', WEB_CONCURRENCY: '1' }).budgetBytes).toBe(48 * MB);
    expect(pool({ IMAGE_MEMORY_MB: '48', WEB_CONCURRENCY: '4' }).budgetBytes).toBe(12 * MB);
    expect(pool({ IMAGE_MEMORY_MB: '1', WEB_CONCURRENCY: '3' }).budgetBytes).toBe(Math.floor(MB / 3));
    // A role without HTTP runs one process: the whole budget.
    expect(pool({ IMAGE_MEMORY_MB: '48', WEB_CONCURRENCY: '4', APP_ROLE: 'worker' }).budgetBytes).toBe(
      48 * MB,
    );
  });

  it('should lend a body declared up to BODY_MEMORY_MAX_BYTES memory from the budget, at most half of it in all, and take it back', async () => {
    const lender = pool({ IMAGE_MEMORY_MB: '24', WEB_CONCURRENCY: '1' });
    expect(lender.bodyMemory(undefined)).toBeUndefined();
    expect(lender.bodyMemory(BODY_MEMORY_MAX_BYTES + 1)).toBeUndefined();
    const one = lender.bodyMemory(BODY_MEMORY_MAX_BYTES)!;
    const two = lender.bodyMemory(3 * MB)!;
    // One body takes at most BODY_MEMORY_MAX_BYTES.
    expect(one.take(BODY_MEMORY_MAX_BYTES)).toBe(true);
    expect(one.take(1)).toBe(false);
    // All bodies take at most half the budget (12 MB here).
    expect(two.take(4 * MB)).toBe(true);
    expect(two.take(1)).toBe(false);
    expect(lender.lentToBodies).toBe(12 * MB);
    // What is lent counts in the budget: an upload's bytes wait for it.
    expect(lender.wouldWaitForBytes(12 * MB + 1)).toBe(true);
    expect(lender.wouldWaitForBytes(12 * MB)).toBe(false);
    one.giveBack();
    one.giveBack();
    expect(lender.lentToBodies).toBe(4 * MB);
    expect(lender.wouldWaitForBytes(20 * MB)).toBe(false);
    two.giveBack();
    expect(lender.lentToBodies).toBe(0);
    // Nothing is lent while an upload waits for room.
    let release!: () => void;
    const held = lender.holdBytes(24 * MB, () => new Promise<void>((r) => (release = r)));
    const waiting = lender.holdBytes(MB, () => Promise.resolve());
    expect(lender.bodyMemory(MB)!.take(1)).toBe(false);
    release();
    await Promise.all([held, waiting]);
  });

  it('should recall the loans out when an upload has to wait for the budget, and start it once they are back', async () => {
    const lender = pool({ IMAGE_MEMORY_MB: '24', WEB_CONCURRENCY: '1' });
    const loan = lender.bodyMemory(8 * MB)!;
    let recalled = 0;
    // What the reader does when recalled: the body goes to its temp file and the memory goes back.
    loan.onRecall(() => {
      recalled++;
      loan.giveBack();
    });
    expect(loan.take(6 * MB)).toBe(true);
    // Room for this one beside the loan: nothing is recalled.
    await lender.holdBytes(18 * MB, () => Promise.resolve());
    expect(recalled).toBe(0);
    expect(lender.lentToBodies).toBe(6 * MB);
    // This one needs the loan's room: it waits, the loan is recalled, and it runs.
    let ran = false;
    await lender.holdBytes(24 * MB, () => Promise.resolve((ran = true)));
    expect(ran).toBe(true);
    expect(recalled).toBe(1);
    expect(lender.lentToBodies).toBe(0);
    // A loan given back is not recalled again.
    await lender.holdBytes(24 * MB, () => Promise.resolve());
    expect(recalled).toBe(1);
  });

  it('should count frames decoded here toward the release of dead buffers, and not frames decoded elsewhere', async () => {
    const counted = pool({ IMAGE_MEMORY_MB: '48' });
    const added: number[] = [];
    const add = counted.release.add.bind(counted.release);
    counted.release.add = (bytes: number) => {
      added.push(bytes);
      add(bytes);
    };
    await counted.gate(1_000_000, () => Promise.resolve());
    await counted.stage().gate(2_000_000, () => Promise.resolve(), true);
    await counted.gate(3_000_000, () => Promise.resolve(), false);
    // Elsewhere still marks the stage busy (an add of nothing), so no collection starts meanwhile.
    expect(added).toEqual([4_000_000, 0, 12_000_000]);
  });

  it('should hold a second 20 MB upload while one runs, with two processes sharing 48 MB', async () => {
    const shared = pool({ IMAGE_MEMORY_MB: '48', WEB_CONCURRENCY: '2' });
    let release!: () => void;
    const first = shared.holdBytes(20 * MB, () => new Promise<void>((r) => (release = r)));
    await new Promise((r) => setImmediate(r));
    expect(shared.wouldWaitForBytes(20 * MB)).toBe(true);
    expect(shared.wouldWaitForBytes(4 * MB)).toBe(false);
    release();
    await first;
    expect(shared.wouldWaitForBytes(20 * MB)).toBe(false);

    // One process alone holds the whole 48 MB: room for both.
    const alone = pool({ IMAGE_MEMORY_MB: '48', WEB_CONCURRENCY: '1' });
    let releaseAlone!: () => void;
    const held = alone.holdBytes(20 * MB, () => new Promise<void>((r) => (releaseAlone = r)));
    await new Promise((r) => setImmediate(r));
    expect(alone.wouldWaitForBytes(20 * MB)).toBe(false);
    releaseAlone();
    await held;
  });

  it('should give a heavy slot back only once the upload is answered, after the collection that frees its frames', async () => {
    const p = pool({ WEB_CONCURRENCY: '1' });
    const tick = () => new Promise((r) => setImmediate(r));
    const events: string[] = [];
    // The full collection the slot waits for, noted (it still runs).
    const collect = (p as unknown as { collect: () => void }).collect;
    Object.defineProperty(p, 'collect', { value: () => (events.push('collected'), collect()) });
    const answers: (() => void)[] = [];
    const heavy = () => p.stage((settle) => answers.push(settle));
    const first = heavy();
    await first.gate(17_000_000, () => Promise.resolve(events.push('first decoded')));
    const second = heavy();
    // Decoded elsewhere (the heavy-image process).
    const secondDecoded = second.gate(17_000_000, () => Promise.resolve(events.push('second decoded')), true);
    first.done();
    first.done(); // again: nothing more
    await tick();
    await tick();
    // Frames dropped, the upload not yet answered: the collection and the slot wait.
    expect(events).toEqual(['first decoded']);
    expect(answers).toHaveLength(1);
    answers[0]();
    await secondDecoded;
    expect(events).toEqual(['first decoded', 'collected', 'second decoded']);
    // Decoded elsewhere: no collection, the slot back at once, answered or not.
    second.done();
    const third = heavy();
    await expect(third.gate(17_000_000, () => Promise.resolve('third decoded'), true)).resolves.toBe(
      'third decoded',
    );
    expect(answers).toHaveLength(1);
    // A light image takes no slot, so its done has nothing to wait for.
    const light = heavy();
    await light.gate(2_000_000, () => Promise.resolve());
    light.done();
    expect(answers).toHaveLength(1);
    third.done();
  });

  it('should give heavy images IMAGE_HEAVY_CONCURRENCY slots (default 1) and refuse a count outside 1–64', async () => {
    const tick = () => new Promise((r) => setImmediate(r));
    const heavyStarted = async (
      p: ImagePool,
      count: number,
    ): Promise<{ started: number; done: () => void }> => {
      let started = 0;
      const stages = Array.from({ length: count }, () => p.stage());
      for (const stage of stages) {
        void stage.gate(17_000_000, () => Promise.resolve(started++), true);
      }
      await tick();
      await tick();
      return { started, done: () => stages.forEach((stage) => stage.done()) };
    };
    const one = await heavyStarted(pool({ WEB_CONCURRENCY: '1' }), 3);
    expect(one.started).toBe(1);
    one.done();
    const two = await heavyStarted(pool({ WEB_CONCURRENCY: '1', IMAGE_HEAVY_CONCURRENCY: '2' }), 3);
    expect(two.started).toBe(2);
    two.done();
    // Light images take no slot.
    const light = pool({ WEB_CONCURRENCY: '1' });
    const held = light.stage();
    void held.gate(17_000_000, () => Promise.resolve(), true);
    await expect(light.stage().gate(2_000_000, () => Promise.resolve('light'))).resolves.toBe('light');
    held.done();
    for (const bad of ['0', '65', 'two']) {
      expect(() => loadConfig({ DATA_DIR: dir, IMAGE_HEAVY_CONCURRENCY: bad })).toThrow(
        `IMAGE_HEAVY_CONCURRENCY must be a whole number from 1 to 64 (got "${bad}")`,
      );
    }
  });
});

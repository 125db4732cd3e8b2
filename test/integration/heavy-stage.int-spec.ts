import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { HeavyStageGrants } from '../../src/modules/uploads/heavy-stage';
import { waitFor } from '../setup/wait';

const ROOT = join(__dirname, '..', '..');

/**
 * The heavy stage across processes (IMAGE_HEAVY_CONCURRENCY for one `npm start`): this test is the primary, with the
 * primary's HeavyStageGrants, and its children are workers with the workers' ClusterHeavyStage, talking over a real
 * IPC channel as the cluster's workers do. A child acquires and releases on command and reports each grant.
 */
const CHILD = `
const { ClusterHeavyStage, LocalHeavyStage } = require('./src/modules/uploads/heavy-stage');
// Two stages on one channel (as two apps in one worker would have): each must get its own grants.
const stages = [0, 1].map(() => new ClusterHeavyStage(process, new LocalHeavyStage(1)));
const held = new Map();
process.on('message', async (m) => {
  if (m.cmd === 'acquire') {
    held.set(m.tag, await stages[m.stage ?? 0].acquire());
    process.send({ report: 'granted', tag: m.tag });
  } else if (m.cmd === 'release') {
    held.get(m.tag)();
    held.get(m.tag)();
  } else if (m.cmd === 'close') {
    stages[m.stage ?? 0].close();
  }
});
process.send({ report: 'ready' });
`;

interface Worker {
  child: ChildProcess;
  grants: string[];
}

describe('HeavyStage over IPC (the cluster primary and its workers)', () => {
  const children: ChildProcess[] = [];
  afterAll(() => {
    for (const child of children) {
      child.kill('SIGKILL');
    }
  });

  async function worker(grants: HeavyStageGrants): Promise<Worker> {
    const child = fork('-e', [CHILD], {
      cwd: ROOT,
      execArgv: ['-r', 'ts-node/register/transpile-only'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    children.push(child);
    const w: Worker = { child, grants: [] };
    const ready = new Promise<void>((resolve) => {
      child.on('message', (m: { report?: string; tag?: string }) => {
        if (grants.handle(child, m)) {
          return;
        }
        if (m.report === 'ready') {
          resolve();
        } else if (m.report === 'granted') {
          w.grants.push(m.tag!);
        }
      });
    });
    child.on('exit', () => grants.gone(child));
    await ready;
    return w;
  }

  const send = (w: Worker, cmd: 'acquire' | 'release' | 'close', tag: string, stage = 0): void => {
    w.child.send({ cmd, tag, stage });
  };
  /** Long enough for a grant that was due to have crossed the channel. */
  const settle = () => new Promise((r) => setTimeout(r, 300));

  /** One slot: worker a holds it (a1), worker b waits for it (b1). */
  async function oneHeldOneWaiting(): Promise<{ grants: HeavyStageGrants; a: Worker; b: Worker }> {
    const grants = new HeavyStageGrants(1);
    const a = await worker(grants);
    const b = await worker(grants);
    send(a, 'acquire', 'a1');
    await waitFor('a1 granted', () => a.grants.includes('a1'));
    send(b, 'acquire', 'b1');
    await waitFor('b1 queued', () => grants.queued === 1);
    return { grants, a, b };
  }

  it('should grant one slot at a time across processes, in arrival order, each released once', async () => {
    // The order is the order of arrival at the primary: b1 is in the queue before a2 is sent.
    const { grants, a, b } = await oneHeldOneWaiting();
    send(a, 'acquire', 'a2');
    await waitFor('a2 queued', () => grants.queued === 2);
    await settle();
    expect([a.grants, b.grants]).toEqual([['a1'], []]);
    // The child calls each release twice: the second must not free a second slot.
    send(a, 'release', 'a1');
    await waitFor('b1 granted', () => b.grants.includes('b1'));
    await settle();
    expect([a.grants, b.grants]).toEqual([['a1'], ['b1']]);
    expect(grants.granted).toBe(1);
    send(b, 'release', 'b1');
    await waitFor('a2 granted', () => a.grants.includes('a2'));
    send(a, 'release', 'a2');
    await waitFor('every slot back', () => grants.granted === 0);
  });

  it('should take back the slots of a worker that dies, and drop its waiting requests', async () => {
    const { grants, a, b } = await oneHeldOneWaiting();
    const c = await worker(grants);
    send(c, 'acquire', 'c1');
    await waitFor('c1 queued', () => grants.queued === 2);
    // a dies holding the slot, b dies waiting: c is next, and gets the slot.
    a.child.kill('SIGKILL');
    b.child.kill('SIGKILL');
    await Promise.all([once(a.child, 'exit'), once(b.child, 'exit')]);
    await waitFor('c1 granted', () => c.grants.includes('c1'));
    expect(b.grants).toEqual([]);
    expect(grants.granted).toBe(1);
  });

  it('should tell apart the requests of two stages in one worker, and take each release once', async () => {
    const grants = new HeavyStageGrants(2);
    const a = await worker(grants);
    send(a, 'acquire', 'x', 0);
    send(a, 'acquire', 'y', 1);
    await waitFor('both granted', () => a.grants.length === 2);
    expect(grants.granted).toBe(2);
    send(a, 'release', 'x');
    await waitFor('one slot back', () => grants.granted === 1);
    send(a, 'release', 'y');
    await waitFor('both slots back', () => grants.granted === 0);
  });

  it('should grant IMAGE_HEAVY_CONCURRENCY slots at once', async () => {
    const grants = new HeavyStageGrants(2);
    const a = await worker(grants);
    const b = await worker(grants);
    send(a, 'acquire', 'a1');
    send(b, 'acquire', 'b1');
    await waitFor('two granted', () => a.grants.length + b.grants.length === 2);
    send(b, 'acquire', 'b2');
    await waitFor('b2 queued', () => grants.queued === 1);
    await settle();
    expect([a.grants, b.grants]).toEqual([['a1'], ['b1']]);
    send(a, 'release', 'a1');
    await waitFor('b2 granted', () => b.grants.includes('b2'));
  });

  it("should let a closing worker's waiting uploads go on locally, and drop their requests at the primary", async () => {
    const { grants, a, b } = await oneHeldOneWaiting();
    // b's app closes (shutdown): its upload waiting for the slot must not hang the drain.
    send(b, 'close', '');
    await waitFor('b1 going on with its own count', () => b.grants.includes('b1'));
    await waitFor('b1 dropped at the primary', () => grants.queued === 0);
    expect(grants.granted).toBe(1);
    // A later upload of the closing worker counts locally too: b1 holds b's one local slot, so b2 waits for it.
    send(b, 'acquire', 'b2');
    await settle();
    expect(b.grants).toEqual(['b1']);
    expect(grants.queued).toBe(0);
    send(b, 'release', 'b1');
    await waitFor('b2 given the local slot', () => b.grants.includes('b2'));
    // Nothing of b's is granted at the primary when a gives its slot back.
    send(a, 'release', 'a1');
    await waitFor('every slot back', () => grants.granted === 0);
    await settle();
    expect(grants.granted).toBe(0);
  });

  it('should count for the worker alone once its channel to the primary is closed (the worker is exiting)', async () => {
    // The child drops its channel first, then reports on stdout: with one local slot, the second acquire waits for
    // the first's release.
    const orphan = `
const { ClusterHeavyStage, LocalHeavyStage } = require('./src/modules/uploads/heavy-stage');
const stage = new ClusterHeavyStage(process, new LocalHeavyStage(1));
process.disconnect();
(async () => {
  const first = await stage.acquire();
  let second = false;
  const next = stage.acquire().then((release) => ((second = true), release));
  await new Promise((r) => setTimeout(r, 200));
  const waited = !second;
  first();
  (await next)();
  process.stdout.write(JSON.stringify({ waited, second }));
})();
`;
    const child = fork('-e', [orphan], {
      cwd: ROOT,
      execArgv: ['-r', 'ts-node/register/transpile-only'],
      stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
    });
    children.push(child);
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    // 'close', not 'exit': it comes once stdout has been read to its end ('exit' can come before the last chunk).
    const [code] = (await once(child, 'close')) as [number | null];
    expect(code).toBe(0);
    expect(JSON.parse(out)).toEqual({ waited: true, second: true });
  });
});

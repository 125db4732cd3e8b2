import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = join(__dirname, '..', '..');
const MB = 1024 * 1024;

/**
 * What both children start with: the real ImagePool's module and config (not a cluster worker, the heavy stage counted
 * in the process), a decode of a 6 MP frame with sharp (24 MB of RGBA outside V8's heap, its length returned), and
 * `over()`, the external memory over the start (a child sets `start` once its pool exists).
 */
const PRELUDE = `
const sharp = require('sharp');
const { loadConfig } = require('./src/config/app-config');
const { ImagePool } = require('./src/modules/uploads/image-pool.service');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const config = loadConfig({ DATA_DIR: process.argv[1], IMAGE_HEAVY_PROCESS: 'false', WEB_CONCURRENCY: '1' });
const decode = async () =>
  (await sharp({ create: { width: 3000, height: 2000, channels: 4, background: '#406080' } }).raw().toBuffer()).length;
let start = 0;
const over = () => process.memoryUsage().external - start;
`;

/**
 * A process of its own (Jest's sandbox keeps buffers alive that a plain process frees) runs two uploads' image stage
 * at once through the real ImagePool: each decodes a 6 MP frame with sharp and drops it. Both together stay under
 * the external memory at which V8 collects on its own (64 MB over the start). It reports the external memory over
 * its start while the stage is empty, then once the stage has stayed empty for RELEASE_IDLE_MS.
 */
const CHILD = `
${PRELUDE}
const { RELEASE_IDLE_MS } = require('./src/modules/uploads/garbage-release');
const MB = 1024 * 1024;
(async () => {
  const pool = new ImagePool(config);
  start = process.memoryUsage().external;
  // 2 × (8 MB of file bytes × 2 + 6 MP × 4): past RELEASE_MIN_BYTES.
  const upload = () => pool.holdBytes(8 * MB, () => pool.gate(6_000_000, decode));
  const lengths = await Promise.all([upload(), upload()]);
  await sleep(RELEASE_IDLE_MS / 2);
  const empty = over();
  await sleep(RELEASE_IDLE_MS);
  const released = over();
  await pool.onModuleDestroy();
  process.stdout.write(JSON.stringify({ lengths, empty, released }));
})();
`;

/**
 * The heavy stage in a process of its own (not a cluster worker: the slots are counted here): two heavy images (the
 * gate is told 17 MP; each decodes a 24 MB frame, so V8 would not collect on its own) after a light one.
 */
const HEAVY_CHILD = `
${PRELUDE}
(async () => {
  const pool = new ImagePool(config);
  start = process.memoryUsage().external;
  const light = pool.stage();
  await light.gate(6_000_000, decode);
  light.done();
  const afterLight = over();
  const first = pool.stage();
  await first.gate(17_000_000, decode);
  const second = pool.stage();
  let started = false;
  // Told elsewhere (as for the heavy-image process), though its frame is made here: the frame stays.
  const secondDecoded = second.gate(17_000_000, () => ((started = true), decode()), true);
  await sleep(200);
  const secondWaited = !started;
  const beforeDone = over();
  first.done();
  const afterDone = over();
  await secondDecoded;
  second.done();
  const afterSecond = over();
  await pool.onModuleDestroy();
  process.stdout.write(JSON.stringify({ afterLight, secondWaited, beforeDone, afterDone, afterSecond }));
})();
`;

/**
 * The heap's room after a full collection, in a process of its own: the real ImagePool is made (it sets V8's growing
 * factor unless the command line did), about 60 MB of heap stays live, one full collection sets the limit, then
 * old-generation garbage worth half the live heap is made: arrays over 128 KB (V8's large-object space), each kept
 * while the next few are made so that they outlive a scavenge, as an upload's buffers do. It counts the full
 * collections meanwhile.
 */
const HEAP_CHILD = `
${PRELUDE}
const v8 = require('v8');
const { PerformanceObserver, constants } = require('perf_hooks');
const { fullCollection } = require('./src/modules/uploads/garbage-release');
(async () => {
  const pool = new ImagePool(config);
  const live = Array.from({ length: 400_000 }, (_, i) => ({ i, name: 'item ' + i }));
  fullCollection()();
  const liveBytes = v8.getHeapStatistics().used_heap_size;
  let majors = 0;
  const observer = new PerformanceObserver((list) => {
    majors += list.getEntries().filter((e) => e.detail.kind === constants.NODE_PERFORMANCE_GC_MAJOR).length;
  });
  observer.observe({ entryTypes: ['gc'] });
  const window = [];
  for (let made = 0; made < liveBytes / 2; made += 200_000 * 8) {
    window.push(new Array(200_000).fill(made));
    if (window.length > 4) window.shift();
    await new Promise((r) => setImmediate(r));
  }
  await sleep(300);
  observer.disconnect();
  await pool.onModuleDestroy();
  process.stdout.write(JSON.stringify({ liveMb: liveBytes / 1048576, majors, kept: live.length + window.length }));
})();
`;

describe('GarbageRelease in a real process', () => {
  it('should give back the decoded frames a burst left behind once the image stage has stayed empty', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'fxf-garbage-'));
    try {
      const { stdout } = await run(
        process.execPath,
        ['-r', 'ts-node/register/transpile-only', '-e', CHILD, dataDir],
        { cwd: ROOT },
      );
      const { lengths, empty, released } = JSON.parse(stdout) as {
        lengths: number[];
        empty: number;
        released: number;
      };
      expect(lengths).toEqual([24_000_000, 24_000_000]);
      // Both frames are dead once the stage is empty, and V8 still holds them: nothing made it collect.
      expect(empty).toBeGreaterThan(40 * MB);
      // Then the release collects them.
      expect(released).toBeLessThan(8 * MB);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('should collect a heavy image’s frames when it gives back its heavy-stage slot, before the next one decodes', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'fxf-garbage-'));
    try {
      const { stdout } = await run(
        process.execPath,
        ['-r', 'ts-node/register/transpile-only', '-e', HEAVY_CHILD, dataDir],
        { cwd: ROOT },
      );
      const r = JSON.parse(stdout) as Record<string, number | boolean>;
      // A light image takes no slot and its done() collects nothing: its dead frame stays.
      expect(r.afterLight).toBeGreaterThan(20 * MB);
      // The second heavy image waited for the first's slot; both frames (48 MB) dead when the first gives it back.
      expect(r.secondWaited).toBe(true);
      expect(r.beforeDone).toBeGreaterThan(40 * MB);
      // done() collected before handing the slot on.
      expect(r.afterDone).toBeLessThan(8 * MB);
      // The second decoded only then; a heavy image decoded elsewhere (the heavy-image process) collects nothing.
      expect(r.afterSecond).toBeGreaterThan(20 * MB);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  /** Runs HEAP_CHILD with `nodeArgs` before the script. */
  async function heapChild(nodeArgs: string[]): Promise<{ liveMb: number; majors: number }> {
    const dataDir = mkdtempSync(join(tmpdir(), 'fxf-garbage-'));
    try {
      const { stdout } = await run(
        process.execPath,
        [...nodeArgs, '-r', 'ts-node/register/transpile-only', '-e', HEAP_CHILD, dataDir],
        { cwd: ROOT },
      );
      return JSON.parse(stdout) as { liveMb: number; majors: number };
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }

  it('should let the heap grow by half of what is live without a full collection (HEAP_GROWING_PERCENT)', async () => {
    const { liveMb, majors } = await heapChild([]);
    expect(liveMb).toBeGreaterThan(30);
    expect(majors).toBe(0);
  });

  it('should leave a --heap-growing-percent given on the command line as it is', async () => {
    // 10 %: the same garbage now crosses the limit, so the test above could fail, and the operator's flag won.
    const { majors } = await heapChild(['--heap-growing-percent=10']);
    expect(majors).toBeGreaterThan(0);
  });
});

import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = join(__dirname, '..', '..');
const MB = 1024 * 1024;

/**
 * A process of its own (Jest's sandbox keeps buffers alive that a plain process frees) runs two uploads' image stage
 * at once through the real ImagePool: each decodes a 6 MP frame with sharp (24 MB of RGBA outside V8's heap) and
 * drops it. Both together stay under the external memory at which V8 collects on its own (64 MB over the start). It reports the external memory over its start while the stage is empty, then once the stage has stayed
 * empty for RELEASE_IDLE_MS.
 */
const CHILD = `
const sharp = require('sharp');
const { loadConfig } = require('./src/config/app-config');
const { ImagePool } = require('./src/modules/uploads/image-pool.service');
const { RELEASE_IDLE_MS } = require('./src/modules/uploads/garbage-release');
const MB = 1024 * 1024;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
(async () => {
  const config = loadConfig({ DATA_DIR: process.argv[1], IMAGE_HEAVY_PROCESS: 'false', WEB_CONCURRENCY: '1' });
  const pool = new ImagePool(config);
  const start = process.memoryUsage().external;
  const over = () => process.memoryUsage().external - start;
  const decode = async () =>
    (await sharp({ create: { width: 3000, height: 2000, channels: 4, background: '#406080' } }).raw().toBuffer())
      .length;
  // 2 × (8 MB of file bytes × 2 + 6 MP × 4): past RELEASE_MIN_BYTES.
  const upload = () => pool.holdBytes(8 * MB, () => pool.gate(6_000_000, decode));
  const lengths = await Promise.all([upload(), upload()]);
  await sleep(RELEASE_IDLE_MS / 2);
  const empty = over();
  await sleep(RELEASE_IDLE_MS);
  const released = over();
  pool.onModuleDestroy();
  process.stdout.write(JSON.stringify({ lengths, empty, released }));
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
});

import { mkdtempSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AppConfig } from '../../src/config/app-config';
import { LocalStorageDriver, STAT_TRUST_MS } from '../../src/modules/storage/local.driver';

/**
 * LocalStorageDriver.localFileStats, what the direct-link fast path checks before every answer (issue 14): a stat
 * is reused for STAT_TRUST_MS, but never across a write or a delete made through the driver, and a file removed
 * behind the driver's back is seen as gone once the window has passed. Real files on a real disk.
 */
describe('LocalStorageDriver.localFileStats', () => {
  let root: string;
  let driver: LocalStorageDriver;

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'fxf-stats-'));
    driver = new LocalStorageDriver({ storageDir: root } as AppConfig);
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('should give the size of a stored file and null for a missing one', async () => {
    await driver.put('FIXITFY-aaaaaaaaaaaa.png', Buffer.alloc(1234));
    expect(driver.localFileStats('FIXITFY-aaaaaaaaaaaa.png')).toMatchObject({ size: 1234 });
    expect(driver.localFileStats('FIXITFY-bbbbbbbbbbbb.png')).toBeNull();
  });

  it('should see a write and a delete through the driver at once, within the window', async () => {
    const key = 'FIXITFY-cccccccccccc.png';
    await driver.put(key, Buffer.alloc(10));
    expect(driver.localFileStats(key)).toMatchObject({ size: 10 });
    await driver.put(key, Buffer.alloc(20));
    expect(driver.localFileStats(key)).toMatchObject({ size: 20 });
    await driver.delete(key);
    expect(driver.localFileStats(key)).toBeNull();
  });

  it('should reuse a stat within the window, and see a file removed behind its back as gone after it', async () => {
    const key = 'FIXITFY-dddddddddddd.png';
    await driver.put(key, Buffer.alloc(30));
    expect(driver.localFileStats(key)).toMatchObject({ size: 30 });
    unlinkSync(driver.localFile(key).path);
    // The stat of a moment ago stands (no syscall): the trade the fast path makes, README "Direct links".
    expect(driver.localFileStats(key)).toMatchObject({ size: 30 });
    await new Promise((resolve) => setTimeout(resolve, STAT_TRUST_MS + 100));
    expect(driver.localFileStats(key)).toBeNull();
  });

  it('should give the same path for a key every time, and refuse a bad key every time', () => {
    const key = 'FIXITFY-eeeeeeeeeeee.png';
    const first = driver.localFile(key);
    expect(first).toEqual({ path: join(root, 'ee', key), relative: `ee/${key}` });
    expect(driver.localFile(key)).toEqual(first);
    for (let i = 0; i < 2; i++) {
      expect(() => driver.localFile('../FIXITFY-eeeeeeeeeeee.png')).toThrow('Invalid storage key.');
    }
  });
});

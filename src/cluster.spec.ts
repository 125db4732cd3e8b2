import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { processCount } from './cluster';
import { ConfigError, loadConfig } from './config/app-config';

describe('WEB_CONCURRENCY', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'fxf-cluster-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('should run one HTTP process per available core by default, and the number set otherwise', () => {
    expect(processCount(loadConfig({ DATA_DIR: dir }))).toBe(availableParallelism());
    expect(processCount(loadConfig({ DATA_DIR: dir, WEB_CONCURRENCY: '1' }))).toBe(1);
    expect(processCount(loadConfig({ DATA_DIR: dir, WEB_CONCURRENCY: '3', APP_ROLE: 'api' }))).toBe(3);
  });

  it('should run one process for APP_ROLE=worker (no HTTP to share)', () => {
    expect(processCount(loadConfig({ DATA_DIR: dir, WEB_CONCURRENCY: '4', APP_ROLE: 'worker' }))).toBe(1);
  });

  it.each(['0', '65', '1.5', 'two', '-1'])('should refuse WEB_CONCURRENCY=%s naming the rule', (value) => {
    expect(() => loadConfig({ DATA_DIR: dir, WEB_CONCURRENCY: value })).toThrow(ConfigError);
    expect(() => loadConfig({ DATA_DIR: dir, WEB_CONCURRENCY: value })).toThrow(
      `WEB_CONCURRENCY must be a whole number from 1 to 64 (got "${value}")`,
    );
  });
});

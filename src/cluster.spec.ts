import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { processCount } from './cluster';
import { httpProcessCount } from './common/jobs/process-role';
import { ConfigError, loadConfig } from './config/app-config';
import { earlyWorkerEnv, expectsSeveralWorkers, threadpoolSize } from './config/early-settings';

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

describe('the early worker (forked before the settings are validated)', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'fxf-cluster-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it.each([
    [{}, 2, true],
    [{}, 1, false],
    [{ WEB_CONCURRENCY: '' }, 2, true],
    [{ WEB_CONCURRENCY: '1' }, 4, false],
    [{ WEB_CONCURRENCY: '3' }, 1, true],
    [{ WEB_CONCURRENCY: '64', APP_ROLE: 'api' }, 2, true],
    [{ APP_ROLE: 'all' }, 2, true],
    [{ APP_ROLE: 'worker' }, 2, false],
    [{ WEB_CONCURRENCY: '4', APP_ROLE: 'worker' }, 2, false],
  ])(
    'should be forked for %j on %i cores exactly when the settings run several HTTP processes',
    (env, cores, fork) => {
      expect(expectsSeveralWorkers(env, cores)).toBe(fork);
      // What the validated settings decide, on a machine of that many cores.
      const config = loadConfig({ DATA_DIR: dir, ...env });
      expect(httpProcessCount(config.appRole, config.webConcurrency ?? cores) > 1).toBe(fork);
    },
  );

  it.each(['0', '65', '1.5', 'two', '-1', '2x', '007'])(
    'should not be forked for WEB_CONCURRENCY=%s, which the settings refuse or read otherwise',
    (value) => {
      expect(expectsSeveralWorkers({ WEB_CONCURRENCY: value }, 2)).toBe(false);
    },
  );

  it('should not be forked for an APP_ROLE the settings refuse', () => {
    expect(expectsSeveralWorkers({ APP_ROLE: 'cli' }, 2)).toBe(false);
    expect(expectsSeveralWorkers({ APP_ROLE: 'API' }, 2)).toBe(false);
  });

  it('should get the threadpool the settings reserve for their image lanes, unless the operator chose one', () => {
    expect(earlyWorkerEnv({})).toEqual({
      FXF_EARLY_WORKER: '1',
      UV_THREADPOOL_SIZE: String(threadpoolSize(loadConfig({ DATA_DIR: dir }).images.concurrency)),
    });
    expect(earlyWorkerEnv({ IMAGE_CONCURRENCY: '4' }).UV_THREADPOOL_SIZE).toBe(
      String(threadpoolSize(loadConfig({ DATA_DIR: dir, IMAGE_CONCURRENCY: '4' }).images.concurrency)),
    );
    expect(threadpoolSize(4)).toBe(4 + 1 + 4);
    expect(earlyWorkerEnv({ UV_THREADPOOL_SIZE: '16' })).toEqual({ FXF_EARLY_WORKER: '1' });
  });
});

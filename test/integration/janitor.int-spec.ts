import { existsSync, mkdirSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import Redis from 'ioredis';
import { png } from '../fixtures/sample-images';
import { bearer, makeKey } from '../setup/factories';
import { createTestApp, type TestApp } from '../setup/test-app';
import { waitFor } from '../setup/wait';
import { JanitorService } from '../../src/modules/uploads/janitor.service';
import { StorageDriver } from '../../src/modules/storage/storage-driver';
import { bullPrefix, JANITOR_QUEUE } from '../../src/modules/webhooks/queues';

const HOUR = 60 * 60 * 1000;

function backdate(path: string): void {
  const old = new Date(Date.now() - HOUR);
  utimesSync(path, old, old);
}

function storedPath(t: TestApp, key: string): string {
  return join(t.config.storageDir, key.slice(8, 10), key);
}

async function storedKeys(t: TestApp): Promise<string[]> {
  const keys: string[] = [];
  for await (const o of t.app.get(StorageDriver).list()) {
    keys.push(o.key);
  }
  return keys.sort();
}

describe(JanitorService.name, () => {
  let t: TestApp;

  beforeAll(async () => {
    // APP_ROLE=api: no scheduled sweep runs behind this test's back; a batch of 7 makes the paging visible.
    t = await createTestApp({ env: { APP_ROLE: 'api', JANITOR_BATCH_SIZE: '7' } });
  });
  afterAll(() => t.close());

  it('should page through many stored files in batches, removing old orphans and keeping live and young ones', async () => {
    const { token } = await makeKey(t);
    const live: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await t.http
        .post('/api/v1/upload')
        .set(...bearer(token))
        .attach('file', await png(100 + i), `live${i}.png`)
        .expect(200);
      live.push(res.body.filename);
    }
    const storage = t.app.get(StorageDriver);
    const bytes = await png(1);
    const orphans = Array.from({ length: 150 }, (_, i) => `FIXITFY-orph${String(i).padStart(8, '0')}.png`);
    for (const key of orphans) {
      await storage.put(key, bytes);
    }
    await storage.put('FIXITFY-youngYoungYo.png', bytes);
    // Files the service never writes, left in its storage directory by someone else: never removed, however old.
    const foreign = ['operator-notes.txt', 'FIXITFY-orph00000001.png.bak', 'FIXITFY-orph00000002.png__copy'];
    for (const name of foreign) {
      await storage.put(name, bytes);
    }
    for (const key of [...live, ...orphans, ...foreign]) {
      backdate(storedPath(t, key));
    }
    mkdirSync(join(t.config.dataDir, 'tmp'), { recursive: true });
    writeFileSync(join(t.config.dataDir, 'tmp', 'upload-crashed'), 'partial');
    backdate(join(t.config.dataDir, 'tmp', 'upload-crashed'));

    const result = await t.app.get(JanitorService).sweep();

    // 153 old files in batches of 7.
    expect(result).toEqual({ orphans: 150, temps: 1, batches: Math.ceil(153 / 7) });
    expect(await storedKeys(t)).toEqual([...live, 'FIXITFY-youngYoungYo.png', ...foreign].sort());
    expect(readdirSync(join(t.config.dataDir, 'tmp'))).toEqual([]);
    for (const filename of live) {
      await t.http.get(`/images/${filename}`).expect(200);
    }
  });

  it("should remove the storage driver's own temp files (interrupted writes) once past the grace period", async () => {
    const shard = join(t.config.storageDir, 'ab');
    mkdirSync(shard, { recursive: true });
    const old = join(shard, '.FIXITFY-abOldTemp1.png.0123456789ab.tmp');
    const young = join(shard, '.FIXITFY-abYoungTmp.png.ba9876543210.tmp');
    writeFileSync(old, 'half a file');
    writeFileSync(young, 'being written');
    backdate(old);

    const result = await t.app.get(JanitorService).sweep();

    expect(result.temps).toBe(1);
    expect(existsSync(old)).toBe(false);
    expect(existsSync(young)).toBe(true);
  });
});

describe(`${JanitorService.name} scheduling`, () => {
  let api: TestApp;
  const workers: TestApp[] = [];

  beforeAll(async () => {
    api = await createTestApp({ env: { APP_ROLE: 'api' } });
  });
  afterAll(async () => {
    for (const w of workers) {
      await w.close();
    }
    await api.close();
  });

  it('should sweep shortly after start and register one job scheduler however many instances start', async () => {
    const storage = api.app.get(StorageDriver);
    await storage.put('FIXITFY-startOrphanX.png', await png(5));
    backdate(storedPath(api, 'FIXITFY-startOrphanX.png'));

    // Two instances of the same deployment start (e.g. after a kill -9): the first sweep comes within seconds.
    const env = { APP_ROLE: 'all', JANITOR_START_DELAY_SECONDS: '0', JANITOR_INTERVAL_MINUTES: '30' };
    workers.push(await createTestApp({ env, shareWith: api }));
    workers.push(await createTestApp({ env, shareWith: api }));
    await waitFor('the startup sweep', async () => (await storedKeys(api)).length === 0);

    const connection = new Redis(api.config.redisUrl, { maxRetriesPerRequest: null });
    const queue = new Queue(JANITOR_QUEUE, { connection, prefix: bullPrefix(api.config) });
    try {
      const schedulers = await waitFor('the job scheduler', async () => {
        const found = await queue.getJobSchedulers();
        return found.length > 0 ? found : null;
      });
      expect(schedulers).toHaveLength(1);
      expect(schedulers[0]).toMatchObject({ key: 'janitor-sweep', every: 30 * 60 * 1000 });
      expect(await queue.getGlobalConcurrency()).toBe(1);
    } finally {
      await queue.close();
      connection.disconnect();
    }
  });
});

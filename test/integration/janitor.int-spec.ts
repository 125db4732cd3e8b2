import { mkdirSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { png } from '../fixtures/sample-images';
import { bearer, makeKey } from '../setup/factories';
import { createTestApp, type TestApp } from '../setup/test-app';
import { JanitorService } from '../../src/modules/uploads/janitor.service';
import { StorageDriver } from '../../src/modules/uploads/storage/storage-driver';

describe(JanitorService.name, () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());

  it('should remove old files no live row points to, and keep live and young ones', async () => {
    const { token } = await makeKey(t);
    const live = await t.http
      .post('/api/v1/upload')
      .set(...bearer(token))
      .attach('file', await png(1), 'a.png')
      .expect(200);
    const storage = t.app.get(StorageDriver);
    await storage.put('FIXITFY-orphanOrphan1.png', await png(2));
    await storage.put('FIXITFY-youngYoungYo.png', await png(3));
    mkdirSync(join(t.config.dataDir, 'tmp'), { recursive: true });
    writeFileSync(join(t.config.dataDir, 'tmp', 'upload-crashed'), 'partial');

    const hourFromNow = Date.now() + 60 * 60 * 1000;
    const old = new Date(Date.now() - 60 * 60 * 1000);
    for await (const o of storage.list()) {
      if (o.key !== 'FIXITFY-youngYoungYo.png') {
        utimesSync(join(t.config.storageDir, o.key.slice(8, 10), o.key), old, old);
      }
    }
    utimesSync(join(t.config.dataDir, 'tmp', 'upload-crashed'), old, old);

    const result = await t.app.get(JanitorService).sweep(hourFromNow - 60 * 60 * 1000);
    expect(result).toEqual({ orphans: ['FIXITFY-orphanOrphan1.png'], temps: 1 });
    const left: string[] = [];
    for await (const o of storage.list()) {
      left.push(o.key);
    }
    expect(left.sort()).toEqual([live.body.filename, 'FIXITFY-youngYoungYo.png'].sort());
    expect(readdirSync(join(t.config.dataDir, 'tmp'))).toEqual([]);
  });
});

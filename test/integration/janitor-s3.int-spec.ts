import { PutObjectCommand } from '@aws-sdk/client-s3';
import { VariantsService } from '../../src/modules/delivery/variants.service';
import { S3StorageDriver } from '../../src/modules/storage/s3.driver';
import { StorageDriver } from '../../src/modules/storage/storage-driver';
import { JanitorService } from '../../src/modules/uploads/janitor.service';
import { png } from '../fixtures/sample-images';
import { storedFiles } from '../setup/db';
import { bearer, makeKey } from '../setup/factories';
import { TestS3 } from '../setup/s3-server';
import { createTestApp, type TestApp } from '../setup/test-app';

const HOUR = 3_600_000;

/** The janitor on an S3 bucket: paged listing (continuation tokens), orphans and orphan variants removed. */
describe('JanitorService on S3', () => {
  let s3: TestS3;
  let t: TestApp;
  let driver: S3StorageDriver;

  beforeAll(async () => {
    s3 = await TestS3.start();
    const prefix = TestS3.freshPrefix();
    const env = { ...s3.env({ prefix }), APP_ROLE: 'api', JANITOR_BATCH_SIZE: '7' };
    // The app's own driver, with pages of 10 keys so the sweep crosses many ListObjectsV2 pages.
    driver = new S3StorageDriver(s3.config({ prefix }), { listPageSize: 10 });
    t = await createTestApp({ env, overrides: [{ provide: StorageDriver, useValue: driver }] });
  });
  afterAll(async () => {
    await t?.close();
    driver.onModuleDestroy();
    await s3.close();
  });

  it('should page through the bucket and remove orphans and orphan variants, keeping live ones and foreign keys', async () => {
    const { token } = await makeKey(t);
    const live: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await t.http
        .post('/api/v1/upload')
        .set(...bearer(token))
        .attach('file', await png(200 + i), 'a.png')
        .expect(200);
      live.push(res.body.filename);
    }
    await t.http.get(`/images/${live[0]}?w=64`).expect(200);
    await t.app.get(VariantsService).idle(); // stored after the answer
    const liveVariant = `${live[0]}__w64_h0_inside_png`;
    const bytes = await png(1);
    const orphans = Array.from({ length: 40 }, (_, i) => `FIXITFY-orph${String(i).padStart(8, '0')}.png`);
    orphans.push(`${orphans[0]}__w64_h0_inside_webp`, `${orphans[1]}__w128_h0_inside_png`);
    for (const key of orphans) {
      await driver.put(key, bytes);
    }
    // Someone else's objects under the same prefix: not names the service writes, never touched, however old. Flat
    // names too (the driver's own key rules allow them), and names that only start like ours.
    const foreignKeys = [
      'backups/readme.txt',
      'index.html',
      'robots.txt',
      'backup-2026-11.tar.gz',
      'FIXITFY-short.png',
      `${orphans[2]}.bak`,
      `${orphans[2]}__thumbnail`,
      `${orphans[2]}__w64_h0_inside_webp.old`,
    ].map((key) => `${t.config.s3.prefix}${key}`);
    for (const foreign of foreignKeys) {
      await driver.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: foreign, Body: 'keep me' }));
    }

    // Two hours from now, every object is past the hour of grace.
    const result = await t.app.get(JanitorService).sweep(Date.now() + 2 * HOUR);

    expect(result.orphans).toBe(42);
    expect(result.batches).toBe(Math.ceil((3 + 1 + 42) / 7));
    const flatForeign = foreignKeys
      .map((k) => k.slice(t.config.s3.prefix.length))
      .filter((k) => !k.includes('/'));
    expect(storedFiles(t).sort()).toEqual([...live, liveVariant, ...flatForeign].sort());
    for (const foreign of foreignKeys) {
      expect((await fetch(`${s3.endpoint}/${s3.bucket}/${foreign}`)).status).toBe(200);
    }
    for (const filename of live) {
      await t.http.get(`/images/${filename}`).expect(200);
    }
    await t.http.get(`/images/${live[0]}?w=64`).expect(200);
  });
});

/**
 * The core e2e scenarios once more with STORAGE_DRIVER=s3, on a real S3-compatible server (s3rver, in this
 * process, over HTTP): uploads, listings, direct links (ETag, 304, 206, HEAD, nosniff, CSP), delete links and
 * variants. The same spec code as on the local driver, not a copy: `runOnS3()` registers a root-level hook, which
 * runs before every hook of the imported files' `describe`s and switches each of their test apps to S3 (each on its
 * own prefix).
 */
import { S3StorageDriver } from '../../src/modules/storage/s3.driver';
import { StorageDriver } from '../../src/modules/storage/storage-driver';
import { png } from '../fixtures/sample-images';
import { storedFiles } from '../setup/db';
import { makeKey } from '../setup/factories';
import { runOnS3 } from '../setup/s3-server';
import { createTestApp } from '../setup/test-app';
import './upload.e2e-spec';
import './uploads.e2e-spec';
import './variants.e2e-spec';
import './variants-fast-path.e2e-spec';

runOnS3();

describe('The scenarios above run on S3 (e2e)', () => {
  it('should give every test app of this file the S3 driver, its objects in the S3 server', async () => {
    const t = await createTestApp();
    try {
      expect(t.config.storageDriver).toBe('s3');
      expect(t.app.get(StorageDriver)).toBeInstanceOf(S3StorageDriver);
      const key = await makeKey(t);
      const res = await t.http
        .post('/api/v1/upload')
        .set('Authorization', `Bearer ${key.token}`)
        .attach('file', await png(1), 'a.png');
      expect(res.status).toBe(200);
      expect(storedFiles(t)).toEqual([res.body.filename]);
    } finally {
      await t.close();
    }
  });
});

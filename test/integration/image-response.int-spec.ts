import express from 'express';
import { mkdtempSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import type { AppConfig } from '../../src/config/app-config';
import { type ImageRepresentation, sendImage } from '../../src/modules/delivery/image-response';
import { LocalStorageDriver } from '../../src/modules/storage/local.driver';
import type { StorageDriver } from '../../src/modules/storage/storage-driver';

/**
 * sendImage against a file deleted between the driver's check and the stream's open (a delete, the janitor, or a
 * store shared by several instances): real files on a real disk, deleted at that exact moment. A HEAD and a 304 close
 * the stream before it opens; the open fails after the answer went out, and must not be an uncaught 'error' (which
 * ends the process). The full suite met this race once, under load.
 */
describe('sendImage when the file goes between the check and the open', () => {
  const key = 'FIXITFY-racyracyracy.png';
  let root: string;
  let driver: LocalStorageDriver;
  let app: express.Express;

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'fxf-image-response-'));
    driver = new LocalStorageDriver({ storageDir: root } as AppConfig);
    // The real driver, and the file deleted right after get() checked it and made its stream (which opens its file
    // on a later tick).
    const racing = Object.create(driver) as StorageDriver;
    racing.get = async (k, range) => {
      const stream = await driver.get(k, range);
      unlinkSync(driver.localFile(k).path);
      return stream;
    };
    const image: ImageRepresentation = {
      key,
      etag: '"racy"',
      size: 10,
      mime: 'image/png',
      lastModified: new Date(0),
      lastModifiedText: new Date(0).toUTCString(),
      expiresAt: null,
    };
    app = express();
    app.all('/image', (req, res, next) => {
      sendImage(racing, image, req, res, req.method !== 'HEAD').catch(next);
    });
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const failedOpen = async (): Promise<void> => {
    // The stream's open runs and fails on the threadpool after the answer.
    await new Promise((r) => setTimeout(r, 50));
  };

  it.each([
    ['a HEAD', () => request(app).head('/image'), 200],
    ['a 304', () => request(app).get('/image').set('If-None-Match', '"racy"'), 304],
  ])('should answer %s, and its open failing later is no uncaught error', async (_what, send, status) => {
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown) => uncaught.push(err);
    process.on('uncaughtException', onUncaught);
    try {
      for (let i = 0; i < 5; i++) {
        await driver.put(key, Buffer.alloc(10, 1));
        expect((await send()).status).toBe(status);
        await failedOpen();
      }
      expect(uncaught).toEqual([]);
    } finally {
      process.off('uncaughtException', onUncaught);
    }
  });
});

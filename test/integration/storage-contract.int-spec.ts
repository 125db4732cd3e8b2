import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { type AppConfig } from '../../src/config/app-config';
import { LocalStorageDriver } from '../../src/modules/storage/local.driver';
import { S3StorageDriver } from '../../src/modules/storage/s3.driver';
import type { StorageDriver } from '../../src/modules/storage/storage-driver';
import { S3FaultProxy, s3StoredKeys, TestS3 } from '../setup/s3-server';
import { waitFor } from '../setup/wait';

/** One backend under test: a working driver, one whose store fails, and a look behind the driver. */
interface Backend {
  driver: StorageDriver;
  /** A driver on the same store that cannot write (a broken disk / a store answering 500). */
  broken: StorageDriver;
  /** The keys the store really holds (not through the driver under test). */
  storedKeys: () => string[];
  close: () => Promise<void>;
}

/** get()'s stream read whole (read() itself is a method under test, so not used for this). */
const read = async (stream: Readable | null): Promise<Buffer | null> => stream && buffer(stream);

async function listed(driver: StorageDriver): Promise<string[]> {
  const keys: string[] = [];
  for await (const object of driver.list()) {
    keys.push(object.key);
  }
  return keys.sort();
}

const name = (ext = 'png') => `FIXITFY-${randomBytes(6).toString('hex')}.${ext}`;

function localBackend(): Promise<Backend> {
  const dir = mkdtempSync(join(tmpdir(), 'fxf-storage-'));
  const config = { storageDir: join(dir, 'images') } as AppConfig;
  // A regular file where the storage directory should be: every write fails (ENOTDIR), like a broken disk.
  writeFileSync(join(dir, 'not-a-dir'), '');
  const brokenConfig = { storageDir: join(dir, 'not-a-dir', 'images') } as AppConfig;
  const driver = new LocalStorageDriver(config);
  return Promise.resolve({
    driver,
    broken: new LocalStorageDriver(brokenConfig),
    storedKeys: () => [],
    close: () => Promise.resolve(rmSync(dir, { recursive: true, force: true })),
  });
}

let s3: TestS3;
let proxy: S3FaultProxy;

function s3Backend(): Promise<Backend> {
  const prefix = TestS3.freshPrefix();
  // Small pages, so listing crosses ListObjectsV2 continuation tokens.
  const driver = new S3StorageDriver(s3.config({ prefix }), { listPageSize: 2 });
  const broken = new S3StorageDriver(s3.config({ prefix, endpoint: proxy.endpoint, maxAttempts: 2 }));
  return Promise.resolve({
    driver,
    broken,
    storedKeys: () => s3StoredKeys(s3.endpoint, s3.bucket, prefix),
    close: () => {
      driver.onModuleDestroy();
      broken.onModuleDestroy();
      return Promise.resolve();
    },
  });
}

beforeAll(async () => {
  s3 = await TestS3.start();
  proxy = await S3FaultProxy.start(s3);
  // The "broken" S3 driver goes through the proxy, which answers every request with 500.
  proxy.rule = () => 'fail';
});
afterAll(async () => {
  await proxy.close();
  await s3.close();
});

/** The StorageDriver contract, one suite for every driver. */
describe.each([
  ['local', localBackend],
  ['s3', s3Backend],
])('StorageDriver contract: %s', (kind, make) => {
  let b: Backend;
  beforeEach(async () => {
    b = await make();
  });
  afterEach(() => b.close());

  it('should give back exactly what was put, and the whole new object after an overwrite', async () => {
    const key = name();
    const first = randomBytes(300_000);
    const second = randomBytes(1000);
    await b.driver.put(key, first);
    expect((await read(await b.driver.get(key)))?.equals(first)).toBe(true);
    await b.driver.put(key, second);
    expect((await read(await b.driver.get(key)))?.equals(second)).toBe(true);
  });

  it('should serve an inclusive byte range, the first byte and the last', async () => {
    const key = name();
    const data = randomBytes(10_000);
    await b.driver.put(key, data);
    expect(
      (await read(await b.driver.get(key, { start: 100, end: 1099 })))?.equals(data.subarray(100, 1100)),
    ).toBe(true);
    expect((await read(await b.driver.get(key, { start: 0, end: 0 })))?.equals(data.subarray(0, 1))).toBe(
      true,
    );
    expect(
      (await read(await b.driver.get(key, { start: 9999, end: 9999 })))?.equals(data.subarray(9999)),
    ).toBe(true);
  });

  it('should read a whole object into memory, and answer null for a missing one', async () => {
    const key = name();
    const data = randomBytes(200_000);
    await b.driver.put(key, data);
    expect((await b.driver.read(key))?.equals(data)).toBe(true);
    expect(await b.driver.read(name())).toBeNull();
  });

  it('should answer null for a missing object, with or without a range', async () => {
    expect(await b.driver.get(name())).toBeNull();
    expect(await b.driver.get(name(), { start: 0, end: 10 })).toBeNull();
  });

  it('should delete an object, and delete a missing one without complaint', async () => {
    const key = name();
    await b.driver.put(key, Buffer.from('bytes'));
    await b.driver.delete(key);
    expect(await b.driver.get(key)).toBeNull();
    await expect(b.driver.delete(key)).resolves.toBeUndefined();
    await expect(b.driver.delete(name())).resolves.toBeUndefined();
  });

  it('should list every original and variant (across pages) with its write time', async () => {
    const before = Date.now() - 2000;
    const originals = [name(), name('jpg'), name('gif')];
    const variants = [`${originals[0]}__w320_h0_inside_webp`, `${originals[1]}__w64_h64_cover_avif`];
    for (const key of [...originals, ...variants]) {
      await b.driver.put(key, randomBytes(64));
    }
    const objects: { key: string; modifiedAt: Date }[] = [];
    for await (const object of b.driver.list()) {
      objects.push(object);
    }
    expect(objects.map((o) => o.key).sort()).toEqual([...originals, ...variants].sort());
    for (const o of objects) {
      expect(o.modifiedAt.getTime()).toBeGreaterThanOrEqual(before);
      expect(o.modifiedAt.getTime()).toBeLessThanOrEqual(Date.now() + 2000);
    }
    await b.driver.delete(originals[2]);
    expect(await listed(b.driver)).toEqual([...originals.slice(0, 2), ...variants].sort());
  });

  it('should refuse keys outside the key rules with storage_failed, touching nothing', async () => {
    for (const bad of ['../etc/passwd', '.hidden', 'a/b.png', '', 'x'.repeat(129)]) {
      await expect(b.driver.put(bad, Buffer.from('x'))).rejects.toMatchObject({ code: 'storage_failed' });
    }
    expect(await listed(b.driver)).toEqual([]);
  });

  it('should fail a write to a broken store with storage_failed and leave no object behind', async () => {
    const key = name();
    await expect(b.broken.put(key, randomBytes(5000))).rejects.toMatchObject({
      code: 'storage_failed',
      status: 500,
    });
    expect(await b.driver.get(key)).toBeNull();
    expect(await listed(b.driver)).toEqual([]);
    expect(b.storedKeys()).toEqual([]);
  });

  it('should report a working store healthy and a broken one not', async () => {
    expect(await b.driver.healthy()).toBe(true);
    expect(await b.broken.healthy()).toBe(false);
  });

  it('should leave no temp object visible after writes, and remove none that are not temps', async () => {
    const key = name();
    await b.driver.put(key, randomBytes(1000));
    expect(await b.driver.removeTempsBefore(new Date(Date.now() + 60_000))).toBe(0);
    expect(await listed(b.driver)).toEqual([key]);
    if (kind === 's3') {
      expect(b.storedKeys()).toEqual([key]);
    }
  });
});

describe('local driver: the shard directories', () => {
  it('should write again after its directories were removed behind its back (they are made once, then remembered)', async () => {
    const b = await localBackend();
    try {
      // Two keys in one shard (the 9th and 10th characters): the second write reuses the directory the first made.
      const [first, second, third] = ['a', 'b', 'c'].map(
        (c) => `FIXITFY-zz${c}${randomBytes(4).toString('hex')}.png`,
      );
      await b.driver.put(first, Buffer.from('one'));
      await b.driver.put(second, Buffer.from('two'));
      expect((await b.driver.read(second))?.toString()).toBe('two');
      rmSync((b.driver as unknown as { root: string }).root, { recursive: true, force: true });
      await b.driver.put(third, Buffer.from('three'));
      expect((await b.driver.read(third))?.toString()).toBe('three');
      expect(await b.driver.read(first)).toBeNull();
      expect(await listed(b.driver)).toEqual([third]);
    } finally {
      await b.close();
    }
  });
});

/** What only a network store can get wrong. */
describe('S3 driver over the wire', () => {
  afterEach(() => {
    proxy.rule = () => 'fail';
  });

  it('should store the media type, Cache-Control and MD5 with each object (what a CDN or public bucket serves)', async () => {
    const prefix = TestS3.freshPrefix();
    const driver = new S3StorageDriver(s3.config({ prefix }));
    const data = randomBytes(2048);
    const key = name('jpg');
    await driver.put(key, data);
    await driver.put(`${key}__w64_h0_inside_avif`, data);
    const res = await fetch(`${s3.endpoint}/${s3.bucket}/${prefix}${key}`);
    expect(res.headers.get('content-type')).toBe('image/jpeg');
    expect(res.headers.get('cache-control')).toBe('public, max-age=86400');
    expect(Buffer.from(await res.arrayBuffer()).equals(data)).toBe(true);
    const variant = await fetch(`${s3.endpoint}/${s3.bucket}/${prefix}${key}__w64_h0_inside_avif`, {
      method: 'HEAD',
    });
    expect(variant.headers.get('content-type')).toBe('image/avif');
    driver.onModuleDestroy();
  });

  it('should send no aws-chunked body and no CRC trailer (stores such as R2 and Garage refuse them)', async () => {
    const prefix = TestS3.freshPrefix();
    const seen: Record<string, string | string[] | undefined>[] = [];
    proxy.rule = (req) => {
      seen.push(req.headers);
      return 'pass';
    };
    const driver = new S3StorageDriver(s3.config({ prefix, endpoint: proxy.endpoint }));
    await driver.put(name(), randomBytes(4096));
    driver.onModuleDestroy();
    const put = seen[0];
    expect(put['content-md5']).toMatch(/^[A-Za-z0-9+/]{22}==$/);
    expect(put['content-encoding']).toBeUndefined();
    expect(put['x-amz-decoded-content-length']).toBeUndefined();
    expect(put['x-amz-trailer']).toBeUndefined();
    expect(Object.keys(put).filter((h) => h.startsWith('x-amz-checksum-'))).toEqual([]);
  });

  it('should refuse a write the store kept differently from what was sent (bytes changed in transit), leaving nothing', async () => {
    const prefix = TestS3.freshPrefix();
    const driver = new S3StorageDriver(s3.config({ prefix, endpoint: proxy.endpoint, maxAttempts: 1 }));
    proxy.rule = () => 'pass';
    proxy.corruptNextPut = true;
    const key = name();
    await expect(driver.put(key, randomBytes(4096))).rejects.toMatchObject({ code: 'storage_failed' });
    // The driver takes the bad object back (in the background: the write already failed).
    await waitFor(
      'the corrupt object to be removed',
      () => s3StoredKeys(s3.endpoint, s3.bucket, prefix).length === 0,
    );
    driver.onModuleDestroy();
  });

  it('should answer a read from a failing store with unavailable (503), not a missing object', async () => {
    const prefix = TestS3.freshPrefix();
    const good = new S3StorageDriver(s3.config({ prefix }));
    const key = name();
    await good.put(key, randomBytes(100));
    const viaProxy = new S3StorageDriver(
      s3.config({ prefix, endpoint: proxy.endpoint, maxAttempts: 1, timeoutMs: 500 }),
    );
    proxy.on(['GET'], 'fail');
    await expect(viaProxy.get(key)).rejects.toMatchObject({ code: 'unavailable', status: 503 });
    proxy.on(['GET'], 'hang');
    await expect(viaProxy.get(key)).rejects.toMatchObject({ code: 'unavailable', status: 503 });
    proxy.restore();
    expect((await read(await viaProxy.get(key)))?.length).toBe(100);
    good.onModuleDestroy();
    viaProxy.onModuleDestroy();
  });

  it('should give up a write to a store that never answers within S3_TIMEOUT_MS, and list through a hung store with an error', async () => {
    const prefix = TestS3.freshPrefix();
    const driver = new S3StorageDriver(s3.config({ prefix, endpoint: proxy.endpoint, timeoutMs: 400 }));
    proxy.on(['PUT', 'GET', 'HEAD'], 'hang');
    await expect(driver.put(name(), randomBytes(100))).rejects.toMatchObject({ code: 'storage_failed' });
    await expect(listed(driver)).rejects.toMatchObject({ code: 'unavailable' });
    expect(await driver.healthy()).toBe(false);
    driver.onModuleDestroy();
  });
});

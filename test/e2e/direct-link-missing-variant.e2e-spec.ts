import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import sharp from 'sharp';
import { DeliveryCache } from '../../src/modules/delivery/delivery-cache';
import { VariantsService } from '../../src/modules/delivery/variants.service';
import { STAT_TRUST_MS } from '../../src/modules/storage/local.driver';
import { StorageDriver } from '../../src/modules/storage/storage-driver';
import { variantStorageKey } from '../../src/modules/storage/variant-keys';
import { png } from '../fixtures/sample-images';
import { sql } from '../setup/db';
import { bearer, makeKey } from '../setup/factories';
import { TestS3 } from '../setup/s3-server';
import { createTestApp, type TestApp } from '../setup/test-app';
import { waitFor } from '../setup/wait';

const KEY = 'w64_h0_inside_webp';
const QUERY = 'w=64&format=webp';
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

let seed = 5300;

/**
 * README "Variants": a store that fails "costs a render on a later request, never a wrong answer". A variant whose
 * stored file went missing behind the service's back (its `upload_variants` row still there) is made again —
 * through the normal render path, its lease and queue — and answered, instead of 404 for as long as the row lives.
 * The same controller code serves every driver: it is run here on local files, behind nginx's X-Accel-Redirect
 * and on S3 (s3rver).
 */
describe.each([
  ['local storage', {}],
  ['local storage with ACCEL_REDIRECT_PREFIX', { ACCEL_REDIRECT_PREFIX: '/_fxf_storage/' }],
  ['S3', 's3'],
] as const)('A stored variant whose file is gone, on %s (e2e)', (_name, env) => {
  let s3: TestS3 | undefined;
  let t: TestApp;
  let token: string;
  let variants: VariantsService;
  let storage: StorageDriver;

  beforeAll(async () => {
    if (env === 's3') {
      s3 = await TestS3.start();
    }
    t = await createTestApp({ env: s3 ? s3.env() : env });
    ({ token } = await makeKey(t));
    variants = t.app.get(VariantsService);
    storage = t.app.get(StorageDriver);
    await waitFor('the delivery cache', () => t.app.get(DeliveryCache).enabled);
  });
  afterAll(async () => {
    await t.close();
    await s3?.close();
  });

  const accel = env !== 's3' && 'ACCEL_REDIRECT_PREFIX' in env;

  /** The bytes a GET of the variant stands for (from storage when nginx would send them). */
  const bytesOf = (filename: string, res: { body: unknown; headers: Record<string, string> }): Buffer => {
    if (!accel) {
      return res.body as Buffer;
    }
    expect(res.headers['x-accel-redirect']).toMatch(/^\/_fxf_storage\//);
    return readFileSync(storage.localFile(variantStorageKey(filename, KEY))!.path);
  };

  /** Removes the variant's stored object the way an operator or a broken disk would: not through the service. */
  async function removeBehindTheService(filename: string): Promise<void> {
    const key = variantStorageKey(filename, KEY);
    const file = storage.localFile(key);
    if (file) {
      rmSync(file.path);
      // The driver trusts a stat this long (README "Direct links"): past it the fast path sees the file is gone.
      await new Promise((r) => setTimeout(r, STAT_TRUST_MS + 100));
    } else {
      // A plain DeleteObject on the bucket: the driver keeps nothing of its own to forget.
      await storage.delete(key);
      // The fast path holds a small S3 object's bytes for DELIVERY_CACHE_SECONDS: as if they had run out.
      t.app.get(DeliveryCache).invalidate(`upload:${filename}`);
    }
  }

  const variantRows = (filename: string): Promise<{ sha256: string }[]> =>
    sql(
      t,
      `select v.sha256 from upload_variants v join uploads u on u.id = v.upload_id
        where u.filename = $1 and v.key = $2`,
      [filename, KEY],
    );

  async function storedVariant(): Promise<{ filename: string; body: Buffer; etag: string }> {
    const up = await t.http
      .post('/api/v1/upload')
      .set(...bearer(token))
      .attach('file', await png(++seed, 200, 150), 'a.png')
      .expect(200);
    const filename = up.body.filename as string;
    const first = await t.http.get(`/images/${filename}?${QUERY}`).expect(200);
    await variants.idle();
    // Read back from storage (and held by the delivery cache) before it goes.
    const warm = await t.http.get(`/images/${filename}?${QUERY}`).expect(200);
    const body = bytesOf(filename, warm);
    expect(warm.headers.etag).toBe(first.headers.etag);
    expect(await variantRows(filename)).toEqual([{ sha256: sha256(body) }]);
    return { filename, body, etag: warm.headers.etag };
  }

  it('should make it again and answer it on the next GET, then serve it stored as before', async () => {
    const { filename, body, etag } = await storedVariant();
    await removeBehindTheService(filename);
    const before = variants.renders;

    const res = await t.http.get(`/images/${filename}?${QUERY}`);
    expect({ status: res.status, code: (res.body as { code?: string }).code }).toEqual({
      status: 200,
      code: undefined,
    });
    expect(res.headers['content-type']).toBe('image/webp');
    expect(variants.renders - before).toBe(1);
    await variants.idle();
    const again = bytesOf(filename, res);
    expect(res.headers.etag).toBe(`"${sha256(again)}"`);
    expect((await sharp(again).metadata()).width).toBe(64);
    // Rendering is deterministic here: the same bytes and validator as before it went missing.
    expect(res.headers.etag).toBe(etag);
    expect(again.equals(body)).toBe(true);

    // Stored again, file and row, and served from storage without another render.
    expect(await variantRows(filename)).toEqual([{ sha256: sha256(again) }]);
    expect((await storage.read(variantStorageKey(filename, KEY)))?.equals(again)).toBe(true);
    const next = await t.http.get(`/images/${filename}?${QUERY}`).expect(200);
    expect(bytesOf(filename, next).equals(again)).toBe(true);
    expect(variants.renders - before).toBe(1);
  });

  it('should answer HEAD and 304 for it too, never 404, and render it once for concurrent requests', async () => {
    const { filename, etag } = await storedVariant();
    await removeBehindTheService(filename);
    const before = variants.renders;
    const answers = await Promise.all([
      t.http.head(`/images/${filename}?${QUERY}`),
      t.http.get(`/images/${filename}?${QUERY}`).set('If-None-Match', etag),
      t.http.get(`/images/${filename}?${QUERY}`),
      t.http.get(`/images/${filename}?${QUERY}`),
    ]);
    expect(answers.map((a) => a.status)).toEqual([200, 304, 200, 200]);
    expect(answers.every((a) => a.headers.etag === etag)).toBe(true);
    expect(variants.renders - before).toBe(1);
    await variants.idle();
    expect(await variantRows(filename)).toHaveLength(1);
  });

  it('should still answer 404 when the original is gone as well (nothing to make it from)', async () => {
    const { filename } = await storedVariant();
    const original = storage.localFile(filename);
    if (original) {
      rmSync(original.path);
    } else {
      await storage.delete(filename);
    }
    await removeBehindTheService(filename);
    const res = await t.http.get(`/images/${filename}?${QUERY}`);
    expect({ status: res.status, code: (res.body as { code?: string }).code }).toEqual({
      status: 404,
      code: 'not_found',
    });
    if (original) {
      expect(existsSync(storage.localFile(variantStorageKey(filename, KEY))!.path)).toBe(false);
    }
  });
});

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import { Client } from 'pg';
import sharp from 'sharp';
import { VariantsService } from '../../src/modules/delivery/variants.service';
import { StorageDriver } from '../../src/modules/storage/storage-driver';
import { variantStorageKey } from '../../src/modules/storage/variant-keys';
import { sql } from '../setup/db';
import { bearer, makeKey } from '../setup/factories';
import { createTestApp, type TestApp } from '../setup/test-app';
import { waitFor } from '../setup/wait';

const KEY = 'w64_h0_inside_webp';
const QUERY = 'w=64&format=webp';

/**
 * Issue 12: the instance that renders a variant answers from the rendered bytes at once and stores them after (file,
 * then row, then the lease goes). What that must keep true, on local storage with real files and real row locks:
 * the stored bytes are the bytes answered; a delete that lands while the variant is being stored leaves no file and
 * no row; a variant that cannot be stored is still answered right, and made again by the next request.
 */
describe('Variants stored after the answer (e2e)', () => {
  let t: TestApp;
  let token: string;
  let service: VariantsService;
  let seed = 0;

  beforeAll(async () => {
    t = await createTestApp();
    ({ token } = await makeKey(t));
    service = t.app.get(VariantsService);
  });
  afterAll(() => t.close());

  async function upload(): Promise<string> {
    seed++;
    const raw = Buffer.alloc(160 * 120 * 3);
    for (let i = 0; i < raw.length; i++) {
      raw[i] = (i * 37 + seed * 11) & 0xff;
    }
    const png = await sharp(raw, { raw: { width: 160, height: 120, channels: 3 } })
      .png()
      .toBuffer();
    const res = await t.http
      .post('/api/v1/upload')
      .set(...bearer(token))
      .attach('file', png, 'a.png')
      .expect(200);
    return res.body.filename as string;
  }

  const variantPath = (filename: string): string =>
    t.app.get(StorageDriver).localFile(variantStorageKey(filename, KEY))!.path;
  const variantRows = (filename: string): Promise<{ size: number; sha256: string }[]> =>
    sql(
      t,
      `select v.size, v.sha256 from upload_variants v join uploads u on u.id = v.upload_id
        where u.filename = $1 and v.key = $2`,
      [filename, KEY],
    );

  it('should store exactly the bytes it answered first, and serve them from storage next', async () => {
    const filename = await upload();
    const before = service.renders;
    const first = await t.http.get(`/images/${filename}?${QUERY}`).expect(200);
    const body = first.body as Buffer;
    expect((await sharp(body).metadata()).width).toBe(64);
    const sha = createHash('sha256').update(body).digest('hex');
    expect(first.headers.etag).toBe(`"${sha}"`);

    await service.idle();
    expect(readFileSync(variantPath(filename)).equals(body)).toBe(true);
    expect(await variantRows(filename)).toEqual([{ size: body.length, sha256: sha }]);

    const again = await t.http.get(`/images/${filename}?${QUERY}`).expect(200);
    expect((again.body as Buffer).equals(body)).toBe(true);
    expect(again.headers.etag).toBe(first.headers.etag);
    expect(service.renders - before).toBe(1);
  });

  it('should leave no file and no row when the upload is deleted while its variant is being stored', async () => {
    const filename = await upload();
    const db = new Client({ connectionString: t.databaseUrl });
    await db.connect();
    try {
      // A delete in progress: the upload's row is updated and locked, not yet committed.
      await db.query('begin');
      await db.query('update uploads set deleted_at = now() where filename = $1', [filename]);
      // Still live for the request (the delete has not committed): answered from the rendered bytes.
      const res = await t.http.get(`/images/${filename}?${QUERY}`).expect(200);
      expect((await sharp(res.body as Buffer).metadata()).width).toBe(64);
      // The file is written; its row waits for the upload's row lock.
      await waitFor('the variant file', () => existsSync(variantPath(filename)));
      await db.query('commit');
    } finally {
      await db.end();
    }
    await service.idle();
    expect(existsSync(variantPath(filename))).toBe(false);
    expect(await variantRows(filename)).toEqual([]);
    // (The 404 that follows a delete comes from the API's delete, which also tells every instance's cache: this
    // test commits the row change by hand, so it checks only what the store left.)
  });

  it('should answer right when the variant cannot be stored, and make it again on the next request', async () => {
    const filename = await upload();
    // A directory where the file must go: the put's rename fails (EISDIR), as a full or broken disk would fail it.
    mkdirSync(variantPath(filename), { recursive: true });
    const before = service.renders;
    const first = await t.http.get(`/images/${filename}?${QUERY}`).expect(200);
    expect((await sharp(first.body as Buffer).metadata()).width).toBe(64);
    await service.idle();
    expect(await variantRows(filename)).toEqual([]);

    rmdirSync(variantPath(filename));
    const second = await t.http.get(`/images/${filename}?${QUERY}`).expect(200);
    expect(service.renders - before).toBe(2);
    expect(second.headers.etag).toBe(first.headers.etag);
    await service.idle();
    expect(readFileSync(variantPath(filename)).equals(second.body as Buffer)).toBe(true);
    expect(await variantRows(filename)).toHaveLength(1);
  });
});

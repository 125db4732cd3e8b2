import { createHash } from 'node:crypto';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp, { type Sharp } from 'sharp';
import { corruptJpeg, jpeg, noisyPng, png, pngHeader, SVG } from '../fixtures/sample-images';
import { withDamagedPixelData } from '../fixtures/images/image-fixtures';
import { bearer, login, makeKey, makeUser } from '../setup/factories';
import { sql, storedFiles, tempFiles } from '../setup/db';
import { listen, multipartFile, openUpload, until } from '../setup/raw-http';
import { BODY_MEMORY_MAX_BYTES, ImagePool } from '../../src/modules/uploads/image-pool.service';
import { UploadRepository } from '../../src/modules/uploads/upload.repository';
import { createTestApp, type TestApp } from '../setup/test-app';

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const MiB = 1024 * 1024;

describe('POST /api/v1/upload (e2e)', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());

  it('should store a PNG and answer exactly the contract body', async () => {
    const { token } = await makeKey(t);
    const bytes = await png(1, 40, 30);
    const res = await t.http
      .post('/api/v1/upload')
      .set(...bearer(token))
      .attach('file', bytes, 'a.png')
      .expect(200);
    expect(Object.keys(res.body).sort()).toEqual(
      [
        'ok',
        'filename',
        'url',
        'thumbnail_url',
        'delete_url',
        'size',
        'mime',
        'width',
        'height',
        'hash_sha256',
        // Additive (API.md Part 3, expiring uploads): null when it never expires.
        'expires_at',
      ].sort(),
    );
    expect(res.body).toMatchObject({
      ok: true,
      mime: 'image/png',
      width: 40,
      height: 30,
      hash_sha256: sha256(bytes),
    });
    expect(res.body.filename).toMatch(/^FIXITFY-[A-Za-z0-9]{12}\.png$/);
    expect(res.body.url).toBe(`http://upload.test/images/${res.body.filename}`);
    expect(res.body.thumbnail_url).toBe(`${res.body.url}?w=320&format=auto`);
    expect(res.body.delete_url).toMatch(/^http:\/\/upload\.test\/api\/delete\/[0-9a-f]{64}$/);
    const served = await t.http.get(`/images/${res.body.filename}`).expect(200);
    expect(Number(served.headers['content-length'])).toBe(res.body.size);
    expect(served.headers['content-type']).toBe('image/png');
  });

  it('should name a JPEG .jpg and report image/jpeg', async () => {
    const { token } = await makeKey(t);
    const res = await t.http
      .post('/api/v1/upload')
      .set(...bearer(token))
      .attach('file', await jpeg(2), 'x.bin')
      .expect(200);
    expect(res.body.filename).toMatch(/\.jpg$/);
    expect(res.body.mime).toBe('image/jpeg');
  });

  it('should judge by content: a PNG named .jpg sent as image/jpeg is a PNG', async () => {
    const { token } = await makeKey(t);
    const res = await t.http
      .post('/api/v1/upload')
      .set(...bearer(token))
      .attach('file', await png(3), { filename: 'photo.jpg', contentType: 'image/jpeg' })
      .expect(200);
    expect(res.body.mime).toBe('image/png');
    expect(res.body.filename).toMatch(/\.png$/);
  });

  describe('receiving the body', () => {
    const tempDir = (): string => join(t.config.dataDir, 'tmp');

    /** The upload answered 200 with the hash of `bytes`, and its direct link serves them whole. */
    async function expectStoredWhole(res: { status: number; body: Record<string, unknown> }, bytes: Buffer) {
      expect(res.status).toBe(200);
      expect(res.body.hash_sha256).toBe(sha256(bytes));
      const served = await t.http
        .get(`/images/${String(res.body.filename)}`)
        .buffer(true)
        .expect(200);
      expect(sha256(served.body as Buffer)).toBe(sha256(bytes));
    }

    it('should hold an upload of up to 1 MB in memory: no temp file, not even its directory', async () => {
      rmSync(tempDir(), { recursive: true, force: true });
      const { token } = await makeKey(t);
      const bytes = await noisyPng(11, 500, 500);
      expect(bytes.length).toBeGreaterThan(700 * 1024);
      expect(bytes.length).toBeLessThan(MiB);
      const res = await t.http
        .post('/api/v1/upload')
        .set(...bearer(token))
        .attach('file', bytes, 'a.png')
        .expect(200);
      expect(res.body.hash_sha256).toBe(sha256(bytes));
      const served = await t.http.get(`/images/${res.body.filename}`).buffer(true).expect(200);
      expect(sha256(served.body as Buffer)).toBe(sha256(bytes));
      expect(existsSync(tempDir())).toBe(false);
    });

    it('should take a bigger body of no declared length through a temp file (its directory made again), store it whole and remove the temp file', async () => {
      rmSync(tempDir(), { recursive: true, force: true });
      const { token } = await makeKey(t);
      const bytes = await noisyPng(12, 1000, 800);
      expect(bytes.length).toBeGreaterThan(2 * MiB);
      const server = await listen(t.app);
      try {
        const body = multipartFile(bytes);
        const { req, response } = openUpload(server.port, token, body, { declared: false });
        req.write(Buffer.concat([body.head, body.file.subarray(0, 1.5 * MiB)]));
        await until(() => tempFiles(t).length === 1, 'the temp file');
        req.end(Buffer.concat([body.file.subarray(1.5 * MiB), body.tail]));
        await expectStoredWhole(await response, bytes);
        expect(tempFiles(t)).toEqual([]);
      } finally {
        await server.close();
      }
    });

    it('should keep a declared body of up to 8 MB in memory while the byte budget has room to lend: no temp file', async () => {
      rmSync(tempDir(), { recursive: true, force: true });
      const { token } = await makeKey(t);
      const pool = t.app.get(ImagePool);
      const bytes = await noisyPng(20, 1000, 800);
      expect(bytes.length).toBeGreaterThan(2 * MiB);
      const server = await listen(t.app);
      try {
        const body = multipartFile(bytes);
        const { req, response } = openUpload(server.port, token, body);
        req.write(Buffer.concat([body.head, body.file.subarray(0, 1.5 * MiB)]));
        // Half a MB past the reader's own MB, lent by the byte budget while the body streams.
        await until(() => pool.lentToBodies > 0, 'the loan');
        expect(existsSync(tempDir())).toBe(false);
        req.end(Buffer.concat([body.file.subarray(1.5 * MiB), body.tail]));
        await expectStoredWhole(await response, bytes);
        expect(existsSync(tempDir())).toBe(false);
        expect(pool.lentToBodies).toBe(0);
      } finally {
        await server.close();
      }
    });

    it('should send a declared body to its temp file past its first MB when the byte budget has nothing to lend, and store it once there is room', async () => {
      const { token } = await makeKey(t);
      const pool = t.app.get(ImagePool);
      let release!: () => void;
      const burst = pool.holdBytes(pool.budgetBytes, () => new Promise<void>((r) => (release = r)));
      const bytes = await noisyPng(21, 1000, 800);
      const server = await listen(t.app);
      try {
        const body = multipartFile(bytes);
        const { req, response } = openUpload(server.port, token, body);
        req.write(Buffer.concat([body.head, body.file.subarray(0, 1.5 * MiB)]));
        await until(() => tempFiles(t).length === 1, 'the temp file');
        expect(pool.lentToBodies).toBe(0);
        req.end(Buffer.concat([body.file.subarray(1.5 * MiB), body.tail]));
        release();
        await burst;
        const res = await response;
        expect(res.status).toBe(200);
        expect(res.body.hash_sha256).toBe(sha256(bytes));
        expect(tempFiles(t)).toEqual([]);
      } finally {
        release();
        await server.close();
      }
    });

    it('should send a body held in lent memory to its temp file as soon as an upload waits for the byte budget', async () => {
      const { token } = await makeKey(t);
      const pool = t.app.get(ImagePool);
      const bytes = await noisyPng(22, 1000, 800);
      const server = await listen(t.app);
      let release: (() => void) | undefined;
      try {
        const body = multipartFile(bytes);
        const { req, response } = openUpload(server.port, token, body);
        req.write(Buffer.concat([body.head, body.file.subarray(0, 1.5 * MiB)]));
        await until(() => pool.lentToBodies > 0, 'the loan');
        expect(tempFiles(t)).toEqual([]);
        // The whole budget asked for, as a big upload would: it waits for the loan, which is recalled at once.
        const burst = pool.holdBytes(pool.budgetBytes, () => new Promise<void>((r) => (release = r)));
        await until(() => release !== undefined, 'the big upload to start');
        expect(pool.lentToBodies).toBe(0);
        await until(() => tempFiles(t).length === 1, 'the temp file');
        req.end(Buffer.concat([body.file.subarray(1.5 * MiB), body.tail]));
        release!();
        await burst;
        await expectStoredWhole(await response, bytes);
        expect(tempFiles(t)).toEqual([]);
      } finally {
        release?.();
        await server.close();
      }
    });

    it('should answer 500 storage_failed when the temp file cannot be made, and still take a body that fits in memory', async () => {
      const { token, user } = await makeKey(t);
      rmSync(tempDir(), { recursive: true, force: true });
      // A real fault: a file where the temp directory must be, so making it fails (as a full or read-only disk would).
      writeFileSync(tempDir(), 'not a directory');
      try {
        // Declared over BODY_MEMORY_MAX_BYTES: past its first MB it needs the temp file.
        const bytes = await noisyPng(15, 1700, 1700);
        expect(bytes.length).toBeGreaterThan(BODY_MEMORY_MAX_BYTES);
        const big = await t.http
          .post('/api/v1/upload')
          .set(...bearer(token))
          .attach('file', bytes, 'a.png');
        expect({ status: big.status, body: big.body }).toEqual({
          status: 500,
          body: { ok: false, code: 'storage_failed', error: expect.any(String) },
        });
        expect(await sql(t, 'select id from uploads where owner_id = $1', [user.id])).toEqual([]);
        await t.http
          .post('/api/v1/upload')
          .set(...bearer(token))
          .attach('file', await png(16), 'a.png')
          .expect(200);
      } finally {
        rmSync(tempDir(), { force: true });
      }
    });

    it('should put a body held in memory on disk while it waits for the byte budget, and store it once there is room', async () => {
      const { token } = await makeKey(t);
      // The whole budget taken, as a burst of big uploads would take it.
      const pool = t.app.get(ImagePool);
      let release!: () => void;
      const burst = pool.holdBytes(pool.budgetBytes, () => new Promise<void>((r) => (release = r)));
      const bytes = await png(18);
      let waiting: Promise<{ status: number; body: Record<string, unknown> }>;
      try {
        waiting = t.http
          .post('/api/v1/upload')
          .set(...bearer(token))
          .attach('file', bytes, 'a.png')
          .then((res) => ({ status: res.status, body: res.body as Record<string, unknown> }));
        await until(() => tempFiles(t).length === 1, 'the waiting body on disk');
      } finally {
        release();
        await burst;
      }
      const res = await waiting;
      expect(res.status).toBe(200);
      expect(res.body.hash_sha256).toBe(sha256(bytes));
      expect(tempFiles(t)).toEqual([]);
    });

    it('should answer 500 storage_failed when a waiting body cannot be put on disk, and record nothing', async () => {
      const { token, user } = await makeKey(t);
      const pool = t.app.get(ImagePool);
      let release!: () => void;
      const burst = pool.holdBytes(pool.budgetBytes, () => new Promise<void>((r) => (release = r)));
      rmSync(tempDir(), { recursive: true, force: true });
      // A real fault: a file where the temp directory must be.
      writeFileSync(tempDir(), 'not a directory');
      try {
        const res = await t.http
          .post('/api/v1/upload')
          .set(...bearer(token))
          .attach('file', await png(19), 'a.png');
        expect({ status: res.status, body: res.body }).toEqual({
          status: 500,
          body: { ok: false, code: 'storage_failed', error: expect.any(String) },
        });
        expect(await sql(t, 'select id from uploads where owner_id = $1', [user.id])).toEqual([]);
      } finally {
        release();
        await burst;
        rmSync(tempDir(), { force: true });
      }
    });

    it('should leave nothing behind when the client goes away, before the body outgrew memory or after', async () => {
      const { token, user } = await makeKey(t);
      const server = await listen(t.app);
      try {
        for (const sent of [512 * 1024, 1.5 * MiB]) {
          const body = multipartFile(await noisyPng(13, 1000, 800));
          // No declared length: past its first MB the body goes to a temp file.
          const { req, response } = openUpload(server.port, token, body, { declared: false });
          response.catch(() => undefined);
          req.write(Buffer.concat([body.head, body.file.subarray(0, sent)]));
          if (sent > MiB) {
            await until(() => tempFiles(t).length === 1, 'the temp file');
          } else {
            // The server has read what was sent when its socket has seen it all; then the client goes.
            await new Promise((r) => setTimeout(r, 100));
          }
          req.destroy();
          await until(() => tempFiles(t).length === 0, 'the temp file to be removed');
        }
        expect(await sql(t, 'select id from uploads where owner_id = $1', [user.id])).toEqual([]);
        // The key's upload slots were given back: it uploads again at once.
        await t.http
          .post('/api/v1/upload')
          .set(...bearer(token))
          .attach('file', await png(14), 'a.png')
          .expect(200);
      } finally {
        await server.close();
      }
    });
  });

  it('should accept tags, lower-cased, and list them', async () => {
    const { token } = await makeKey(t);
    const res = await t.http
      .post('/api/v1/upload')
      .set(...bearer(token))
      .field('tags', 'Logo, redm')
      .attach('file', await png(4), 'a.png')
      .expect(200);
    const detail = await t.http
      .get(`/api/v1/uploads/${res.body.filename}`)
      .set(...bearer(token))
      .expect(200);
    expect(detail.body.upload.tags).toEqual(['logo', 'redm']);
  });

  it('should add up several tags parts, as one list would (the last alone used to win)', async () => {
    const { token } = await makeKey(t);
    const res = await t.http
      .post('/api/v1/upload')
      .set(...bearer(token))
      .field('tags', 'logo')
      .field('tags', '')
      .field('tags', 'redm,Logo')
      .attach('file', await png(5), 'a.png')
      .expect(200);
    const detail = await t.http
      .get(`/api/v1/uploads/${res.body.filename}`)
      .set(...bearer(token))
      .expect(200);
    expect(detail.body.upload.tags).toEqual(['logo', 'redm']);
  });

  describe('errors', () => {
    let token: string;
    beforeAll(async () => {
      token = (await makeKey(t)).token;
    });

    const expectError = (res: { status: number; body: unknown }, status: number, code: string): void => {
      expect({ status: res.status, body: res.body }).toEqual({
        status,
        body: { ok: false, code, error: expect.any(String) },
      });
    };

    it('should answer 401 without credentials', async () => {
      expectError(
        await t.http.post('/api/v1/upload').attach('file', await png(5), 'a.png'),
        401,
        'unauthorized',
      );
    });

    it('should answer 400 bad_request when the body is not multipart', async () => {
      expectError(
        await t.http
          .post('/api/v1/upload')
          .set(...bearer(token))
          .send({ file: 'x' }),
        400,
        'bad_request',
      );
    });

    it('should answer 400 missing_file without a file part', async () => {
      expectError(
        await t.http
          .post('/api/v1/upload')
          .set(...bearer(token))
          .field('tags', 'a'),
        400,
        'missing_file',
      );
    });

    it('should answer 400 missing_file when the file is under another name', async () => {
      expectError(
        await t.http
          .post('/api/v1/upload')
          .set(...bearer(token))
          .attach('image', await png(6), 'a.png'),
        400,
        'missing_file',
      );
    });

    it('should answer 400 bad_request for two file parts', async () => {
      const res = await t.http
        .post('/api/v1/upload')
        .set(...bearer(token))
        .attach('file', await png(7), 'a.png')
        .attach('file', await png(8), 'b.png');
      expectError(res, 400, 'bad_request');
    });

    it('should answer 400 empty_file for 0 bytes', async () => {
      expectError(
        await t.http
          .post('/api/v1/upload')
          .set(...bearer(token))
          .attach('file', Buffer.alloc(0), 'a.png'),
        400,
        'empty_file',
      );
    });

    it.each(['expires_in', 'expires_at'])('should answer 400 bad_request to two %s parts', async (name) => {
      const value = (hours: number) =>
        name === 'expires_in' ? String(hours * 3600) : new Date(Date.now() + hours * 3600_000).toISOString();
      const res = await t.http
        .post('/api/v1/upload')
        .set(...bearer(token))
        .field(name, value(1))
        .field(name, value(2))
        .attach('file', await png(9), 'a.png');
      expectError(res, 400, 'bad_request');
      expect(res.body.error).toBe(`Send at most one "${name}" part.`);
    });

    it('should answer 400 bad_request for invalid tags', async () => {
      // '\u212A', the Kelvin sign, lower-cases to an ASCII "k" with String#toLowerCase.
      for (const tags of [
        'has space',
        'x'.repeat(33),
        'a,b,c,d,e,f,g,h,i,j,k',
        'ünï',
        '\u212A',
        'ok,\u212Aelvin',
      ]) {
        const res = await t.http
          .post('/api/v1/upload')
          .set(...bearer(token))
          .field('tags', tags)
          .attach('file', await png(9), 'a.png');
        expectError(res, 400, 'bad_request');
      }
    });

    it('should answer 413 too_large for a 21 MB file', async () => {
      const big = Buffer.alloc(21 * 1024 * 1024, 0x41);
      const res = await t.http
        .post('/api/v1/upload')
        .set(...bearer(token))
        .attach('file', big, 'big.png');
      expectError(res, 413, 'too_large');
    });

    it('should answer 415 unsupported_type for text and SVG', async () => {
      expectError(
        await t.http
          .post('/api/v1/upload')
          .set(...bearer(token))
          .attach('file', Buffer.from('hello world'), 'a.png'),
        415,
        'unsupported_type',
      );
      expectError(
        await t.http
          .post('/api/v1/upload')
          .set(...bearer(token))
          .attach('file', SVG, { filename: 'a.svg', contentType: 'image/svg+xml' }),
        415,
        'unsupported_type',
      );
    });

    it('should answer 415 processing_failed for a truncated PNG, a 100000×100000 header and a corrupt JPEG', async () => {
      const whole = await png(10, 200, 200);
      for (const bytes of [
        whole.subarray(0, Math.floor(whole.length / 2)),
        pngHeader(100000, 100000),
        await corruptJpeg(),
      ]) {
        const res = await t.http
          .post('/api/v1/upload')
          .set(...bearer(token))
          .attach('file', bytes, 'a.png');
        expectError(res, 415, 'processing_failed');
      }
    });

    it('should leave no file and no row behind after a rejected upload', async () => {
      const key = await makeKey(t);
      const filesBefore = storedFiles(t).length;
      // The second one's bytes are written while it decodes (a small file stored as uploaded), then removed.
      for (const bytes of [pngHeader(100000, 100000), withDamagedPixelData(await noisyPng(41, 40, 40))]) {
        await t.http
          .post('/api/v1/upload')
          .set(...bearer(key.token))
          .attach('file', bytes, 'a.png')
          .expect(415);
      }
      const rows = await sql(t, 'select id from uploads where owner_id = $1', [key.user.id]);
      expect(rows).toHaveLength(0);
      expect(tempFiles(t)).toEqual([]);
      expect(storedFiles(t)).toHaveLength(filesBefore);
    });

    it('should answer 403 banned for a banned owner', async () => {
      const key = await makeKey(t);
      await sql(t, "update users set banned_at = now(), ban_reason = 'test' where id = $1", [key.user.id]);
      expectError(
        await t.http
          .post('/api/v1/upload')
          .set(...bearer(key.token))
          .attach('file', await png(11), 'a.png'),
        403,
        'banned',
      );
    });

    it('should answer 401 for a revoked key', async () => {
      const key = await makeKey(t);
      await sql(t, 'update api_keys set revoked_at = now() where id = $1', [key.keyId]);
      expectError(
        await t.http
          .post('/api/v1/upload')
          .set(...bearer(key.token))
          .attach('file', await png(12), 'a.png'),
        401,
        'unauthorized',
      );
    });
  });

  describe('dedupe', () => {
    it('should return the existing upload with deduplicated: true and write no second file', async () => {
      const { token } = await makeKey(t);
      const bytes = await png(20);
      const first = await t.http
        .post('/api/v1/upload')
        .set(...bearer(token))
        .attach('file', bytes, 'a.png')
        .expect(200);
      const filesBefore = storedFiles(t).length;
      const second = await t.http
        .post('/api/v1/upload')
        .set(...bearer(token))
        .attach('file', bytes, 'b.png')
        .expect(200);
      expect(second.body).toEqual({ ...first.body, deduplicated: true });
      expect(storedFiles(t).length).toBe(filesBefore);
    });

    it('should give a dedupe hit a delete_url that works, and make a new upload after the delete', async () => {
      const { token } = await makeKey(t);
      const bytes = await png(21);
      const first = await t.http
        .post('/api/v1/upload')
        .set(...bearer(token))
        .attach('file', bytes, 'a.png')
        .expect(200);
      const dup = await t.http
        .post('/api/v1/upload')
        .set(...bearer(token))
        .attach('file', bytes, 'a.png')
        .expect(200);
      const path = new URL(dup.body.delete_url).pathname;
      await t.http.delete(path).expect(200, { ok: true, deleted: first.body.filename });
      const again = await t.http
        .post('/api/v1/upload')
        .set(...bearer(token))
        .attach('file', bytes, 'a.png')
        .expect(200);
      expect(again.body.deduplicated).toBeUndefined();
      expect(again.body.filename).not.toBe(first.body.filename);
    });

    it('should read the header of a body held in memory beside the lookup, and decode it only once the lookup found no hit', async () => {
      const { token } = await makeKey(t);
      // Over the early decode's 64 KB and under the 1 MB held in memory.
      const bytes = await noisyPng(23, 200, 200);
      expect(bytes.length).toBeGreaterThan(64 * 1024);
      expect(bytes.length).toBeLessThan(MiB);
      const repository = t.app.get(UploadRepository);
      const shaState = repository.shaState.bind(repository);
      const answered = jest.fn();
      const lookup = jest.spyOn(repository, 'shaState').mockImplementation(async (...args) => {
        const state = await shaState(...args);
        answered();
        return state;
      });
      // Called through: jest numbers every call of every mock in one order (invocationCallOrder).
      const proto = (sharp as unknown as { prototype: Sharp }).prototype;
      const header = jest.spyOn(proto, 'metadata');
      const decode = jest.spyOn(proto, 'toBuffer');
      const order = (): string[] =>
        [
          ...header.mock.invocationCallOrder.map((n) => [n, 'header'] as const),
          ...answered.mock.invocationCallOrder.map((n) => [n, 'lookup answered'] as const),
          ...decode.mock.invocationCallOrder.map((n) => [n, 'decode'] as const),
        ]
          .sort((a, b) => a[0] - b[0])
          .map(([, what]) => what);
      try {
        const first = await t.http
          .post('/api/v1/upload')
          .set(...bearer(token))
          .attach('file', bytes, 'a.png')
          .expect(200);
        expect(order()).toEqual(['header', 'lookup answered', 'decode']);
        for (const spy of [header, answered, decode]) {
          spy.mockClear();
        }
        const hit = await t.http
          .post('/api/v1/upload')
          .set(...bearer(token))
          .attach('file', bytes, 'b.png')
          .expect(200);
        expect(hit.body).toEqual({ ...first.body, deduplicated: true });
        // The hit read a header for nothing, and decoded nothing.
        expect(order()).toEqual(['header', 'lookup answered']);
      } finally {
        lookup.mockRestore();
        header.mockRestore();
        decode.mockRestore();
      }
    });

    it('should not dedupe across owners', async () => {
      const bytes = await png(22);
      const a = await t.http
        .post('/api/v1/upload')
        .set(...bearer((await makeKey(t)).token))
        .attach('file', bytes, 'a.png');
      const b = await t.http
        .post('/api/v1/upload')
        .set(...bearer((await makeKey(t)).token))
        .attach('file', bytes, 'a.png');
      expect(b.body.deduplicated).toBeUndefined();
      expect(b.body.filename).not.toBe(a.body.filename);
    });
  });

  it('should accept a session upload with the CSRF token, and refuse it without', async () => {
    const user = await makeUser(t);
    const s = await login(t, user);
    const bytes = await png(30);
    const denied = await t.http.post('/api/v1/upload').set('Cookie', s.cookie).attach('file', bytes, 'a.png');
    expect(denied.status).toBe(403);
    expect(denied.body.code).toBe('forbidden');
    const res = await t.http
      .post('/api/v1/upload')
      .set('Cookie', s.cookie)
      .set('X-CSRF-Token', s.csrf)
      .attach('file', bytes, 'a.png')
      .expect(200);
    expect(res.body.hash_sha256).toBe(sha256(bytes));
  });
});

describe('Delete links across a SECRET_KEY rotation (e2e)', () => {
  it('should keep handing out a working delete_url on a dedupe hit after the key was rotated', async () => {
    const before = await createTestApp();
    const after = await createTestApp({
      shareWith: before,
      env: { SECRET_KEY: 'r'.repeat(64), SECRET_KEY_PREVIOUS: before.config.secretKey },
    });
    try {
      const { token } = await makeKey(before);
      const bytes = await png(77);
      const first = await before.http
        .post('/api/v1/upload')
        .set(...bearer(token))
        .attach('file', bytes, 'a.png')
        .expect(200);
      const dup = await after.http
        .post('/api/v1/upload')
        .set(...bearer(token))
        .attach('file', bytes, 'a.png')
        .expect(200);
      expect(dup.body.delete_url).toBe(first.body.delete_url);
      await after.http
        .delete(new URL(dup.body.delete_url).pathname)
        .expect(200, { ok: true, deleted: first.body.filename });
    } finally {
      await after.close();
      await before.close();
    }
  });
});

import { expectError } from '../setup/envelope';
import { StorageDriver } from '../../src/modules/storage/storage-driver';
import { randomUUID } from 'node:crypto';
import { Client } from 'pg';
import { png } from '../fixtures/sample-images';
import { sql } from '../setup/db';
import { bearer, makeKey, type TestKey } from '../setup/factories';
import { createTestApp, type TestApp } from '../setup/test-app';

async function upload(t: TestApp, token: string, seed: number, tags?: string): Promise<Record<string, any>> {
  const req = t.http.post('/api/v1/upload').set(...bearer(token));
  if (tags) {
    void req.field('tags', tags);
  }
  const res = await req.attach('file', await png(seed), 'a.png').expect(200);
  return res.body;
}

describe('Uploads, direct links and delete links (e2e)', () => {
  let t: TestApp;
  let key: TestKey;

  beforeAll(async () => {
    t = await createTestApp();
    key = await makeKey(t);
  });
  afterAll(() => t.close());

  describe('GET /api/v1/uploads', () => {
    it('should page 250 uploads sharing one timestamp without skipping or repeating', async () => {
      const owner = await makeKey(t);
      const c = new Client({ connectionString: t.databaseUrl });
      await c.connect();
      const ts = new Date('2026-05-01T12:00:00.000Z');
      const names: string[] = [];
      for (let i = 0; i < 250; i++) {
        const id = randomUUID();
        const name = `FIXITFY-${String(i).padStart(12, '0')}.png`;
        names.push(name);
        await c.query(
          `insert into uploads (id, owner_id, filename, mime, size, width, height, sha256, stored_sha256, tags,
             delete_token_hash, created_at) values ($1,$2,$3,'image/png',1,1,1,$4,$4,'{}',$5,$6)`,
          [
            id,
            owner.user.id,
            name,
            id.replace(/-/g, ''),
            `h${id}`,
            i < 200 ? ts : new Date(ts.getTime() - 1000 * (i - 199)),
          ],
        );
      }
      await c.end();
      const seen: string[] = [];
      let before: string | null = null;
      let pages = 0;
      do {
        const res: { body: any } = await t.http
          .get('/api/v1/uploads')
          .query({ limit: 30, ...(before ? { before } : {}) })
          .set(...bearer(owner.token))
          .expect(200);
        seen.push(...res.body.uploads.map((u: { filename: string }) => u.filename));
        expect(res.body.count).toBe(res.body.uploads.length);
        before = res.body.next_before;
        pages++;
      } while (before && pages < 20);
      expect(seen).toHaveLength(250);
      expect(new Set(seen).size).toBe(250);
      expect([...seen].sort()).toEqual([...names].sort());
    });

    it('should answer the published list shape, newest first, with a plain ISO next_before', async () => {
      const owner = await makeKey(t);
      await upload(t, owner.token, 100);
      await upload(t, owner.token, 101);
      await upload(t, owner.token, 102);
      const res = await t.http
        .get('/api/v1/uploads?limit=2')
        .set(...bearer(owner.token))
        .expect(200);
      expect(res.body.count).toBe(2);
      expect(res.body.next_before).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z(~[0-9a-f-]{36})?$/);
      expect(Object.keys(res.body.uploads[0]).sort()).toEqual(
        [
          'filename',
          'url',
          'thumbnail_url',
          'mime',
          'size',
          'width',
          'height',
          'tags',
          'created_at',
          'expires_at',
        ].sort(),
      );
      const last = await t.http
        .get('/api/v1/uploads')
        .query({ before: res.body.next_before })
        .set(...bearer(owner.token));
      expect(last.body.count).toBe(1);
      expect(last.body.next_before).toBeNull();
    });

    it('should filter by tag', async () => {
      const owner = await makeKey(t);
      const tagged = await upload(t, owner.token, 110, 'cats');
      await upload(t, owner.token, 111, 'dogs');
      const res = await t.http
        .get('/api/v1/uploads?tag=cats')
        .set(...bearer(owner.token))
        .expect(200);
      expect(res.body.uploads.map((u: { filename: string }) => u.filename)).toEqual([tagged.filename]);
    });

    it("should never show other users' uploads", async () => {
      const mine = await upload(t, key.token, 120);
      const other = await makeKey(t);
      const res = await t.http
        .get('/api/v1/uploads')
        .set(...bearer(other.token))
        .expect(200);
      expect(res.body.uploads.map((u: { filename: string }) => u.filename)).not.toContain(mine.filename);
      const one = await t.http.get(`/api/v1/uploads/${mine.filename}`).set(...bearer(other.token));
      expect(one.status).toBe(404);
      expect(one.body.code).toBe('not_found');
      const del = await t.http.delete(`/api/v1/uploads/${mine.filename}`).set(...bearer(other.token));
      expect(del.status).toBe(404);
    });

    it('should answer 400 bad_request for limit 0, 101, "abc", a bad before and a bad tag', async () => {
      for (const q of [
        'limit=0',
        'limit=101',
        'limit=abc',
        'before=yesterday',
        'tag=no%20spaces',
        // The Kelvin sign: String#toLowerCase makes it a "k".
        'tag=%E2%84%AA',
        'unknown=1',
        // Digits only: Number() took these as 16, 10, 3, 1, 5 and 5.
        'limit=0x10',
        'limit=1e1',
        'limit=0b11',
        'limit=1.0',
        'limit=%2B5',
        'limit=%205',
      ]) {
        const res = await t.http.get(`/api/v1/uploads?${q}`).set(...bearer(key.token));
        expect(res.status).toBe(400);
        expect(res.body.code).toBe('bad_request');
      }
    });

    it('should name a bad limit once, in one sentence', async () => {
      const res = await t.http.get('/api/v1/uploads?limit=1&limit=2').set(...bearer(key.token));
      expectError(res, 400, 'bad_request');
      expect(res.body.error).toBe('limit must be a whole number from 1 to 100');
    });

    it('should bound the answer to a query of many unknown names', async () => {
      const query = Array.from({ length: 500 }, (_, i) => `unknown${i}=1`).join('&');
      const res = await t.http.get(`/api/v1/uploads?${query}`).set(...bearer(key.token));
      expectError(res, 400, 'bad_request');
      expect(res.body.error).toMatch(/^property unknown0 should not exist; .*; and 490 more$/);
      expect(res.body.details).toHaveLength(20);
      expect(res.text.length).toBeLessThan(4000);
    });
  });

  describe('GET / PATCH / DELETE /api/v1/uploads/:filename', () => {
    it('should return the detail shape, replace tags, and soft-delete', async () => {
      const u = await upload(t, key.token, 130);
      const detail = await t.http
        .get(`/api/v1/uploads/${u.filename}`)
        .set(...bearer(key.token))
        .expect(200);
      expect(detail.body).toEqual({
        ok: true,
        upload: {
          filename: u.filename,
          url: u.url,
          thumbnail_url: `${u.url}?w=320&format=auto`,
          mime: 'image/png',
          size: u.size,
          width: u.width,
          height: u.height,
          hash_sha256: u.hash_sha256,
          tags: [],
          created_at: expect.any(String),
          expires_at: null,
        },
      });
      const patched = await t.http
        .patch(`/api/v1/uploads/${u.filename}`)
        .set(...bearer(key.token))
        .send({ tags: ['New', 'two'] })
        .expect(200);
      expect(patched.body.upload.tags).toEqual(['new', 'two']);
      const bad = await t.http
        .patch(`/api/v1/uploads/${u.filename}`)
        .set(...bearer(key.token))
        .send({ tags: ['a b'] });
      expect(bad.status).toBe(400);
      expect(bad.body.code).toBe('bad_request');
      await t.http
        .delete(`/api/v1/uploads/${u.filename}`)
        .set(...bearer(key.token))
        .expect(200, { ok: true, deleted: u.filename });
      const gone = await t.http.get(`/images/${u.filename}`);
      expect(gone.status).toBe(404);
      expect(gone.body.code).toBe('not_found');
      const again = await t.http.delete(`/api/v1/uploads/${u.filename}`).set(...bearer(key.token));
      expect(again.status).toBe(404);
    });
  });

  describe('GET /api/v1/me', () => {
    it('should report the account usage and the key', async () => {
      const owner = await makeKey(t, undefined, 'ci');
      const a = await upload(t, owner.token, 140);
      const b = await upload(t, owner.token, 141);
      const res = await t.http
        .get('/api/v1/me')
        .set(...bearer(owner.token))
        .expect(200);
      const [row] = await sql<{ created_at: Date }>(t, 'select created_at from api_keys where id = $1', [
        owner.keyId,
      ]);
      expect(res.body).toEqual({
        ok: true,
        account: {
          email: owner.user.email,
          role: 'user',
          uploads_active: 2,
          storage_used_bytes: a.size + b.size,
          quota_bytes: null,
          quota_files: null,
        },
        key: {
          prefix: owner.token.slice(0, 8),
          label: 'ci',
          scopes: ['upload', 'read', 'delete'],
          request_count: 3,
          created_at: row.created_at.toISOString(),
        },
      });
      // Each call counts itself: the figure is the running total, this request included.
      const again = await t.http
        .get('/api/v1/me')
        .set(...bearer(owner.token))
        .expect(200);
      expect(again.body.key.request_count).toBe(4);
    });
  });

  describe('direct links', () => {
    it('should serve headers, 304 on If-None-Match, 206 for a Range, HEAD without a body', async () => {
      const u = await upload(t, key.token, 150);
      const full = await t.http.get(`/images/${u.filename}`).buffer(true).expect(200);
      expect(full.headers['x-content-type-options']).toBe('nosniff');
      expect(full.headers['accept-ranges']).toBe('bytes');
      expect(full.headers['cache-control']).toMatch(/public/);
      const etag = String(full.headers.etag);
      expect(etag).toMatch(/^"[0-9a-f]{64}"$/);
      await t.http.get(`/images/${u.filename}`).set('If-None-Match', etag).expect(304);
      const part = await t.http
        .get(`/images/${u.filename}`)
        .set('Range', 'bytes=0-9')
        .buffer(true)
        .expect(206);
      expect(part.headers['content-range']).toBe(`bytes 0-9/${u.size}`);
      expect(part.headers['content-length']).toBe('10');
      const bad = await t.http.get(`/images/${u.filename}`).set('Range', `bytes=${u.size + 10}-`);
      expect(bad.status).toBe(416);
      expect(bad.body).toEqual({ ok: false, code: 'range_not_satisfiable', error: expect.any(String) });
      expect(bad.headers['content-range']).toBe(`bytes */${u.size}`);
      expect(bad.headers.etag).toBeUndefined();
      expect(bad.headers['cache-control']).toBe('no-store');
      const head = await t.http.head(`/images/${u.filename}`).expect(200);
      expect(head.headers['content-length']).toBe(String(u.size));
    });

    it('should answer a row whose stored file is gone with an uncacheable 404, on GET, HEAD, 304 and Range alike', async () => {
      const u = await upload(t, key.token, 151);
      const etag = String((await t.http.head(`/images/${u.filename}`).expect(200)).headers.etag);
      await t.app.get(StorageDriver).delete(u.filename);
      const answers = {
        get: await t.http.get(`/images/${u.filename}`),
        head: await t.http.head(`/images/${u.filename}`),
        revalidate: await t.http.get(`/images/${u.filename}`).set('If-None-Match', etag),
        range: await t.http.get(`/images/${u.filename}`).set('Range', 'bytes=0-9'),
      };
      for (const [what, res] of Object.entries(answers)) {
        expect({ what, status: res.status }).toEqual({ what, status: 404 });
        expect(res.headers['cache-control']).toBe('no-store');
        expect(res.headers.etag).toBeUndefined();
        expect(res.headers['last-modified']).toBeUndefined();
        expect(res.headers['content-range']).toBeUndefined();
        expect(res.headers['content-type']).not.toMatch(/^image\//);
      }
      expect(answers.get.body).toEqual({ ok: false, code: 'not_found', error: expect.any(String) });
      expect(answers.get.headers['content-type']).toMatch(/^application\/json/);
    });

    it('should answer 404 not_found for unknown and malformed names', async () => {
      for (const name of ['FIXITFY-aaaaaaaaaaaa.png', '..%2F..%2Fetc%2Fpasswd', 'x']) {
        const res = await t.http.get(`/images/${name}`);
        expect(res.status).toBe(404);
        expect(res.body.code).toBe('not_found');
      }
    });
  });

  describe('delete links', () => {
    it('should delete once with DELETE, then answer 404', async () => {
      const u = await upload(t, key.token, 160);
      const path = new URL(u.delete_url).pathname;
      await t.http.delete(path).expect(200, { ok: true, deleted: u.filename });
      expect((await t.http.get(`/images/${u.filename}`)).status).toBe(404);
      const again = await t.http.delete(path);
      expect(again.status).toBe(404);
      expect(again.body.code).toBe('not_found');
    });

    it('should delete with POST too', async () => {
      const u = await upload(t, key.token, 161);
      await t.http.post(new URL(u.delete_url).pathname).expect(200, { ok: true, deleted: u.filename });
    });

    it('should never delete on GET (405 with Allow)', async () => {
      const u = await upload(t, key.token, 162);
      const path = new URL(u.delete_url).pathname;
      const res = await t.http.get(path);
      expect(res.status).toBe(405);
      expect(res.headers.allow).toBe('DELETE, POST');
      expect(res.body.code).toBe('method_not_allowed');
      await t.http.get(`/images/${u.filename}`).expect(200);
    });

    it('should answer 404 for an unknown token', async () => {
      const res = await t.http.delete(`/api/delete/${'0'.repeat(64)}`);
      expect(res.status).toBe(404);
      expect(res.body.code).toBe('not_found');
    });
  });
});

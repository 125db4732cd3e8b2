import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import request from 'supertest';
import { noisyPng, png } from '../fixtures/sample-images';
import { bearer, login, makeKey, makeUser, type TestKey } from '../setup/factories';
import {
  listen,
  type Listening,
  multipartFile,
  openRequest,
  type RawResponse,
  until,
} from '../setup/raw-http';
import { createTestApp, type TestApp } from '../setup/test-app';
import { sql } from '../setup/db';

const list = (dir: string): string[] => (existsSync(dir) ? readdirSync(dir) : []);

/** Every stored image file (the local driver shards files into sub-directories). */
const storedFiles = (t: TestApp): string[] =>
  list(t.config.storageDir).flatMap((shard) => list(join(t.config.storageDir, shard)));

const code = (res: { status: number; body: Record<string, unknown> }) => ({
  status: res.status,
  code: res.body.code,
});

const LIMITS = { RATE_LIMIT_UPLOADS_PER_MINUTE: '4', RATE_LIMIT_MANAGEMENT_PER_MINUTE: '6' };

describe('Two instances on one database and Redis (e2e)', () => {
  let a: TestApp;
  let b: TestApp;

  beforeAll(async () => {
    a = await createTestApp({ env: LIMITS });
    b = await createTestApp({ shareWith: a, env: LIMITS });
  });
  afterAll(async () => {
    await b.close();
    await a.close();
  });

  const attempt = (t: TestApp, token: string) =>
    t.http
      .post('/api/v1/upload')
      .set(...bearer(token))
      .send({});
  const revoke = async (t: TestApp, key: TestKey): Promise<void> => {
    const s = await login(t, key.user);
    await t.http
      .delete(`/api/v1/keys/${key.keyId}`)
      .set('Cookie', s.cookie)
      .set('X-CSRF-Token', s.csrf)
      .expect(200);
  };

  describe('rate limits are global', () => {
    it('should admit the upload limit once in total for requests alternating between instances', async () => {
      const { token } = await makeKey(a);
      const statuses = [];
      for (const t of [a, b, a, b, a, b]) {
        statuses.push((await attempt(t, token)).status);
      }
      expect(statuses).toEqual([400, 400, 400, 400, 429, 429]);
    });

    it('should admit exactly the limit of 3× the limit fired at both instances at once', async () => {
      const { token } = await makeKey(a);
      const servers = [await listen(a.app), await listen(b.app)];
      try {
        const agents = servers.map((s) => request(`http://127.0.0.1:${s.port}`));
        const all = Array.from({ length: 12 }, (_, i) =>
          agents[i % 2]
            .post('/api/v1/upload')
            .set(...bearer(token))
            .send({}),
        );
        const statuses = (await Promise.all(all)).map((r) => r.status);
        expect(statuses.filter((s) => s === 400)).toHaveLength(4);
        expect(statuses.filter((s) => s === 429)).toHaveLength(8);
      } finally {
        await Promise.all(servers.map((s) => s.close()));
      }
    });

    it('should share the management budget across instances', async () => {
      const { token } = await makeKey(a);
      for (const t of [a, b, a, b, a, b]) {
        expect((await t.http.get('/api/v1/me').set(...bearer(token))).status).toBe(200);
      }
      expect(code(await a.http.get('/api/v1/uploads').set(...bearer(token)))).toEqual({
        status: 429,
        code: 'rate_limit',
      });
      expect(code(await b.http.get('/api/v1/me').set(...bearer(token)))).toEqual({
        status: 429,
        code: 'rate_limit',
      });
    });
  });

  describe('revocation and bans are instant everywhere', () => {
    it('should refuse on B, at the very next request, a key (and its ut_ tokens) revoked on A', async () => {
      const key = await makeKey(a);
      const ut = (
        await b.http
          .post('/api/v1/upload-token')
          .set(...bearer(key.token))
          .expect(200)
      ).body.token as string;
      expect((await b.http.get('/api/v1/me').set(...bearer(key.token))).status).toBe(200);
      expect((await attempt(b, ut)).status).toBe(400);
      await revoke(a, key);
      expect(code(await b.http.get('/api/v1/me').set(...bearer(key.token)))).toEqual({
        status: 401,
        code: 'unauthorized',
      });
      expect(code(await attempt(b, key.token))).toEqual({ status: 401, code: 'unauthorized' });
      expect(code(await attempt(b, ut))).toEqual({ status: 401, code: 'unauthorized' });
    });

    it('should refuse on B every key, ut_ token and session of a user banned by SQL', async () => {
      const key = await makeKey(a);
      const ut = (
        await a.http
          .post('/api/v1/upload-token')
          .set(...bearer(key.token))
          .expect(200)
      ).body.token as string;
      const s = await login(a, key.user);
      expect((await b.http.get('/api/v1/auth/session').set('Cookie', s.cookie)).status).toBe(200);
      expect((await b.http.get('/api/v1/me').set(...bearer(key.token))).status).toBe(200);
      await sql(a, "update users set banned_at = now(), ban_reason = 'test' where id = $1", [key.user.id]);
      const banned = { status: 403, code: 'banned' };
      expect(code(await b.http.get('/api/v1/me').set(...bearer(key.token)))).toEqual(banned);
      expect(code(await attempt(b, key.token))).toEqual(banned);
      expect(code(await attempt(b, ut))).toEqual(banned);
      expect(code(await b.http.get('/api/v1/auth/session').set('Cookie', s.cookie))).toEqual(banned);
      expect(code(await b.http.get('/api/v1/uploads').set('Cookie', s.cookie))).toEqual(banned);
    });

    it("should answer 404 on B's direct link as soon as A deleted the upload (owner delete and delete link)", async () => {
      const { token } = await makeKey(a);
      const first = await a.http
        .post('/api/v1/upload')
        .set(...bearer(token))
        .attach('file', await png(501), 'a.png')
        .expect(200);
      const second = await a.http
        .post('/api/v1/upload')
        .set(...bearer(token))
        .attach('file', await png(502), 'b.png')
        .expect(200);
      for (const up of [first, second]) {
        await b.http.get(`/images/${up.body.filename}`).expect(200);
      }
      await a.http
        .delete(`/api/v1/uploads/${first.body.filename}`)
        .set(...bearer(token))
        .expect(200);
      await a.http.post(new URL(second.body.delete_url as string).pathname).expect(200);
      for (const up of [first, second]) {
        expect(code(await b.http.get(`/images/${up.body.filename}`))).toEqual({
          status: 404,
          code: 'not_found',
        });
        expect((await b.http.head(`/images/${up.body.filename}`)).status).toBe(404);
      }
    });
  });

  describe('an upload in flight when its credential dies', () => {
    let server: Listening;
    beforeAll(async () => {
      server = await listen(a.app);
    });
    afterAll(() => server.close());

    /**
     * Streams a multipart upload to A in two halves, chunked (no declared length, so no memory is lent to it); between
     * them (once A is receiving the file), runs `midway`. The file must be over 2 MB: its first half then outgrows the
     * 1 MB held in memory, and the temp file shows A has it.
     */
    async function streamUpload(
      token: string,
      bytes: Buffer,
      midway: () => Promise<void>,
    ): Promise<RawResponse> {
      const body = multipartFile(bytes);
      const tmp = join(a.config.dataDir, 'tmp');
      const before = new Set(list(tmp));
      const { req, response } = openRequest(server.port, '/api/v1/upload', {
        Authorization: `Bearer ${token}`,
        'Content-Type': body.contentType,
      });
      const half = Math.floor(body.file.length / 2);
      req.write(Buffer.concat([body.head, body.file.subarray(0, half)]));
      await until(() => list(tmp).some((f) => !before.has(f)), 'A to start receiving the file');
      await midway();
      req.end(Buffer.concat([body.file.subarray(half), body.tail]));
      return response;
    }

    const nothingKept = async (userId: string, filesBefore: string[]): Promise<void> => {
      expect(await sql(a, 'select id from uploads where owner_id = $1', [userId])).toEqual([]);
      expect(storedFiles(a).sort()).toEqual(filesBefore.sort());
      expect(list(join(a.config.dataDir, 'tmp'))).toEqual([]);
    };

    it('should store a streamed upload when nothing happens midway (the control case)', async () => {
      const { token, user } = await makeKey(a);
      const res = await streamUpload(token, await noisyPng(503, 1000, 800), () => Promise.resolve());
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ ok: true, mime: 'image/png', width: 1000, height: 800 });
      expect(await sql(a, 'select id from uploads where owner_id = $1', [user.id])).toHaveLength(1);
    });

    it('should answer 401 and keep no file and no row when the key is revoked (on B) mid-stream', async () => {
      const key = await makeKey(a);
      const files = storedFiles(a);
      const res = await streamUpload(key.token, await noisyPng(504, 1000, 800), () => revoke(b, key));
      expect({ status: res.status, body: res.body }).toEqual({
        status: 401,
        body: { ok: false, code: 'unauthorized', error: expect.any(String) },
      });
      await nothingKept(key.user.id, files);
    });

    it('should answer 401 and keep nothing when the key that minted the ut_ token is revoked mid-stream', async () => {
      const key = await makeKey(a);
      const ut = (
        await a.http
          .post('/api/v1/upload-token')
          .set(...bearer(key.token))
          .expect(200)
      ).body.token as string;
      const files = storedFiles(a);
      const res = await streamUpload(ut, await noisyPng(505, 1000, 800), () => revoke(b, key));
      expect(code(res)).toEqual({ status: 401, code: 'unauthorized' });
      await nothingKept(key.user.id, files);
    });

    it('should answer 403 banned and keep nothing when the owner is banned mid-stream', async () => {
      const key = await makeKey(a);
      const files = storedFiles(a);
      const res = await streamUpload(key.token, await noisyPng(506, 1000, 800), async () => {
        await sql(b, 'update users set banned_at = now() where id = $1', [key.user.id]);
      });
      expect(code(res)).toEqual({ status: 403, code: 'banned' });
      await nothingKept(key.user.id, files);
    });
  });

  it("should not let one user's limit touch another's", async () => {
    const [k1, k2] = [await makeKey(a, await makeUser(a)), await makeKey(a, await makeUser(a))];
    for (let i = 0; i < 4; i++) {
      await attempt(i % 2 ? a : b, k1.token);
    }
    expect((await attempt(b, k1.token)).status).toBe(429);
    expect((await attempt(b, k2.token)).status).toBe(400);
  });
});

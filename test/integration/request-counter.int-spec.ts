import { Client } from 'pg';
import { RequestCounterService } from '../../src/modules/api-keys/request-counter.service';
import { RedisService } from '../../src/common/redis/redis.module';
import { bearer, makeKey } from '../setup/factories';
import { TcpProxy } from '../setup/private-servers';
import { createTestApp, createTestDatabase, type TestApp } from '../setup/test-app';
import { waitFor } from '../setup/wait';

async function storedCount(t: TestApp, keyId: string): Promise<{ count: number; lastUsed: Date | null }> {
  const c = new Client({ connectionString: t.databaseUrl });
  await c.connect();
  try {
    const { rows } = await c.query('select request_count, last_used_at from api_keys where id = $1', [keyId]);
    return { count: Number(rows[0].request_count), lastUsed: rows[0].last_used_at };
  } finally {
    await c.end();
  }
}

describe(RequestCounterService.name, () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());

  it('should count in Redis without touching the row, then flush the exact total and last_used_at', async () => {
    const key = await makeKey(t);
    for (let i = 0; i < 7; i++) {
      await t.http
        .get('/api/v1/uploads')
        .set(...bearer(key.token))
        .expect(200);
    }
    expect(await storedCount(t, key.keyId)).toEqual({ count: 0, lastUsed: null });
    await t.app.get(RequestCounterService).flush();
    const flushed = await storedCount(t, key.keyId);
    expect(flushed.count).toBe(7);
    expect(flushed.lastUsed).toBeInstanceOf(Date);
  });

  it('should keep counting from the database figure when Redis lost the counter', async () => {
    const key = await makeKey(t);
    for (let i = 0; i < 3; i++) {
      await t.http
        .get('/api/v1/uploads')
        .set(...bearer(key.token))
        .expect(200);
    }
    await t.app.get(RequestCounterService).flush();
    await t.app.get(RedisService).client.del(`{keyreq}:${key.keyId}`);
    const me = await t.http
      .get('/api/v1/me')
      .set(...bearer(key.token))
      .expect(200);
    expect(me.body.key.request_count).toBe(4);
  });

  it('should count parallel requests exactly', async () => {
    const key = await makeKey(t);
    await Promise.all(
      Array.from({ length: 20 }, () =>
        t.http
          .get('/api/v1/uploads')
          .set(...bearer(key.token))
          .expect(200),
      ),
    );
    const me = await t.http
      .get('/api/v1/me')
      .set(...bearer(key.token))
      .expect(200);
    expect(me.body.key.request_count).toBe(21);
  });

  it('should keep the counts of a flush whose database write was cut, and write them once it recovers', async () => {
    const db = await createTestDatabase();
    const target = new URL(db.url);
    const proxy = await TcpProxy.start(Number(target.port || 5432), target.hostname);
    const viaProxy = new URL(db.url);
    viaProxy.hostname = '127.0.0.1';
    viaProxy.port = String(proxy.port);
    const app = await createTestApp({ env: { DATABASE_URL: viaProxy.toString() } });
    try {
      const key = await makeKey(app);
      for (let i = 0; i < 7; i++) {
        await app.http
          .get('/api/v1/uploads')
          .set(...bearer(key.token))
          .expect(200);
      }
      // The connection drops while the flush's UPDATE is on the wire: a real failed write.
      proxy.cutOn((chunk) => chunk.includes('update api_keys'));
      const counter = app.app.get(RequestCounterService);
      await expect(counter.flush()).rejects.toThrow();
      proxy.restore();
      await waitFor('a flush that succeeds', () => counter.flush().then(() => true));
      const c = new Client({ connectionString: db.url });
      await c.connect();
      try {
        const { rows } = await c.query('select request_count from api_keys where id = $1', [key.keyId]);
        expect(Number(rows[0].request_count)).toBe(7);
      } finally {
        await c.end();
      }
    } finally {
      await app.close();
      await proxy.close();
      await db.drop();
    }
  });
});

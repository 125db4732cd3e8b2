import { createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { SessionsService } from '../../src/modules/auth/sessions.service';
import { sql } from '../setup/db';
import { login, makeUser } from '../setup/factories';
import { createTestApp } from '../setup/test-app';

describe('/readyz with a Redis that accepts connections and never answers (e2e)', () => {
  it('should answer 503 unavailable naming redis instead of hanging', async () => {
    const sockets: Socket[] = [];
    const silent = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const t = await createTestApp({
      env: { REDIS_URL: `redis://127.0.0.1:${(silent.address() as AddressInfo).port}` },
    });
    try {
      const res = await t.http.get('/readyz');
      expect(res.status).toBe(503);
      expect(res.body).toEqual({ ok: false, code: 'unavailable', error: 'Not ready: redis.' });
      expect(res.headers['retry-after']).toBeDefined();
      expect(sockets.length).toBeGreaterThan(0);
    } finally {
      sockets.forEach((socket) => socket.destroy());
      silent.close();
      await t.close();
    }
  });
});

describe('Expired sessions are deleted (e2e)', () => {
  it('should delete expired session rows when the cleanup runs, and keep live ones working', async () => {
    const t = await createTestApp();
    try {
      const live = await login(t, await makeUser(t));
      const expired = await login(t, await makeUser(t));
      const rows = await sql<{ id: string }>(t, 'select id from sessions order by created_at');
      expect(rows).toHaveLength(2);
      await sql(t, "update sessions set expires_at = now() - interval '1 minute' where id = $1", [
        rows[1].id,
      ]);
      // Expired already answers 401; its row is what the cleanup is for.
      expect((await t.http.get('/api/v1/auth/session').set('Cookie', expired.cookie)).status).toBe(401);

      const deleted = await t.app.get(SessionsService).deleteExpired();

      expect(deleted).toBe(1);
      expect(await sql(t, 'select id from sessions')).toEqual([{ id: rows[0].id }]);
      expect((await t.http.get('/api/v1/auth/session').set('Cookie', live.cookie)).status).toBe(200);
      expect(await t.app.get(SessionsService).deleteExpired()).toBe(0);
    } finally {
      await t.close();
    }
  });
});

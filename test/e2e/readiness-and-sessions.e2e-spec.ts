import { SessionsService } from '../../src/modules/auth/sessions.service';
import { sql } from '../setup/db';
import { login, makeUser } from '../setup/factories';
import { createTestApp } from '../setup/test-app';
import { silentServer } from '../setup/private-servers';

describe('/readyz with a Redis that accepts connections and never answers (e2e)', () => {
  it('should answer 503 unavailable naming redis instead of hanging', async () => {
    const silent = await silentServer();
    const t = await createTestApp({ env: { REDIS_URL: silent.url } });
    try {
      const res = await t.http.get('/readyz');
      expect(res.status).toBe(503);
      expect(res.body).toEqual({ ok: false, code: 'unavailable', error: 'Not ready: redis.' });
      expect(res.headers['retry-after']).toBeDefined();
      expect(silent.sockets.length).toBeGreaterThan(0);
    } finally {
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

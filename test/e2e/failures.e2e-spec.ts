import { Client } from 'pg';
import { png } from '../fixtures/sample-images';
import { bearer, makeKey } from '../setup/factories';
import { storedFiles } from '../setup/db';
import { createTestApp } from '../setup/test-app';

describe('Dependency failures answer the contract codes and leave nothing half-written (e2e)', () => {
  it('should answer 500 storage_failed and record nothing when the file cannot be written', async () => {
    const t = await createTestApp({ env: { STORAGE_DIR: '/dev/null/images' } });
    try {
      const key = await makeKey(t);
      const res = await t.http
        .post('/api/v1/upload')
        .set(...bearer(key.token))
        .attach('file', await png(1), 'a.png');
      expect(res.status).toBe(500);
      expect(res.body).toEqual({ ok: false, code: 'storage_failed', error: expect.any(String) });
      expect(JSON.stringify(res.body)).not.toContain('/dev/null');
      const c = new Client({ connectionString: t.databaseUrl });
      await c.connect();
      const rows = (await c.query('select 1 from uploads where owner_id = $1', [key.user.id])).rows;
      await c.end();
      expect(rows).toHaveLength(0);
      const ready = await t.http.get('/readyz');
      expect(ready.status).toBe(503);
      expect(ready.body.error).toContain('storage');
    } finally {
      await t.close();
    }
  });

  it('should answer 500 db_failed and remove the written file when the row cannot be recorded', async () => {
    const t = await createTestApp();
    const c = new Client({ connectionString: t.databaseUrl });
    await c.connect();
    try {
      const key = await makeKey(t);
      // A column the insert needs disappears: the database refuses the row after the file was written.
      await c.query('alter table uploads rename column stored_sha256 to stored_sha256_gone');
      const res = await t.http
        .post('/api/v1/upload')
        .set(...bearer(key.token))
        .attach('file', await png(2), 'a.png');
      expect(res.status).toBe(500);
      expect(res.body).toEqual({ ok: false, code: 'db_failed', error: expect.any(String) });
      expect(JSON.stringify(res.body)).not.toMatch(/stored_sha256|insert|uploads/);
      expect(res.headers['x-request-id']).toBeDefined();
      expect(storedFiles(t)).toEqual([]);
    } finally {
      await c
        .query('alter table uploads rename column stored_sha256_gone to stored_sha256')
        .catch(() => undefined);
      await c.end();
      await t.close();
    }
  });
});

import { Client } from 'pg';
import { png } from '../fixtures/sample-images';
import { bearer, login, makeKey, makeUser } from '../setup/factories';
import { sql, storedFiles } from '../setup/db';
import { createTestApp, type TestApp } from '../setup/test-app';
import { waitFor } from '../setup/wait';

/**
 * The upload's one-statement record reads the key and user rows FOR SHARE: a revoke or a ban that is in progress
 * when the upload reaches its record either commits first (the upload gets 401/403 and keeps nothing) or rolls back
 * (the upload is recorded). Both orders, with the revoke/ban held open in a real transaction. And an account
 * deleted (by an operator, in SQL: the app has no delete) after the upload authenticated: 401, nothing kept.
 */
/**
 * Both ways an upload is recorded: one statement (no quota), and the transaction that counts the quota first
 * (a storage quota in force): each reads the same rows FOR SHARE and must answer the same.
 */
describe.each([
  ['one statement', {}],
  ['quota transaction', { STORAGE_QUOTA_FILES: '1000' }],
])('Upload record against a revoke or ban in progress, %s (e2e)', (_how, env: Record<string, string>) => {
  let t: TestApp;
  let admin: Client;

  beforeAll(async () => {
    t = await createTestApp({ env });
    admin = new Client({ connectionString: t.databaseUrl });
    await admin.connect();
  });
  afterAll(async () => {
    await admin.end();
    await t.close();
  });

  /** Backends of the app waiting on a row lock: the upload's record has reached the held row. */
  const waitingOnLock = async (): Promise<boolean> => {
    const rows = await sql(
      t,
      `select 1 from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`,
    );
    return rows.length > 0;
  };

  async function uploadWhileHeld(statement: string, id: string, commit: boolean, seed: number) {
    const key = await makeKey(t);
    const target = statement.includes('api_keys') ? key.keyId : key.user.id;
    await admin.query('begin');
    await admin.query(statement.replace('$id', '$1'), [target]);
    const answer = t.http
      .post('/api/v1/upload')
      .set(...bearer(key.token))
      .attach('file', await png(seed), `${id}.png`)
      .then((r) => r);
    await waitFor('the record waits for the held row', waitingOnLock);
    await admin.query(commit ? 'commit' : 'rollback');
    const res = await answer;
    const rows = await sql(t, 'select filename from uploads where owner_id = $1', [key.user.id]);
    return { res, rows };
  }

  it('should answer 401 and record nothing when a revoke in progress commits', async () => {
    const before = storedFiles(t).length;
    const { res, rows } = await uploadWhileHeld(
      'update api_keys set revoked_at = now() where id = $id',
      'revoked',
      true,
      31,
    );
    expect(res.status).toBe(401);
    expect(res.body).toEqual({ ok: false, code: 'unauthorized', error: 'The API key was revoked.' });
    expect(rows).toEqual([]);
    expect(storedFiles(t)).toHaveLength(before);
  });

  it('should record the upload when the revoke in progress rolls back', async () => {
    const { res, rows } = await uploadWhileHeld(
      'update api_keys set revoked_at = now() where id = $id',
      'kept',
      false,
      32,
    );
    expect(res.status).toBe(200);
    expect(rows).toEqual([{ filename: res.body.filename }]);
  });

  it('should answer 403 banned and record nothing when a ban in progress commits', async () => {
    const { res, rows } = await uploadWhileHeld(
      `update users set banned_at = now(), ban_reason = 'test' where id = $id`,
      'banned',
      true,
      33,
    );
    expect(res.status).toBe(403);
    expect(res.body).toMatchObject({ ok: false, code: 'banned' });
    expect(rows).toEqual([]);
  });

  it('should answer 401 "The account no longer exists." and keep nothing when the account is deleted after authentication', async () => {
    // A dashboard session: with an API key the deletion's cascade takes the key row too, and the record answers
    // "The API key was revoked." first. A session carries no key, so the missing user row is what the record sees.
    const user = await makeUser(t);
    const session = await login(t, user);
    const before = storedFiles(t).length;
    // The deletion is under way (its row lock held) while the upload authenticates, streams and is processed: the
    // session lookup still reads the committed rows; the record's FOR SHARE read waits, then finds no user row.
    await admin.query('begin');
    const deleted = await admin.query('delete from users where id = $1', [user.id]);
    expect(deleted.rowCount).toBe(1);
    const answer = t.http
      .post('/api/v1/upload')
      .set('Cookie', session.cookie)
      .set('X-CSRF-Token', session.csrf)
      .attach('file', await png(34), 'gone.png')
      .then((r) => r);
    await waitFor('the record waits for the deleted user row', waitingOnLock);
    await admin.query('commit');
    const res = await answer;
    expect(res.status).toBe(401);
    expect(res.body).toEqual({ ok: false, code: 'unauthorized', error: 'The account no longer exists.' });
    expect(await sql(t, 'select 1 from uploads where owner_id = $1', [user.id])).toEqual([]);
    // The file written before the record is removed again.
    expect(storedFiles(t)).toHaveLength(before);
  });
});

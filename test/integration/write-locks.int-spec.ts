import { EntityManager } from '@mikro-orm/postgresql';
import type { KeyPrincipal } from '../../src/common/auth/principal';
import { NO_REQUEST } from '../../src/common/http/request-meta';
import { ApiKeysService } from '../../src/modules/api-keys/api-keys.service';
import { UsersService } from '../../src/modules/auth/users.service';
import { sql } from '../setup/db';
import { makeKey, makeUser, type TestKey } from '../setup/factories';
import { createTestApp, type TestApp } from '../setup/test-app';
import { waitFor } from '../setup/wait';

/** The owners' named locks for writes made on a credential's behalf (issue 11: no module reads another's tables). */
describe('ApiKeysService.lockForWrite / UsersService.lockForWrite (integration)', () => {
  let t: TestApp;
  let em: EntityManager;
  beforeAll(async () => {
    t = await createTestApp();
    em = t.app.get(EntityManager);
  });
  afterAll(() => t.close());

  const principal = (key: TestKey): KeyPrincipal => ({
    kind: 'key',
    keyId: key.keyId,
    keyPrefix: key.token.slice(0, 8),
    keyLabel: 'test',
    keyCreatedAt: new Date(),
    scopes: ['upload', 'read', 'delete'],
    defaultExpiresIn: null,
    userId: key.user.id,
    email: key.user.email,
    role: 'user',
    storedRequestCount: 0,
  });

  it('should refuse to run outside a transaction (a FOR SHARE there would mean nothing)', async () => {
    const key = await makeKey(t);
    await expect(ApiKeysService.lockForWrite(principal(key), em.fork())).rejects.toThrow(
      'ApiKeysService.lockForWrite must be called inside a transaction',
    );
    await expect(UsersService.lockForWrite(key.user.id, em.fork())).rejects.toThrow(
      'UsersService.lockForWrite must be called inside a transaction',
    );
  });

  it('should pass a live key, and answer unauthorized for a revoked key and banned for a banned user', async () => {
    const live = await makeKey(t);
    await em.fork().transactional((tx) => ApiKeysService.lockForWrite(principal(live), tx));

    const revoked = await makeKey(t);
    await t.app.get(ApiKeysService).revoke(revoked.user.id, revoked.keyId);
    await expect(
      em.fork().transactional((tx) => ApiKeysService.lockForWrite(principal(revoked), tx)),
    ).rejects.toMatchObject({ code: 'unauthorized' });

    const user = await makeUser(t);
    const bannedKey = await makeKey(t, user);
    await t.app.get(UsersService).ban(user.id, 'test', NO_REQUEST);
    await expect(
      em.fork().transactional((tx) => ApiKeysService.lockForWrite(principal(bannedKey), tx)),
    ).rejects.toMatchObject({ code: 'banned' });
    await expect(
      em.fork().transactional((tx) => UsersService.lockForWrite(user.id, tx)),
    ).rejects.toMatchObject({ code: 'banned' });
  });

  it('should make a revoke and a ban wait for the holding transaction to commit', async () => {
    const key = await makeKey(t);
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let locked!: () => void;
    const lockTaken = new Promise<void>((resolve) => (locked = resolve));
    const holder = em.fork().transactional(async (tx) => {
      await ApiKeysService.lockForWrite(principal(key), tx);
      locked();
      await held;
    });
    await lockTaken;

    const revoke = t.app.get(ApiKeysService).revoke(key.user.id, key.keyId);
    const ban = t.app.get(UsersService).ban(key.user.id, 'test', NO_REQUEST);
    // Both are blocked on a row lock (PostgreSQL says so), not merely slow.
    await waitFor('the revoke and the ban to wait on the held row locks', async () => {
      const rows = await sql<{ n: string }>(
        t,
        "select count(*) as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'",
      );
      return Number(rows[0].n) === 2;
    });
    release();
    await holder;
    await expect(revoke).resolves.toMatchObject({ ok: true, revoked: key.keyId });
    await expect(ban).resolves.toMatchObject({ id: key.user.id });
  });
});

import { InvalidationBus } from '../../src/common/redis/invalidation-bus';
import { RedisService } from '../../src/common/redis/redis.module';
import { AppConfig } from '../../src/config/app-config';
import { ApiKeysService } from '../../src/modules/api-keys/api-keys.service';
import { RequestCounterService } from '../../src/modules/api-keys/request-counter.service';
import { UsersService } from '../../src/modules/auth/users.service';
import { KeyHints } from '../../src/modules/uploads/key-hints';
import type { KeyPrincipal } from '../../src/common/auth/principal';
import { sql } from '../setup/db';
import { expectError } from '../setup/envelope';
import { bearer, makeKey, type TestKey } from '../setup/factories';
import { createTestApp, type TestApp } from '../setup/test-app';
import { waitFor } from '../setup/wait';

const NO_META = { ip: null, userAgent: null } as never;

function principal(keyId: string, userId: string): KeyPrincipal {
  return {
    kind: 'key',
    keyId,
    userId,
    email: `${userId}@example.com`,
    role: 'user',
    keyPrefix: 'fxf_0000',
    keyLabel: 'l',
    keyCreatedAt: new Date(0),
    storedRequestCount: 0,
    scopes: ['read'],
    defaultExpiresIn: null,
  };
}

async function counted(t: TestApp, key: TestKey): Promise<number> {
  return (await t.app.get(RequestCounterService).live([key.keyId])).get(key.keyId)?.count ?? 0;
}

/**
 * The read fast path starts a key's data statement and rate limit while the key lookup runs when this instance has
 * verified the key before (KeyHints). The lookup still decides every answer and the count; what a hint can get wrong
 * is the rate-limit slot of a request that then answers 401/403, so hints go at once, on every instance, when a key
 * is revoked or its owner banned.
 */
describe('KeyHints, on the real invalidation bus', () => {
  let t: TestApp;
  let bus: InvalidationBus;
  let hints: KeyHints;

  beforeAll(async () => {
    t = await createTestApp();
    // A bus of its own: its subscription is this test's to watch, start and end.
    bus = new InvalidationBus(t.app.get(RedisService), t.app.get(AppConfig));
    hints = new KeyHints(bus);
  });
  afterAll(async () => {
    await bus.onApplicationShutdown();
    await t.close();
  });

  it('holds nothing until its subscription is confirmed, then what a lookup gave', async () => {
    hints.remember('h0', principal('k0', 'u0'), hints.mark());
    expect(hints.get('h0')).toBeUndefined();
    await waitFor('the subscription', () => bus.ready);
    hints.remember('h0', principal('k0', 'u0'), hints.mark());
    expect(hints.get('h0')?.keyId).toBe('k0');
  });

  it("forgets a key on `key:<id>` and an owner's keys on `owner:<id>`, from any instance", async () => {
    hints.remember('h1', principal('k1', 'u1'), hints.mark());
    hints.remember('h2', principal('k2', 'u2'), hints.mark());
    hints.remember('h3', principal('k3', 'u2'), hints.mark());
    // Published by the app's own bus: a message from elsewhere, as another instance's would be.
    await t.app.get(InvalidationBus).publish('key:k1');
    await waitFor('key:k1', () => hints.get('h1') === undefined);
    expect(hints.get('h2')?.keyId).toBe('k2');
    await t.app.get(InvalidationBus).publish('owner:u2');
    await waitFor('owner:u2', () => hints.get('h2') === undefined && hints.get('h3') === undefined);
    // Other caches' messages leave it alone.
    hints.remember('h4', principal('k4', 'u4'), hints.mark());
    await bus.publish('upload:FIXITFY-000000000001.png');
    expect(hints.get('h4')?.keyId).toBe('k4');
  });

  it('refuses a lookup read before an invalidation that arrived while it ran', async () => {
    const mark = hints.mark();
    await bus.publish('key:other');
    hints.remember('h5', principal('k5', 'u5'), mark);
    expect(hints.get('h5')).toBeUndefined();
    hints.remember('h5', principal('k5', 'u5'), hints.mark());
    hints.drop('h5');
    expect(hints.get('h5')).toBeUndefined();
  });

  it('keeps at most 10,000 keys, the oldest going first', () => {
    for (let i = 0; i <= 10_000; i++) {
      hints.remember(`n${i}`, principal(`nk${i}`, 'un'), hints.mark());
    }
    expect(hints.get('n0')).toBeUndefined();
    expect(hints.get('n1')?.keyId).toBe('nk1');
    expect(hints.get('n10000')?.keyId).toBe('nk10000');
  });

  it('holds nothing once its subscription ends', async () => {
    hints.remember('h6', principal('k6', 'u6'), hints.mark());
    expect(hints.get('h6')?.keyId).toBe('k6');
    await bus.onApplicationShutdown();
    expect(hints.get('h6')).toBeUndefined();
  });
});

describe('The read fast path with a key it has answered before (e2e, two instances)', () => {
  let a: TestApp;
  let b: TestApp;

  beforeAll(async () => {
    a = await createTestApp();
    b = await createTestApp({ shareWith: a });
    await waitFor(
      'both subscriptions',
      () => a.app.get(InvalidationBus).ready && b.app.get(InvalidationBus).ready,
    );
  });
  afterAll(async () => {
    await b.close();
    await a.close();
  });

  /** Two reads on B: the first verifies the key there, the second starts its work on the hint. */
  const warm = async (key: TestKey): Promise<void> => {
    await b.http
      .get('/api/v1/me')
      .set(...bearer(key.token))
      .expect(200);
    await b.http
      .get('/api/v1/uploads')
      .set(...bearer(key.token))
      .expect(200);
    expect(await counted(b, key)).toBe(2);
  };

  it('answers 401 on B, counting nothing, once A has revoked the key', async () => {
    const key = await makeKey(a);
    await warm(key);
    await a.app.get(ApiKeysService).revoke(key.user.id, key.keyId);
    for (let i = 0; i < 2; i++) {
      expectError(await b.http.get('/api/v1/me').set(...bearer(key.token)), 401, 'unauthorized');
    }
    expect(await counted(b, key)).toBe(2);
  });

  it('answers 403 banned on B, counting nothing, once A has banned the owner', async () => {
    const key = await makeKey(a);
    await warm(key);
    await a.app.get(UsersService).ban(key.user.id, 'test', NO_META);
    for (let i = 0; i < 2; i++) {
      expectError(await b.http.get('/api/v1/uploads').set(...bearer(key.token)), 403, 'banned');
    }
    expect(await counted(b, key)).toBe(2);
  });

  it('answers with what the lookup read now, not what the hint held: a changed email and label', async () => {
    const key = await makeKey(a);
    await warm(key);
    await sql(b, "update users set email = 'renamed-' || email where id = $1", [key.user.id]);
    await sql(b, "update api_keys set label = 'relabelled' where id = $1", [key.keyId]);
    const me = await b.http
      .get('/api/v1/me')
      .set(...bearer(key.token))
      .expect(200);
    expect(me.body.account.email).toBe(`renamed-${key.user.email}`);
    expect(me.body.key.label).toBe('relabelled');
    expect(me.body.key.request_count).toBe(3);
  });

  it('answers a revoke made behind its back (plain SQL) with 401 from the lookup, counting nothing', async () => {
    const key = await makeKey(a);
    await warm(key);
    await sql(b, 'update api_keys set revoked_at = now() where id = $1', [key.keyId]);
    for (let i = 0; i < 2; i++) {
      expectError(await b.http.get('/api/v1/me').set(...bearer(key.token)), 401, 'unauthorized');
    }
    expect(await counted(b, key)).toBe(2);
  });

  it("counts on from the database figure, not the hint's, when Redis lost the counter", async () => {
    const key = await makeKey(a);
    await warm(key);
    await b.app.get(RequestCounterService).flush();
    await b.app.get(RedisService).client.del(`{keyreq}:${key.keyId}`);
    const me = await b.http
      .get('/api/v1/me')
      .set(...bearer(key.token))
      .expect(200);
    expect(me.body.key.request_count).toBe(3);
  });
});

describe('The read fast path with a key it has answered before, under the management rate limit (e2e)', () => {
  let a: TestApp;
  let b: TestApp;
  /** What B's invalidation bus has delivered (after B's own KeyHints, which listened first). */
  const heardOnB: string[] = [];
  beforeAll(async () => {
    const env = { RATE_LIMIT_MANAGEMENT_PER_MINUTE: '3' };
    a = await createTestApp({ env });
    b = await createTestApp({ shareWith: a, env });
    b.app.get(InvalidationBus).listen((what) => heardOnB.push(what));
    await waitFor(
      'both subscriptions',
      () => a.app.get(InvalidationBus).ready && b.app.get(InvalidationBus).ready,
    );
  });
  afterAll(async () => {
    await b.close();
    await a.close();
  });

  const me = (key: TestKey) => b.http.get('/api/v1/me').set(...bearer(key.token));

  it("starts a hinted request's rate limit with its lookup: a request the lookup refuses has used its slot", async () => {
    const key = await makeKey(a);
    await me(key).expect(200);
    // Revoked and restored behind the service's back: no message drops the hint in between.
    await sql(b, 'update api_keys set revoked_at = now() where id = $1', [key.keyId]);
    expectError(await me(key), 401, 'unauthorized');
    await sql(b, 'update api_keys set revoked_at = null where id = $1', [key.keyId]);
    await me(key).expect(200);
    // Three slots a minute: the refused request took the second (without the hint it would not have).
    expectError(await me(key), 429, 'rate_limit');
    // Counted: the two answered, and the refusal (as the guard counts it); not the request the lookup refused.
    expect(await counted(b, key)).toBe(3);
  });

  it.each([
    [
      'a revoke',
      (key: TestKey) => a.app.get(ApiKeysService).revoke(key.user.id, key.keyId),
      (key: TestKey) => sql(b, 'update api_keys set revoked_at = null where id = $1', [key.keyId]),
      401,
      (key: TestKey) => `key:${key.keyId}`,
    ],
    [
      'a ban',
      (key: TestKey) => a.app.get(UsersService).ban(key.user.id, 'test', NO_META),
      (key: TestKey) => sql(b, 'update users set banned_at = null where id = $1', [key.user.id]),
      403,
      (key: TestKey) => `owner:${key.user.id}`,
    ],
  ])(
    'forgets the key on B when A makes %s: the refused request uses no slot',
    async (_what, refuse, restore, status, message) => {
      const key = await makeKey(a);
      await me(key).expect(200);
      await refuse(key);
      // A request that reaches B before A's message does may still start its rate limit on the hint: the slack the
      // hints allow (KeyHints). Once B has the message, the key is forgotten there.
      await waitFor('B hears of it', () => heardOnB.includes(message(key)));
      expect((await me(key)).status).toBe(status);
      // Restored behind the service's back (no message): the next two requests take the second and third slots.
      await restore(key);
      await me(key).expect(200);
      await me(key).expect(200);
    },
  );
});

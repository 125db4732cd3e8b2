import { Webhook as StandardWebhook } from 'standardwebhooks';
import { png } from '../fixtures/sample-images';
import { sql } from '../setup/db';
import {
  bearer,
  login,
  makeKey,
  makeUser,
  type TestKey,
  type TestSession,
  type TestUser,
} from '../setup/factories';
import { createTestApp, type TestApp } from '../setup/test-app';
import { waitFor } from '../setup/wait';
import { Receiver, type ReceivedRequest } from './webhooks-receiver';
import { expectError } from '../setup/envelope';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

interface Account {
  user: TestUser;
  session: TestSession;
  key: TestKey;
}

describe('Webhook events, Standard Webhooks signatures and redelivery (e2e)', () => {
  let t: TestApp;
  const receivers: Receiver[] = [];
  let seed = 7000;

  beforeAll(async () => {
    t = await createTestApp({
      env: { ALLOW_PRIVATE_WEBHOOKS: 'true', WEBHOOK_TIMEOUT_MS: '1000', WEBHOOK_RETRY_BASE_MS: '10' },
    });
  });
  afterAll(async () => {
    await t.close();
    await Promise.all(receivers.map((r) => r.close()));
  });

  const account = async (): Promise<Account> => {
    const user = await makeUser(t);
    return { user, session: await login(t, user), key: await makeKey(t, user) };
  };
  const asSession = (s: TestSession, method: 'get' | 'post' | 'patch' | 'delete', path: string) =>
    t.http[method](path).set('Cookie', s.cookie).set('X-CSRF-Token', s.csrf);
  const receiver = async (handler?: Parameters<typeof Receiver.start>[0]): Promise<Receiver> => {
    const r = await Receiver.start(handler);
    receivers.push(r);
    return r;
  };
  const upload = async (a: Account): Promise<Record<string, any>> =>
    (
      await t.http
        .post('/api/v1/upload')
        .set(...bearer(a.key.token))
        .attach('file', await png(seed++), 'a.png')
        .expect(200)
    ).body;
  const secretOf = async (a: Account): Promise<string> =>
    (await asSession(a.session, 'get', '/api/v1/webhooks/secret').expect(200)).body.signing_secret;
  const bodyOf = (r: ReceivedRequest): Record<string, any> => JSON.parse(r.rawBody.toString('utf8'));

  /** The standardwebhooks library (not ours) verifies the delivery exactly as a receiver would. */
  const verifyStandard = (secret: string, r: ReceivedRequest): unknown =>
    new StandardWebhook(secret).verify(r.rawBody.toString('utf8'), {
      'webhook-id': String(r.headers['webhook-id']),
      'webhook-timestamp': String(r.headers['webhook-timestamp']),
      'webhook-signature': String(r.headers['webhook-signature']),
    });

  describe('subscriptions', () => {
    it.each([[[]], [['upload.exploded']], [['upload.created', 'upload.created']], ['upload.created'], [[5]]])(
      'should refuse events %j with 400 bad_request, on create and update',
      async (events) => {
        const a = await account();
        expectError(
          await asSession(a.session, 'post', '/api/v1/webhooks').send({
            url: 'http://127.0.0.1:9/x',
            events,
          }),
          400,
          'bad_request',
        );
        const made = await asSession(a.session, 'post', '/api/v1/webhooks')
          .send({ url: 'http://127.0.0.1:9/x' })
          .expect(201);
        expectError(
          await asSession(a.session, 'patch', `/api/v1/webhooks/${made.body.webhook.id}`).send({ events }),
          400,
          'bad_request',
        );
      },
    );

    it('should keep events in the documented order and change them with PATCH', async () => {
      const a = await account();
      const made = await asSession(a.session, 'post', '/api/v1/webhooks')
        .send({ url: 'http://127.0.0.1:9/x', events: ['api_key.revoked', 'upload.deleted'] })
        .expect(201);
      expect(made.body.webhook.events).toEqual(['upload.deleted', 'api_key.revoked']);
      const patched = await asSession(a.session, 'patch', `/api/v1/webhooks/${made.body.webhook.id}`)
        .send({ events: ['upload.created'] })
        .expect(200);
      expect(patched.body.webhook.events).toEqual(['upload.created']);
    });
  });

  it('should send each subscribed event, signed both ways, and verified by the standardwebhooks library', async () => {
    const a = await account();
    const r = await receiver();
    await asSession(a.session, 'post', '/api/v1/webhooks')
      .send({
        url: r.url(),
        events: ['upload.created', 'upload.deleted', 'api_key.created', 'api_key.revoked'],
      })
      .expect(201);
    const secret = await secretOf(a);

    const first = await upload(a);
    const second = await upload(a);
    const third = await upload(a);
    await t.http
      .delete(`/api/v1/uploads/${first.filename}`)
      .set(...bearer(a.key.token))
      .expect(200);
    await t.http.post(second.delete_url.replace('http://upload.test', '')).expect(200);
    const admin = await makeKey(t, await makeUser(t, 'admin'));
    await t.http
      .delete(`/api/v1/admin/uploads/${third.filename}`)
      .set(...bearer(admin.token))
      .expect(200);
    const made = await asSession(a.session, 'post', '/api/v1/keys')
      .send({ label: 'ci', scopes: ['upload'] })
      .expect(201);
    await asSession(a.session, 'delete', `/api/v1/keys/${made.body.key.id}`).expect(200);

    await waitFor('eight deliveries', () => r.requests.length >= 8);
    const bodies = r.requests.map(bodyOf);
    expect(bodies.map((b) => b.event).sort()).toEqual(
      [
        'api_key.created',
        'api_key.revoked',
        'upload.created',
        'upload.created',
        'upload.created',
        'upload.deleted',
        'upload.deleted',
        'upload.deleted',
      ].sort(),
    );
    const deleted = bodies.filter((b) => b.event === 'upload.deleted');
    expect(Object.fromEntries(deleted.map((b) => [b.upload.filename, b.reason]))).toEqual({
      [first.filename]: 'owner',
      [second.filename]: 'delete_link',
      [third.filename]: 'admin',
    });
    expect(deleted.find((b) => b.upload.filename === first.filename)).toEqual({
      event: 'upload.deleted',
      upload: {
        filename: first.filename,
        url: first.url,
        size: first.size,
        mime: first.mime,
        width: first.width,
        height: first.height,
        hash_sha256: first.hash_sha256,
      },
      reason: 'owner',
      timestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
    });
    expect(bodies.find((b) => b.event === 'api_key.created')).toEqual({
      event: 'api_key.created',
      api_key: { id: made.body.key.id, prefix: made.body.key.prefix, label: 'ci', scopes: ['upload'] },
      timestamp: expect.any(String),
    });
    for (const req of r.requests) {
      expect(req.headers['webhook-id']).toBe(req.headers['x-fixitfy-delivery']);
      expect(req.headers['webhook-id']).toMatch(UUID);
      expect(req.headers['webhook-timestamp']).toBe(req.headers['x-fixitfy-timestamp']);
      expect(req.headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
      expect(verifyStandard(secret, req)).toEqual(bodyOf(req));
      // A signature with another secret does not verify.
      expect(() => verifyStandard(`whsec_${'ab'.repeat(32)}`, req)).toThrow();
    }
    // The admin's own key creation went to no endpoint of the owner.
    expect(bodies.filter((b) => b.event === 'api_key.created')).toHaveLength(1);
  });

  it('should send only upload.created to an endpoint with the default subscription', async () => {
    const a = await account();
    const r = await receiver();
    await asSession(a.session, 'post', '/api/v1/webhooks').send({ url: r.url() }).expect(201);
    const up = await upload(a);
    await t.http
      .delete(`/api/v1/uploads/${up.filename}`)
      .set(...bearer(a.key.token))
      .expect(200);
    await waitFor('the delivery', () => r.requests.length >= 1);
    await new Promise((res) => setTimeout(res, 500));
    expect(r.requests.map((q) => bodyOf(q).event)).toEqual(['upload.created']);
    const rows = await sql(
      t,
      `select event from outbox_events e join webhooks w on w.id = e.webhook_id
      where w.user_id = $1`,
      [a.user.id],
    );
    expect(rows.map((row) => row.event)).toEqual(['upload.created']);
  });

  it('should write no upload.deleted event when the delete does not happen (second delete: 404)', async () => {
    const a = await account();
    const made = await asSession(a.session, 'post', '/api/v1/webhooks')
      .send({ url: 'http://127.0.0.1:9/x', events: ['upload.deleted'], enabled: true })
      .expect(201);
    const up = await upload(a);
    await t.http
      .delete(`/api/v1/uploads/${up.filename}`)
      .set(...bearer(a.key.token))
      .expect(200);
    expectError(
      await t.http.delete(`/api/v1/uploads/${up.filename}`).set(...bearer(a.key.token)),
      404,
      'not_found',
    );
    const rows = await sql(t, 'select event from outbox_events where webhook_id = $1', [
      made.body.webhook.id,
    ]);
    expect(rows).toHaveLength(1);
  });

  describe('redeliver', () => {
    it('should send a past delivery again now with the same delivery id and body, recorded as one more attempt', async () => {
      const a = await account();
      const r = await receiver();
      const hook = (await asSession(a.session, 'post', '/api/v1/webhooks').send({ url: r.url() }).expect(201))
        .body.webhook;
      const secret = await secretOf(a);
      await upload(a);
      await waitFor('the delivery', () => r.requests.length === 1);
      const list = await waitFor('the recorded attempt', async () => {
        const res = await asSession(a.session, 'get', `/api/v1/webhooks/${hook.id}/deliveries`).expect(200);
        return res.body.deliveries.length === 1 ? res.body.deliveries : null;
      });
      const deliveryId = list[0].delivery_id as string;

      const res = await asSession(
        a.session,
        'post',
        `/api/v1/webhooks/${hook.id}/deliveries/${deliveryId}/redeliver`,
      ).expect(200);
      expect(res.body.ok).toBe(true);
      expect(res.body.delivery).toMatchObject({
        delivery_id: deliveryId,
        event: 'upload.created',
        attempt: 2,
        succeeded: true,
        status_code: 200,
      });
      expect(r.requests).toHaveLength(2);
      expect(r.requests[1].headers['x-fixitfy-delivery']).toBe(deliveryId);
      expect(r.requests[1].headers['webhook-id']).toBe(deliveryId);
      expect(r.requests[1].rawBody.equals(r.requests[0].rawBody)).toBe(true);
      expect(verifyStandard(secret, r.requests[1])).toEqual(bodyOf(r.requests[0]));
    });

    it('should redeliver a ping under its id', async () => {
      const a = await account();
      const r = await receiver();
      const hook = (await asSession(a.session, 'post', '/api/v1/webhooks').send({ url: r.url() }).expect(201))
        .body.webhook;
      const ping = await asSession(a.session, 'post', `/api/v1/webhooks/${hook.id}/test`).expect(200);
      const again = await asSession(
        a.session,
        'post',
        `/api/v1/webhooks/${hook.id}/deliveries/${ping.body.delivery.delivery_id}/redeliver`,
      ).expect(200);
      expect(again.body.delivery).toMatchObject({
        event: 'ping',
        attempt: 2,
        delivery_id: ping.body.delivery.delivery_id,
      });
      expect(r.requests.map((q) => q.headers['webhook-id'])).toEqual([
        ping.body.delivery.delivery_id,
        ping.body.delivery.delivery_id,
      ]);
    });

    it('should answer 404 for an unknown delivery, another user’s webhook, and a malformed id', async () => {
      const a = await account();
      const b = await account();
      const hook = (
        await asSession(a.session, 'post', '/api/v1/webhooks')
          .send({ url: 'http://127.0.0.1:9/x' })
          .expect(201)
      ).body.webhook;
      const unknown = '3f9a8c1e-0000-4000-8000-000000000000';
      expectError(
        await asSession(a.session, 'post', `/api/v1/webhooks/${hook.id}/deliveries/${unknown}/redeliver`),
        404,
        'not_found',
      );
      expectError(
        await asSession(b.session, 'post', `/api/v1/webhooks/${hook.id}/deliveries/${unknown}/redeliver`),
        404,
        'not_found',
      );
      // A malformed id names no resource either: 404, as for every other id (IdParam).
      expectError(
        await asSession(a.session, 'post', `/api/v1/webhooks/${hook.id}/deliveries/nope/redeliver`),
        404,
        'not_found',
      );
      expectError(
        await asSession(a.session, 'post', `/api/v1/webhooks/nope/deliveries/${unknown}/redeliver`),
        404,
        'not_found',
      );
      expectError(
        await t.http
          .post(`/api/v1/webhooks/${hook.id}/deliveries/${unknown}/redeliver`)
          .set(...bearer(a.key.token)),
        403,
        'forbidden',
      );
    });
  });
});

describe('A redelivery while the event is still being retried (e2e)', () => {
  let t: TestApp;
  let r: Receiver;

  beforeAll(async () => {
    // The first retry comes 3–4 s after the failed attempt (20 % jitter): the redelivery below goes before it.
    t = await createTestApp({
      env: { ALLOW_PRIVATE_WEBHOOKS: 'true', WEBHOOK_TIMEOUT_MS: '1000', WEBHOOK_RETRY_BASE_MS: '4000' },
    });
    // The endpoint fails the first request, then recovers.
    r = await Receiver.start((n, _req, res) => {
      res.statusCode = n === 0 ? 500 : 200;
      res.end();
    });
  });
  afterAll(async () => {
    await t.close();
    await r.close();
  });

  it('should settle the event when it succeeds: the scheduled retry sends nothing, and no two attempts share a number', async () => {
    const user = await makeUser(t);
    const session = await login(t, user);
    const key = await makeKey(t, user);
    const asSession = (method: 'get' | 'post', path: string) =>
      t.http[method](path).set('Cookie', session.cookie).set('X-CSRF-Token', session.csrf);
    const hook = (await asSession('post', '/api/v1/webhooks').send({ url: r.url() }).expect(201)).body
      .webhook;
    await t.http
      .post('/api/v1/upload')
      .set(...bearer(key.token))
      .attach('file', await png(7777), 'a.png')
      .expect(200);
    const failed = await waitFor('the failed first attempt', async () => {
      const res = await asSession('get', `/api/v1/webhooks/${hook.id}/deliveries`).expect(200);
      return res.body.deliveries.length === 1 ? res.body.deliveries[0] : null;
    });
    expect(failed).toMatchObject({ attempt: 1, succeeded: false });

    const again = await asSession(
      'post',
      `/api/v1/webhooks/${hook.id}/deliveries/${failed.delivery_id}/redeliver`,
    ).expect(200);
    expect(again.body.delivery).toMatchObject({ attempt: 2, succeeded: true });
    const [event] = await sql(t, 'select delivered_at, attempts from outbox_events where id = $1', [
      failed.delivery_id,
    ]);
    expect(event.delivered_at).not.toBeNull();
    expect(event.attempts).toBe(2);

    // Past the time the scheduled retry was due: it found the event delivered and sent nothing.
    await new Promise((resolve) => setTimeout(resolve, 6000));
    expect(r.requests).toHaveLength(2);
    const list = await asSession('get', `/api/v1/webhooks/${hook.id}/deliveries`).expect(200);
    expect(list.body.deliveries.map((d: { attempt: number }) => d.attempt).sort()).toEqual([1, 2]);
  });
});

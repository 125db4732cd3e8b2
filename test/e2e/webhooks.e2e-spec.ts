import { expectError } from '../setup/envelope';
import { Queue } from 'bullmq';
import Redis from 'ioredis';
import { HostResolver } from '../../src/modules/webhooks/host-resolver';
import { OutboxRelay } from '../../src/modules/webhooks/outbox-relay.processor';
import { bullPrefix, WEBHOOK_DELIVERY_QUEUE } from '../../src/modules/webhooks/queues';
import { WebhookDeliveryProcessor } from '../../src/modules/webhooks/delivery.processor';
import { WebhookDeliveryService } from '../../src/modules/webhooks/webhook-delivery.service';
import { WebhookQueue } from '../../src/modules/webhooks/webhook-queue';
import { png } from '../fixtures/sample-images';
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
import { Receiver, verifyPublished } from './webhooks-receiver';
import { sql } from '../setup/db';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

interface Account {
  user: TestUser;
  session: TestSession;
  key: TestKey;
}

let seed = 1000;

async function account(t: TestApp): Promise<Account> {
  const user = await makeUser(t);
  return { user, session: await login(t, user), key: await makeKey(t, user) };
}

function asSession(t: TestApp, s: TestSession, method: 'get' | 'post' | 'patch' | 'delete', path: string) {
  return t.http[method](path).set('Cookie', s.cookie).set('X-CSRF-Token', s.csrf);
}

async function addWebhook(
  t: TestApp,
  a: Account,
  url: string,
  enabled?: boolean,
): Promise<{ id: string; url: string }> {
  const res = await asSession(t, a.session, 'post', '/api/v1/webhooks')
    .send(enabled === undefined ? { url } : { url, enabled })
    .expect(201);
  return res.body.webhook;
}

async function secretOf(t: TestApp, a: Account): Promise<string> {
  return (await asSession(t, a.session, 'get', '/api/v1/webhooks/secret').expect(200)).body.signing_secret;
}

async function upload(t: TestApp, a: Account, bytes?: Buffer): Promise<Record<string, any>> {
  const res = await t.http
    .post('/api/v1/upload')
    .set(...bearer(a.key.token))
    .attach('file', bytes ?? (await png(seed++)), 'a.png')
    .expect(200);
  return res.body;
}

async function outbox(t: TestApp, webhookId: string): Promise<Record<string, any>[]> {
  return sql(t, 'select * from outbox_events where webhook_id = $1 order by created_at', [webhookId]);
}

async function attempts(t: TestApp, a: Account, webhookId: string): Promise<Record<string, any>[]> {
  const res = await asSession(
    t,
    a.session,
    'get',
    `/api/v1/webhooks/${webhookId}/deliveries?limit=100`,
  ).expect(200);
  return res.body.deliveries;
}

async function webhookState(t: TestApp, a: Account, id: string): Promise<Record<string, any>> {
  const res = await asSession(t, a.session, 'get', '/api/v1/webhooks').expect(200);
  return res.body.webhooks.find((w: { id: string }) => w.id === id);
}

describe('Webhooks (e2e)', () => {
  let t: TestApp;
  const receivers: Receiver[] = [];

  async function receiver(handler?: Parameters<typeof Receiver.start>[0]): Promise<Receiver> {
    const r = await Receiver.start(handler);
    receivers.push(r);
    return r;
  }

  beforeAll(async () => {
    t = await createTestApp({
      env: {
        ALLOW_PRIVATE_WEBHOOKS: 'true',
        WEBHOOK_TIMEOUT_MS: '400',
        WEBHOOK_RETRY_BASE_MS: '10',
        WEBHOOK_MAX_ATTEMPTS: '8',
      },
    });
  });
  afterAll(async () => {
    await t.close();
    await Promise.all(receivers.map((r) => r.close()));
  });

  describe('delivery', () => {
    it('should POST one signed upload.created per upload that the published Node snippet verifies', async () => {
      const a = await account(t);
      const r = await receiver();
      const hook = await addWebhook(t, a, r.url('/hooks/fixitfy?src=test'));
      const secret = await secretOf(t, a);
      const before = Math.floor(Date.now() / 1000);
      const up = await upload(t, a);

      await waitFor('the delivery', () => r.requests.length === 1);
      const req = r.requests[0];
      expect(req.method).toBe('POST');
      expect(req.path).toBe('/hooks/fixitfy?src=test');
      expect(req.headers['content-type']).toBe('application/json');
      expect(req.headers['x-fixitfy-event']).toBe('upload.created');
      expect(req.headers['x-fixitfy-signature']).toMatch(/^sha256=[0-9a-f]{64}$/);
      expect(req.headers['x-fixitfy-delivery']).toMatch(UUID);
      const ts = Number(req.headers['x-fixitfy-timestamp']);
      expect(ts).toBeGreaterThanOrEqual(before - 1);
      expect(ts).toBeLessThanOrEqual(Math.floor(Date.now() / 1000) + 1);
      expect(verifyPublished(req, req.rawBody, secret)).toBe(true);

      const body = JSON.parse(req.rawBody.toString('utf8'));
      expect(Object.keys(body)).toEqual(['event', 'upload', 'timestamp']);
      expect(body.event).toBe('upload.created');
      expect(body.upload).toEqual({
        filename: up.filename,
        url: up.url,
        size: up.size,
        mime: up.mime,
        width: up.width,
        height: up.height,
        hash_sha256: up.hash_sha256,
      });
      expect(body.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

      // Exactly one: the outbox row is done and nothing else was sent.
      await waitFor(
        'the event to be marked delivered',
        async () => (await outbox(t, hook.id))[0]?.delivered_at,
      );
      expect(await outbox(t, hook.id)).toHaveLength(1);
      expect(r.requests).toHaveLength(1);
      const [attempt] = await attempts(t, a, hook.id);
      expect(attempt).toEqual({
        id: expect.stringMatching(UUID),
        delivery_id: req.headers['x-fixitfy-delivery'],
        event: 'upload.created',
        attempt: 1,
        status_code: 200,
        duration_ms: expect.any(Number),
        error: null,
        succeeded: true,
        created_at: expect.stringMatching(/Z$/),
      });
      const state = await webhookState(t, a, hook.id);
      expect(state.last_success_at).not.toBeNull();
      expect(state.failure_count).toBe(0);
    });

    it('should retry a receiver that fails twice and keep one delivery id over the 3 attempts', async () => {
      const a = await account(t);
      const r = await receiver((n, _req, res) => {
        res.statusCode = n < 2 ? 503 : 204;
        res.end();
      });
      const hook = await addWebhook(t, a, r.url());
      await upload(t, a);

      await waitFor('three attempts', () => r.requests.length === 3);
      await waitFor(
        'the event to be marked delivered',
        async () => (await outbox(t, hook.id))[0]?.delivered_at,
      );
      expect(new Set(r.requests.map((q) => q.headers['x-fixitfy-delivery'])).size).toBe(1);
      expect(r.requests.map((q) => q.rawBody.toString())).toEqual(
        Array(3).fill(r.requests[0].rawBody.toString()),
      );
      const list = await attempts(t, a, hook.id);
      expect(list.map((d) => [d.attempt, d.status_code, d.succeeded])).toEqual([
        [3, 204, true],
        [2, 503, false],
        [1, 503, false],
      ]);
      expect(list.every((d) => d.delivery_id === r.requests[0].headers['x-fixitfy-delivery'])).toBe(true);
      expect(list[1].error).toMatch(/^HTTP 503/);
      expect((await webhookState(t, a, hook.id)).failure_count).toBe(0);
      expect(r.requests).toHaveLength(3);
    });

    it('should record a receiver that answers after the timeout as a timed-out attempt', async () => {
      const a = await account(t);
      const r = await receiver((_n, _req, res) => {
        setTimeout(() => res.end('late'), 1500).unref();
      });
      const hook = await addWebhook(t, a, r.url());
      await upload(t, a);

      const [first] = await waitFor('a recorded attempt', async () => {
        const list = await attempts(t, a, hook.id);
        return list.length > 0 ? list.slice(-1) : null;
      });
      expect(first).toMatchObject({ attempt: 1, status_code: null, succeeded: false });
      expect(first.error).toMatch(/Timed out after 400 ms/);
      expect(first.duration_ms).toBeGreaterThanOrEqual(350);
      expect(first.duration_ms).toBeLessThan(1500);
      // Stop the retries of this test.
      await asSession(t, a.session, 'delete', `/api/v1/webhooks/${hook.id}`).expect(200);
    });

    it('should record a 500 with its status, retry with backoff, and leave the delivery failed after the last attempt', async () => {
      const a = await account(t);
      const r = await receiver((_n, _req, res) => {
        res.statusCode = 500;
        res.end('boom');
      });
      const hook = await addWebhook(t, a, r.url());
      await upload(t, a);

      const [event] = await waitFor('the delivery to be given up', async () => {
        const rows = await outbox(t, hook.id);
        return rows[0]?.failed_at ? rows : null;
      });
      expect(event.attempts).toBe(8);
      expect(event.delivered_at).toBeNull();
      const list = await attempts(t, a, hook.id);
      expect(list.map((d) => d.attempt)).toEqual([8, 7, 6, 5, 4, 3, 2, 1]);
      expect(list.every((d) => d.status_code === 500 && !d.succeeded && d.error === 'HTTP 500: boom')).toBe(
        true,
      );
      expect(r.requests).toHaveLength(8);
      const state = await webhookState(t, a, hook.id);
      expect(state).toMatchObject({ enabled: true, failure_count: 8 });
      expect(state.last_failure_at).not.toBeNull();
      expect(state.last_success_at).toBeNull();
    });

    it('should send nothing for a dedupe hit', async () => {
      const a = await account(t);
      const r = await receiver();
      const hook = await addWebhook(t, a, r.url());
      const bytes = await png(seed++);
      await upload(t, a, bytes);
      const again = await upload(t, a, bytes);
      expect(again.deduplicated).toBe(true);

      await waitFor('the first delivery', async () => (await outbox(t, hook.id))[0]?.delivered_at);
      expect(await outbox(t, hook.id)).toHaveLength(1);
      expect(r.requests).toHaveLength(1);
    });

    it('should deliver uploads made through the website session', async () => {
      const a = await account(t);
      const r = await receiver();
      await addWebhook(t, a, r.url());
      const secret = await secretOf(t, a);
      const res = await asSession(t, a.session, 'post', '/api/v1/upload')
        .attach('file', await png(seed++), 'a.png')
        .expect(200);

      await waitFor('the delivery', () => r.requests.length === 1);
      const body = JSON.parse(r.requests[0].rawBody.toString());
      expect(body.upload.filename).toBe(res.body.filename);
      expect(verifyPublished(r.requests[0], r.requests[0].rawBody, secret)).toBe(true);
    });

    it("should deliver only to the owner's enabled endpoints", async () => {
      const a = await account(t);
      const other = await account(t);
      const [on, off, foreign] = [await receiver(), await receiver(), await receiver()];
      const onHook = await addWebhook(t, a, on.url());
      const offHook = await addWebhook(t, a, off.url(), false);
      const foreignHook = await addWebhook(t, other, foreign.url());
      await upload(t, a);

      await waitFor('the delivery', async () => (await outbox(t, onHook.id))[0]?.delivered_at);
      expect(on.requests).toHaveLength(1);
      expect(await outbox(t, offHook.id)).toHaveLength(0);
      expect(await outbox(t, foreignHook.id)).toHaveLength(0);
      expect(off.requests).toHaveLength(0);
      expect(foreign.requests).toHaveLength(0);
    });

    it('should sign with the new secret after a rotation', async () => {
      const a = await account(t);
      const r = await receiver();
      await addWebhook(t, a, r.url());
      const old = await secretOf(t, a);
      expect(await secretOf(t, a)).toBe(old);
      const rotated = await asSession(t, a.session, 'post', '/api/v1/webhooks/secret/rotate').expect(200);
      const fresh = rotated.body.signing_secret;
      expect(rotated.body).toEqual({
        ok: true,
        signing_secret: expect.stringMatching(/^whsec_[0-9a-f]{64}$/),
      });
      expect(fresh).not.toBe(old);
      expect(await secretOf(t, a)).toBe(fresh);

      await upload(t, a);
      await waitFor('the delivery', () => r.requests.length === 1);
      expect(verifyPublished(r.requests[0], r.requests[0].rawBody, fresh)).toBe(true);
      expect(verifyPublished(r.requests[0], r.requests[0].rawBody, old)).toBe(false);
    });

    it('should keep the signing secret encrypted at rest', async () => {
      const a = await account(t);
      const secret = await secretOf(t, a);
      const [row] = await sql(t, 'select sealed from webhook_secrets where user_id = $1', [a.user.id]);
      expect(row.sealed).toMatch(/^v1\./);
      expect(row.sealed).not.toContain(secret.slice(6));
    });

    it('should deliver an event committed while Redis was unreachable, once it is back', async () => {
      const a = await account(t);
      const r = await receiver();
      const hook = await addWebhook(t, a, r.url());
      // The relay's queue pointed at a Redis that refuses connections.
      const dead = new Queue(WEBHOOK_DELIVERY_QUEUE, {
        connection: new Redis('redis://127.0.0.1:1', { maxRetriesPerRequest: 1, retryStrategy: () => null }),
        prefix: bullPrefix(t.config),
      });
      dead.on('error', () => undefined);
      const queue = t.app.get(WebhookQueue);
      let failures = 0;
      const spy = jest.spyOn(queue, 'addBulk').mockImplementation(async (ids) => {
        try {
          await dead.addBulk(
            ids.map((id) => ({ name: 'deliver', data: { eventId: id }, opts: { jobId: id } })),
          );
        } catch (err) {
          failures++;
          throw err;
        }
      });
      try {
        await upload(t, a);
        // The upload committed and its event waits in the outbox through more than one relay pass.
        await waitFor('two failed relay passes', () => failures >= 2);
        const [pending] = await outbox(t, hook.id);
        expect(pending.relayed_at).toBeNull();
        expect(r.requests).toHaveLength(0);
      } finally {
        spy.mockRestore();
        await dead.close().catch(() => undefined);
      }
      // Redis is back: the next poll relays it.
      await waitFor('the delivery after Redis came back', () => r.requests.length === 1);
      await waitFor(
        'the event to be marked delivered',
        async () => (await outbox(t, hook.id))[0]?.delivered_at,
      );
      expect(r.requests).toHaveLength(1);
    });

    it('should not deliver twice when an event is relayed again', async () => {
      const a = await account(t);
      const r = await receiver();
      const hook = await addWebhook(t, a, r.url());
      await upload(t, a);
      const [event] = await waitFor('the delivery', async () => {
        const rows = await outbox(t, hook.id);
        return rows[0]?.delivered_at ? rows : null;
      });

      // As if the relay crashed between the enqueue and marking the row: it enqueues the event again.
      await sql(t, 'update outbox_events set relayed_at = null where id = $1', [event.id]);
      t.app.get(OutboxRelay).kick();
      await waitFor('the second relay', async () => (await outbox(t, hook.id))[0]?.relayed_at);
      // And a worker that got the job anyway skips it.
      expect(await t.app.get(WebhookDeliveryService).deliver(event.id)).toEqual({ kind: 'done' });
      // A later event goes through the same queue after it.
      await upload(t, a);
      await waitFor('the second upload', () => r.requests.length === 2);
      await waitFor('both events delivered', async () =>
        (await outbox(t, hook.id)).every((e) => e.delivered_at),
      );
      expect(new Set(r.requests.map((q) => q.headers['x-fixitfy-delivery'])).size).toBe(2);
      expect((await outbox(t, hook.id)).map((e) => e.attempts)).toEqual([1, 1]);
    });

    it('should connect to the address its resolver checked, keeping the Host header (no second lookup)', async () => {
      const a = await account(t);
      const r = await receiver();
      const resolver = t.app.get(HostResolver);
      const spy = jest.spyOn(resolver, 'resolve').mockResolvedValue([{ address: '127.0.0.1', family: 4 }]);
      try {
        // .test never resolves in real DNS: the request can only have reached the receiver through the pinned address.
        const hook = await addWebhook(t, a, `http://hooks.fixitfy.test:${r.port}/in`);
        await upload(t, a);
        await waitFor('the delivery', async () => (await outbox(t, hook.id))[0]?.delivered_at);
        expect(r.requests[0].headers.host).toBe(`hooks.fixitfy.test:${r.port}`);
        expect(spy).toHaveBeenCalledWith('hooks.fixitfy.test');
      } finally {
        spy.mockRestore();
      }
    });

    it('should keep a burst of failures from disabling an endpoint that succeeded recently', async () => {
      const a = await account(t);
      const r = await receiver((_n, _req, res) => {
        res.statusCode = 502;
        res.end();
      });
      const hook = await addWebhook(t, a, r.url());
      // Far past the old 100-attempt rule, but the streak began a moment ago, not WEBHOOK_DISABLE_AFTER_DAYS ago.
      await sql(t, 'update webhooks set failure_count = 500 where id = $1', [hook.id]);
      await upload(t, a);

      const [event] = await waitFor('the event to be given up', async () => {
        const rows = await outbox(t, hook.id);
        return rows[0]?.failed_at ? rows : null;
      });
      expect(event.attempts).toBe(8);
      expect(await webhookState(t, a, hook.id)).toMatchObject({
        enabled: true,
        failure_count: 508,
        disabled_reason: null,
        disabled_at: null,
      });
    });
  });

  describe('management', () => {
    it('should create, list, update and delete endpoints with the documented shapes', async () => {
      const a = await account(t);
      const created = await asSession(t, a.session, 'post', '/api/v1/webhooks')
        .send({ url: 'http://127.0.0.1:9/a' })
        .expect(201);
      expect(created.body).toEqual({
        ok: true,
        webhook: {
          id: expect.stringMatching(UUID),
          url: 'http://127.0.0.1:9/a',
          enabled: true,
          // Additive (API.md Part 3): the default subscription.
          events: ['upload.created'],
          created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
          last_success_at: null,
          last_failure_at: null,
          failure_count: 0,
          disabled_reason: null,
          disabled_at: null,
        },
      });
      const id = created.body.webhook.id;
      const list = await asSession(t, a.session, 'get', '/api/v1/webhooks').expect(200);
      expect(list.body).toEqual({ ok: true, webhooks: [created.body.webhook] });

      const patched = await asSession(t, a.session, 'patch', `/api/v1/webhooks/${id}`)
        .send({ url: 'https://127.0.0.1:9/b', enabled: false })
        .expect(200);
      expect(patched.body.webhook).toMatchObject({
        id,
        url: 'https://127.0.0.1:9/b',
        enabled: false,
        disabled_reason: 'owner',
        disabled_at: expect.stringMatching(/Z$/),
      });

      await asSession(t, a.session, 'delete', `/api/v1/webhooks/${id}`).expect(200, {
        ok: true,
        deleted: id,
      });
      await asSession(t, a.session, 'delete', `/api/v1/webhooks/${id}`).expect(404);
      expect((await asSession(t, a.session, 'get', '/api/v1/webhooks').expect(200)).body.webhooks).toEqual(
        [],
      );
    });

    it('should audit creation, deletion and secret rotation, never with the URL path or the secret', async () => {
      const a = await account(t);
      const hook = await addWebhook(t, a, 'http://127.0.0.1:9/in/s3cr3t-path?token=abc');
      const rotated = await asSession(t, a.session, 'post', '/api/v1/webhooks/secret/rotate').expect(200);
      await asSession(t, a.session, 'delete', `/api/v1/webhooks/${hook.id}`).expect(200);
      const rows = await sql(
        t,
        `select action, target_type, target_id, metadata from audit_entries
          where actor_id = $1 and action like 'webhook.%' order by created_at, action`,
        [a.user.id],
      );
      expect(rows).toEqual([
        {
          action: 'webhook.created',
          target_type: 'webhook',
          target_id: hook.id,
          metadata: { origin: 'http://127.0.0.1:9', enabled: true, events: ['upload.created'] },
        },
        { action: 'webhook.secret_rotated', target_type: 'user', target_id: a.user.id, metadata: {} },
        {
          action: 'webhook.deleted',
          target_type: 'webhook',
          target_id: hook.id,
          metadata: { origin: 'http://127.0.0.1:9' },
        },
      ]);
      const dump = JSON.stringify(
        await sql(t, 'select * from audit_entries where actor_id = $1', [a.user.id]),
      );
      expect(dump).not.toContain('s3cr3t-path');
      expect(dump).not.toContain(rotated.body.signing_secret.slice(6));
    });

    it('should refuse an 11th endpoint with 409 conflict', async () => {
      const a = await account(t);
      for (let i = 0; i < 10; i++) {
        await addWebhook(t, a, `http://127.0.0.1:9/hook${i}`);
      }
      const res = await asSession(t, a.session, 'post', '/api/v1/webhooks')
        .send({ url: 'http://127.0.0.1:9/hook10' })
        .expect(409);
      expect(res.body).toMatchObject({ ok: false, code: 'conflict' });
      expect(
        (await asSession(t, a.session, 'get', '/api/v1/webhooks').expect(200)).body.webhooks,
      ).toHaveLength(10);
    });

    it.each([
      ['no url', {}],
      ['a number as url', { url: 42 }],
      ['an empty url', { url: '' }],
      ['a relative url', { url: 'not a url' }],
      ['an ftp url', { url: 'ftp://127.0.0.1/x' }],
      ['a string as enabled', { url: 'http://127.0.0.1/x', enabled: 'yes' }],
      ['an unknown field', { url: 'http://127.0.0.1/x', extra: 1 }],
      ['a url over 2048 characters', { url: `http://127.0.0.1/${'a'.repeat(2050)}` }],
      ['null as url', { url: null }],
      ['null as events', { url: 'http://127.0.0.1/x', events: null }],
      ['null as enabled', { url: 'http://127.0.0.1/x', enabled: null }],
    ])('should answer 400 bad_request to a body with %s', async (_what, body) => {
      const a = await account(t);
      const res = await asSession(t, a.session, 'post', '/api/v1/webhooks').send(body).expect(400);
      expect(res.body).toMatchObject({ ok: false, code: 'bad_request', error: expect.any(String) });
    });

    it("should answer 404 for someone else's webhook, an unknown id and a malformed id", async () => {
      const a = await account(t);
      const other = await account(t);
      const hook = await addWebhook(t, other, 'http://127.0.0.1:9/x');
      for (const id of [hook.id, '00000000-0000-4000-8000-000000000000', 'nope']) {
        await asSession(t, a.session, 'patch', `/api/v1/webhooks/${id}`).send({ enabled: false }).expect(404);
        await asSession(t, a.session, 'delete', `/api/v1/webhooks/${id}`).expect(404);
        await asSession(t, a.session, 'get', `/api/v1/webhooks/${id}/deliveries`).expect(404);
        const res = await asSession(t, a.session, 'post', `/api/v1/webhooks/${id}/test`).expect(404);
        expect(res.body).toMatchObject({ ok: false, code: 'not_found' });
      }
      expect((await webhookState(t, other, hook.id)).enabled).toBe(true);
    });

    it('should answer 400 to a bad PATCH body or deliveries query', async () => {
      const a = await account(t);
      const hook = await addWebhook(t, a, 'http://127.0.0.1:9/x');
      await asSession(t, a.session, 'patch', `/api/v1/webhooks/${hook.id}`)
        .send({ url: 'file:///etc/passwd' })
        .expect(400);
      await asSession(t, a.session, 'patch', `/api/v1/webhooks/${hook.id}`).send({ enabled: 1 }).expect(400);
      // null is not "left out": it must pass the field's rules (it reached the service and answered 500).
      for (const body of [{ url: null }, { events: null }, { enabled: null }]) {
        expectError(
          await asSession(t, a.session, 'patch', `/api/v1/webhooks/${hook.id}`).send(body),
          400,
          'bad_request',
        );
      }
      expect((await webhookState(t, a, hook.id)).enabled).toBe(true);
      await asSession(t, a.session, 'get', `/api/v1/webhooks/${hook.id}/deliveries?limit=0`).expect(400);
      await asSession(t, a.session, 'get', `/api/v1/webhooks/${hook.id}/deliveries?limit=101`).expect(400);
      await asSession(t, a.session, 'get', `/api/v1/webhooks/${hook.id}/deliveries?before=yesterday`).expect(
        400,
      );
    });

    it('should be for dashboard sessions only, with CSRF on changes', async () => {
      const a = await account(t);
      await t.http.get('/api/v1/webhooks').expect(401);
      const keyed = await t.http
        .get('/api/v1/webhooks/secret')
        .set(...bearer(a.key.token))
        .expect(403);
      expect(keyed.body.code).toBe('forbidden');
      await t.http
        .post('/api/v1/webhooks')
        .set(...bearer(a.key.token))
        .send({ url: 'http://127.0.0.1:9/' })
        .expect(403);
      const noCsrf = await t.http
        .post('/api/v1/webhooks')
        .set('Cookie', a.session.cookie)
        .send({ url: 'http://127.0.0.1:9/' });
      expect(noCsrf.status).toBe(403);
      await t.http.post('/api/v1/webhooks/secret/rotate').set('Cookie', a.session.cookie).expect(403);
    });

    it('should send a signed ping from the test endpoint and record it', async () => {
      const a = await account(t);
      const r = await receiver();
      const hook = await addWebhook(t, a, r.url());
      const secret = await secretOf(t, a);
      const res = await asSession(t, a.session, 'post', `/api/v1/webhooks/${hook.id}/test`).expect(200);
      expect(res.body).toEqual({
        ok: true,
        delivery: expect.objectContaining({
          event: 'ping',
          attempt: 1,
          status_code: 200,
          succeeded: true,
          error: null,
        }),
      });
      expect(r.requests).toHaveLength(1);
      const req = r.requests[0];
      expect(req.headers['x-fixitfy-event']).toBe('ping');
      expect(req.headers['x-fixitfy-delivery']).toBe(res.body.delivery.delivery_id);
      expect(verifyPublished(req, req.rawBody, secret)).toBe(true);
      expect(JSON.parse(req.rawBody.toString())).toMatchObject({ event: 'ping', webhook: { id: hook.id } });
      expect((await attempts(t, a, hook.id))[0]).toEqual(res.body.delivery);
    });

    it('should record a failed ping with its reason', async () => {
      const a = await account(t);
      const r = await receiver();
      await r.close();
      const hook = await addWebhook(t, a, r.url());
      const res = await asSession(t, a.session, 'post', `/api/v1/webhooks/${hook.id}/test`).expect(200);
      expect(res.body.delivery).toMatchObject({
        succeeded: false,
        status_code: null,
        error: 'Connection failed: ECONNREFUSED.',
      });
    });

    it('should page deliveries newest first without skipping or repeating, ties included', async () => {
      const a = await account(t);
      const hook = await addWebhook(t, a, 'http://127.0.0.1:9/x');
      const ts = new Date('2026-06-01T12:00:00.000Z');
      for (let i = 0; i < 23; i++) {
        await sql(
          t,
          `insert into webhook_deliveries (id, webhook_id, delivery_id, event, attempt, status_code, duration_ms, error, succeeded, created_at)
             values (gen_random_uuid(), $1, gen_random_uuid(), 'upload.created', 1, 200, 5, null, true, $2)`,
          [hook.id, i < 15 ? ts : new Date(ts.getTime() - 1000 * (i - 14))],
        );
      }
      const seen: string[] = [];
      let before: string | null = null;
      let pages = 0;
      do {
        const res: { body: any } = await asSession(
          t,
          a.session,
          'get',
          `/api/v1/webhooks/${hook.id}/deliveries`,
        )
          .query({ limit: 4, ...(before ? { before } : {}) })
          .expect(200);
        expect(res.body.count).toBe(res.body.deliveries.length);
        seen.push(...res.body.deliveries.map((d: { id: string }) => d.id));
        before = res.body.next_before;
        pages++;
      } while (before && pages < 20);
      expect(seen).toHaveLength(23);
      expect(new Set(seen).size).toBe(23);
    });
  });

  describe('process roles', () => {
    it('should relay but not deliver with APP_ROLE=api, and deliver from an APP_ROLE=worker instance', async () => {
      const env = { ALLOW_PRIVATE_WEBHOOKS: 'true', WEBHOOK_RETRY_BASE_MS: '10' };
      const api = await createTestApp({ env: { ...env, APP_ROLE: 'api' } });
      let worker: TestApp | undefined;
      try {
        // No BullMQ worker exists in an api-only process.
        expect(Reflect.get(api.app.get(WebhookDeliveryProcessor), 'worker')).toBeNull();
        const a = await account(api);
        const r = await receiver();
        const hook = await addWebhook(api, a, r.url());
        await upload(api, a);
        const [event] = await waitFor('the relay', async () => {
          const rows = await outbox(api, hook.id);
          return rows[0]?.relayed_at ? rows : null;
        });
        expect(event.attempts).toBe(0);
        expect(r.requests).toHaveLength(0);

        worker = await createTestApp({ env: { ...env, APP_ROLE: 'worker' }, shareWith: api });
        await waitFor('the delivery by the worker instance', () => r.requests.length === 1);
        await waitFor(
          'the event to be marked delivered',
          async () => (await outbox(api, hook.id))[0]?.delivered_at,
        );
      } finally {
        await worker?.close();
        await api.close();
      }
    });
  });
});

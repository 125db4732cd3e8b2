import { Clock } from '../../src/common/time/clock';
import { WebhookDeliveryService } from '../../src/modules/webhooks/webhook-delivery.service';
import { WebhookQueue } from '../../src/modules/webhooks/webhook-queue';
import { png } from '../fixtures/sample-images';
import { sql } from '../setup/db';
import { FakeClock } from '../setup/fake-clock';
import { bearer, login, makeKey, makeUser, type TestKey, type TestSession } from '../setup/factories';
import { createTestApp, type TestApp } from '../setup/test-app';
import { waitFor } from '../setup/wait';
import { Receiver } from './webhooks-receiver';

const DAY = 24 * 3600 * 1000;
let seed = 70_000;

interface Owner {
  userId: string;
  session: TestSession;
  key: TestKey;
}

async function owner(t: TestApp): Promise<Owner> {
  const user = await makeUser(t);
  return { userId: user.id, session: await login(t, user), key: await makeKey(t, user) };
}

function asSession(t: TestApp, o: Owner, method: 'get' | 'post' | 'patch' | 'delete', path: string) {
  return t.http[method](path).set('Cookie', o.session.cookie).set('X-CSRF-Token', o.session.csrf);
}

async function addWebhook(t: TestApp, o: Owner, url: string): Promise<string> {
  return (await asSession(t, o, 'post', '/api/v1/webhooks').send({ url }).expect(201)).body.webhook.id;
}

async function upload(t: TestApp, o: Owner): Promise<string> {
  const res = await t.http
    .post('/api/v1/upload')
    .set(...bearer(o.key.token))
    .attach('file', await png(seed++), 'a.png')
    .expect(200);
  return res.body.filename;
}

async function webhook(t: TestApp, o: Owner, id: string): Promise<Record<string, any>> {
  const res = await asSession(t, o, 'get', '/api/v1/webhooks').expect(200);
  return res.body.webhooks.find((w: { id: string }) => w.id === id);
}

async function eventOf(t: TestApp, hookId: string, filename: string): Promise<Record<string, any>> {
  const [row] = await sql(t, `select * from outbox_events where webhook_id = $1 and body like $2`, [
    hookId,
    `%${filename}%`,
  ]);
  return row;
}

function sentFilenames(r: Receiver): string[] {
  return r.requests.map((q) => JSON.parse(q.rawBody.toString('utf8')).upload.filename);
}

describe('Webhook delivery rules (e2e)', () => {
  const receivers: Receiver[] = [];
  async function receiver(handler?: Parameters<typeof Receiver.start>[0]): Promise<Receiver> {
    const r = await Receiver.start(handler);
    receivers.push(r);
    return r;
  }
  afterAll(async () => {
    await Promise.all(receivers.map((r) => r.close()));
  });

  describe('auto-disable', () => {
    let t: TestApp;
    const clock = new FakeClock();

    beforeAll(async () => {
      t = await createTestApp({
        env: {
          ALLOW_PRIVATE_WEBHOOKS: 'true',
          WEBHOOK_RETRY_BASE_MS: '20',
          WEBHOOK_RETRY_MAX_DELAY_MS: '300',
          WEBHOOK_MAX_ATTEMPTS: '100',
          WEBHOOK_DISABLE_MIN_FAILURES: '3',
        },
        overrides: [{ provide: Clock, useValue: clock }],
      });
    });
    afterAll(() => t.close());

    it('should disable only after days without a success, keep scheduled retries, hold new events and send them on re-enable', async () => {
      const o = await owner(t);
      let down = true;
      const r = await receiver((_n, _req, res) => {
        res.statusCode = down ? 500 : 204;
        res.end();
      });
      const hookId = await addWebhook(t, o, r.url());
      const first = await upload(t, o);

      // Many failures within minutes: still enabled.
      await waitFor('five failed attempts', () => r.requests.length >= 5);
      expect(await webhook(t, o, hookId)).toMatchObject({ enabled: true, disabled_reason: null });

      // Three days later, still failing: the next failure disables it.
      clock.advance(3 * DAY + 60_000);
      const disabled = await waitFor('the endpoint to be disabled', async () => {
        const w = await webhook(t, o, hookId);
        return w.enabled ? null : w;
      });
      expect(disabled).toMatchObject({
        enabled: false,
        disabled_reason: 'failing',
        disabled_at: new Date(clock.now()).toISOString(),
      });
      const audit = await sql(
        t,
        `select action, actor_id, target_type, target_id, metadata from audit_entries where action = 'webhook.disabled'
           and target_id = $1`,
        [hookId],
      );
      expect(audit).toEqual([
        {
          action: 'webhook.disabled',
          actor_id: null,
          target_type: 'webhook',
          target_id: hookId,
          metadata: expect.objectContaining({
            owner_id: o.userId,
            reason: 'failing',
            origin: new URL(r.url()).origin,
          }),
        },
      ]);

      // The delivery already scheduled is not cut short: it keeps being retried.
      const sentAtDisable = r.requests.length;
      await waitFor('a retry after the disable', () => r.requests.length >= sentAtDisable + 2);
      expect((await eventOf(t, hookId, first)).failed_at).toBeNull();

      // A new upload is recorded, held, not sent.
      const second = await upload(t, o);
      const held = await waitFor('the held event', () => eventOf(t, hookId, second));
      expect(held.held_at).not.toBeNull();
      expect(held.relayed_at).toBeNull();

      // The receiver recovers: the scheduled one arrives; the held one waits for the owner.
      down = false;
      await waitFor('the first event delivered', async () => (await eventOf(t, hookId, first)).delivered_at);
      expect(sentFilenames(r)).not.toContain(second);
      expect((await webhook(t, o, hookId)).enabled).toBe(false);

      const res = await asSession(t, o, 'patch', `/api/v1/webhooks/${hookId}`)
        .send({ enabled: true })
        .expect(200);
      expect(res.body.webhook).toMatchObject({
        enabled: true,
        disabled_reason: null,
        disabled_at: null,
        failure_count: 0,
      });
      await waitFor('the held event delivered', async () => (await eventOf(t, hookId, second)).delivered_at);
      expect(sentFilenames(r).filter((f) => f === second)).toHaveLength(1);
    });

    it('should hold the scheduled retries of an endpoint its owner turned off, and send them when turned on', async () => {
      const o = await owner(t);
      let down = true;
      const r = await receiver((_n, _req, res) => {
        res.statusCode = down ? 503 : 200;
        res.end();
      });
      const hookId = await addWebhook(t, o, r.url());
      const name = await upload(t, o);
      await waitFor('a failed attempt', () => r.requests.length >= 1);
      await asSession(t, o, 'patch', `/api/v1/webhooks/${hookId}`).send({ enabled: false }).expect(200);
      const held = await waitFor('the event to be held', async () => {
        const e = await eventOf(t, hookId, name);
        return e.held_at ? e : null;
      });
      expect(held.failed_at).toBeNull();
      // Turned off by its owner: a new upload records nothing for it.
      await upload(t, o);
      expect(await sql(t, 'select id from outbox_events where webhook_id = $1', [hookId])).toHaveLength(1);

      down = false;
      const sent = r.requests.length;
      await asSession(t, o, 'patch', `/api/v1/webhooks/${hookId}`).send({ enabled: true }).expect(200);
      await waitFor('the held event delivered', async () => (await eventOf(t, hookId, name)).delivered_at);
      expect(r.requests.length).toBe(sent + 1);
      expect(new Set(r.requests.map((q) => q.headers['x-fixitfy-delivery'])).size).toBe(1);
    });
  });

  describe('one attempt, one POST', () => {
    // APP_ROLE=api: no worker takes the jobs, so the test runs the delivery function itself.
    let t: TestApp;

    beforeAll(async () => {
      t = await createTestApp({ env: { ALLOW_PRIVATE_WEBHOOKS: 'true', APP_ROLE: 'api' } });
    });
    afterAll(() => t.close());

    async function relayedEvent(o: Owner, hookId: string): Promise<string> {
      await upload(t, o);
      const [row] = await waitFor('the relay', async () => {
        const rows = await sql(
          t,
          'select id from outbox_events where webhook_id = $1 and relayed_at is not null',
          [hookId],
        );
        return rows.length > 0 ? rows : null;
      });
      return row.id;
    }

    it('should send once when two runs of one job overlap, and count each attempt once', async () => {
      const o = await owner(t);
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      const r = await receiver(async (_n, _req, res) => {
        await gate;
        res.statusCode = 500;
        res.end();
      });
      const hookId = await addWebhook(t, o, r.url());
      const eventId = await relayedEvent(o, hookId);
      const deliveries = t.app.get(WebhookDeliveryService);

      const runs = [deliveries.deliver(eventId), deliveries.deliver(eventId)];
      await waitFor('the POST of the run that claimed', () => r.requests.length === 1);
      const settledFirst = await Promise.race(runs.map((p, i) => p.then((o2) => ({ i, o: o2 }))));
      expect(settledFirst.o).toEqual({ kind: 'busy' });
      release();
      const outcomes = await Promise.all(runs);
      expect(outcomes[1 - settledFirst.i]).toEqual({ kind: 'retry', error: 'HTTP 500' });
      expect(r.requests).toHaveLength(1);

      // The next attempt is a new claim: one more POST, numbered 2.
      expect(await deliveries.deliver(eventId)).toMatchObject({ kind: 'retry' });
      expect(r.requests).toHaveLength(2);
      const [event] = await sql(t, 'select attempts, claimed_until from outbox_events where id = $1', [
        eventId,
      ]);
      expect(event).toEqual({ attempts: 2, claimed_until: null });
      const recorded = await sql(
        t,
        'select attempt from webhook_deliveries where delivery_id = $1 order by attempt',
        [eventId],
      );
      expect(recorded.map((d) => d.attempt)).toEqual([1, 2]);
    });

    it('should settle quietly when the endpoint is deleted while an attempt is in flight', async () => {
      const o = await owner(t);
      let hookId = '';
      const r = await receiver(async (_n, _req, res) => {
        await asSession(t, o, 'delete', `/api/v1/webhooks/${hookId}`).expect(200);
        res.statusCode = 500;
        res.end();
      });
      hookId = await addWebhook(t, o, r.url());
      const eventId = await relayedEvent(o, hookId);

      await expect(t.app.get(WebhookDeliveryService).deliver(eventId)).resolves.toEqual({ kind: 'gone' });
      expect(r.requests).toHaveLength(1);
      // And a later run of the job finds nothing to do.
      await expect(t.app.get(WebhookDeliveryService).deliver(eventId)).resolves.toEqual({ kind: 'gone' });
      expect(await sql(t, 'select id from webhook_deliveries where delivery_id = $1', [eventId])).toEqual([]);
    });

    it('should hold no row lock on the outbox while the relay waits on Redis', async () => {
      const o = await owner(t);
      const hookId = await addWebhook(t, o, 'http://127.0.0.1:9/x');
      const queue = t.app.get(WebhookQueue);
      const real = queue.addBulk.bind(queue);
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      let entered!: () => void;
      const inRedis = new Promise<void>((resolve) => (entered = resolve));
      const spy = jest.spyOn(queue, 'addBulk').mockImplementation(async (ids) => {
        entered();
        await gate;
        return real(ids);
      });
      try {
        await upload(t, o);
        await inRedis;
        // While the enqueue is pending, another session can lock the row at once.
        const locked = await sql(
          t,
          `select id, relayed_at from outbox_events where webhook_id = $1 for update nowait`,
          [hookId],
        );
        expect(locked).toHaveLength(1);
        expect(locked[0].relayed_at).not.toBeNull();
      } finally {
        release();
        spy.mockRestore();
      }
    });
  });
});

import { png } from '../fixtures/sample-images';
import { sql } from '../setup/db';
import { bearer, login, makeKey, makeUser, type TestKey, type TestSession } from '../setup/factories';
import { readInfra } from '../setup/infra';
import { capturedLogLines, logOutsideRequestsToNextApp } from '../setup/log-lines';
import { PrivateRedis } from '../setup/private-servers';
import { TcpProxy } from '../setup/tcp-proxy';
import { createTestApp, type TestApp } from '../setup/test-app';
import { waitFor } from '../setup/wait';
import { Receiver, verifyPublished } from './webhooks-receiver';

const UPLOADS = 40;
let seed = 50_000;

interface Owner {
  session: TestSession;
  key: TestKey;
}

async function owner(t: TestApp): Promise<Owner> {
  const user = await makeUser(t);
  return { session: await login(t, user), key: await makeKey(t, user) };
}

async function addWebhook(t: TestApp, o: Owner, url: string): Promise<string> {
  const res = await t.http
    .post('/api/v1/webhooks')
    .set('Cookie', o.session.cookie)
    .set('X-CSRF-Token', o.session.csrf)
    .send({ url })
    .expect(201);
  return res.body.webhook.id;
}

async function uploads(t: TestApp, o: Owner, n: number): Promise<string[]> {
  const names: string[] = [];
  // Four at a time: the default UPLOADS_IN_FLIGHT_PER_KEY, so the burst is as parallel as one key may be.
  for (let i = 0; i < n; i += 4) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(4, n - i) }, async () => {
        const res = await t.http
          .post('/api/v1/upload')
          .set(...bearer(o.key.token))
          .attach('file', await png(seed++), 'a.png')
          .expect(200);
        return res.body.filename as string;
      }),
    );
    names.push(...batch);
  }
  return names;
}

/** Uploads whose upload.created reached the receiver with a 2xx answer (by filename, each once). */
function deliveredFilenames(r: Receiver, okFrom: (n: number) => boolean): Set<string> {
  const got = new Set<string>();
  r.requests.forEach((req, n) => {
    if (okFrom(n)) {
      got.add(JSON.parse(req.rawBody.toString('utf8')).upload.filename);
    }
  });
  return got;
}

async function settled(t: TestApp, hookId: string): Promise<boolean> {
  const [row] = await sql<{ open: string }>(
    t,
    'select count(*) as open from outbox_events where webhook_id = $1 and delivered_at is null and failed_at is null',
    [hookId],
  );
  return Number(row.open) === 0;
}

jest.setTimeout(120_000);

describe('Webhooks under faults (e2e)', () => {
  const receivers: Receiver[] = [];
  afterAll(async () => {
    await Promise.all(receivers.map((r) => r.close()));
  });

  it('should lose no event when the receiver answers 500 through a burst of uploads, then recovers', async () => {
    const t = await createTestApp({
      env: {
        ALLOW_PRIVATE_WEBHOOKS: 'true',
        WEBHOOK_RETRY_BASE_MS: '10',
        WEBHOOK_RETRY_MAX_DELAY_MS: '200',
        RATE_LIMIT_UPLOADS_PER_MINUTE: '1000',
      },
    });
    try {
      const o = await owner(t);
      // The outage: the first 150 requests fail (more than the old 100-attempt auto-disable), then it recovers.
      const FAILING = 150;
      const r = await Receiver.start((n, _req, res) => {
        res.statusCode = n < FAILING ? 500 : 204;
        res.end();
      });
      receivers.push(r);
      const hookId = await addWebhook(t, o, r.url());
      const secret = (await t.http.get('/api/v1/webhooks/secret').set('Cookie', o.session.cookie).expect(200))
        .body.signing_secret as string;

      const first = await uploads(t, o, UPLOADS / 2);
      // The second half of the burst lands while the receiver is still failing.
      await waitFor('100 failed attempts', () => r.requests.length >= 100, 30_000);
      const second = await uploads(t, o, UPLOADS / 2);

      await waitFor('the receiver to recover', () => r.requests.length > FAILING, 40_000).catch(
        () => undefined,
      );
      await waitFor('every event to settle', () => settled(t, hookId), 40_000).catch(() => undefined);
      const delivered = deliveredFilenames(r, (n) => n >= FAILING);
      const lost = [...first, ...second].filter((f) => !delivered.has(f)).length;
      console.log(`burst outage: ${UPLOADS} uploads, ${delivered.size} delivered, ${lost} lost`);
      expect(lost).toBe(0);
      // Each event was acknowledged once (a 2xx ends its retries), with a signature the published snippet verifies.
      const okRequests = r.requests.slice(FAILING);
      expect(okRequests).toHaveLength(UPLOADS);
      expect(okRequests.every((q) => verifyPublished(q, q.rawBody, secret))).toBe(true);
      const ids = new Set(r.requests.map((q) => q.headers['x-fixitfy-delivery']));
      expect(ids.size).toBe(UPLOADS);
    } finally {
      await t.close();
    }
  });

  it.each([
    ['restarts empty', (redis: PrivateRedis) => redis.restart()],
    ['is flushed (FLUSHALL)', (redis: PrivateRedis) => redis.flushAll()],
  ])('should deliver every pending event after Redis %s', async (what, fault) => {
    const redis = await PrivateRedis.start();
    let t: TestApp | undefined;
    try {
      t = await createTestApp({
        env: {
          REDIS_URL: redis.url,
          ALLOW_PRIVATE_WEBHOOKS: 'true',
          // Retries wait long enough that every job is still sitting in Redis when it goes.
          WEBHOOK_RETRY_BASE_MS: '3000',
          WEBHOOK_RECONCILE_EVERY_MS: '500',
          WEBHOOK_RECONCILE_AFTER_MS: '1000',
          RATE_LIMIT_UPLOADS_PER_MINUTE: '1000',
        },
      });
      const app = t;
      const o = await owner(app);
      let down = true;
      let firstOk = Infinity;
      const r = await Receiver.start((n, _req, res) => {
        if (!down && firstOk === Infinity) {
          firstOk = n;
        }
        res.statusCode = down ? 500 : 204;
        res.end();
      });
      receivers.push(r);
      const hookId = await addWebhook(app, o, r.url());
      const names = await uploads(app, o, UPLOADS);
      await waitFor('a first failed attempt of every event', async () => {
        const [row] = await sql<{ n: string }>(
          app,
          'select count(*) as n from outbox_events where webhook_id = $1 and attempts >= 1 and relayed_at is not null',
          [hookId],
        );
        return Number(row.n) === UPLOADS;
      });

      await fault(redis);
      down = false;

      await waitFor('every event to be delivered', () => settled(app, hookId), 30_000).catch(() => undefined);
      const delivered = deliveredFilenames(r, (n) => n >= firstOk);
      const lost = names.filter((f) => !delivered.has(f)).length;
      console.log(`redis ${what}: ${UPLOADS} pending, ${delivered.size} delivered, ${lost} lost`);
      expect(lost).toBe(0);
    } finally {
      await t?.close();
      await redis.stop();
    }
  });

  it('should deliver again within seconds once a Redis path that went silent (no reset) is back', async () => {
    const proxy = await TcpProxy.inFrontOf(readInfra().redisUrl);
    const log = capturedLogLines();
    logOutsideRequestsToNextApp();
    const t = await createTestApp({
      env: { ...log.env, REDIS_URL: proxy.via(readInfra().redisUrl), ALLOW_PRIVATE_WEBHOOKS: 'true' },
      overrides: log.overrides,
    });
    try {
      const o = await owner(t);
      const r = await Receiver.start((_n, _req, res) => {
        res.statusCode = 204;
        res.end();
      });
      receivers.push(r);
      const hookId = await addWebhook(t, o, r.url());
      const [before] = await uploads(t, o, 1);
      await waitFor('the first delivery', () => deliveredFilenames(r, () => true).has(before), 15_000);
      // Every open connection (the queue's, the worker's and its blocking one) stays open and carries nothing, as
      // when a Redis host is lost without a reset; ioredis would wait for TCP to give up (about 15 minutes).
      await proxy.setMode('silence');
      await new Promise((resolve) => setTimeout(resolve, 2000));
      await proxy.setMode('pass');
      await waitFor(
        'uploads served again',
        async () => (await t.http.get('/api/v1/me').set(...bearer(o.key.token))).status === 200,
        15_000,
      );
      // The queue's and the worker's connections are found dead and made anew while idle (their heartbeat), each
      // with a warning, before any job needs them.
      const remade = (context: string): boolean =>
        log.lines.some(
          (l) =>
            l.level === 40 &&
            l.context === context &&
            /Redis connection sent nothing for \d+ ms/.test(String(l.msg)),
        );
      await waitFor(
        'both connections made anew',
        () => remade('WebhookQueue') && remade('WebhookDeliveryProcessor'),
        15_000,
      );
      const uploaded = Date.now();
      const [after] = await uploads(t, o, 1);
      // Unwatched, those connections waited for TCP: nothing was delivered for minutes.
      await waitFor(
        'the delivery after the silence',
        () => deliveredFilenames(r, () => true).has(after),
        30_000,
      );
      console.log(
        `silent Redis path: the first upload after it was delivered in ${Date.now() - uploaded} ms`,
      );
      await waitFor('every event to settle', () => settled(t, hookId), 5_000);
    } finally {
      // Whatever is still in the dead path (when the test failed): cut it, so the close is quick.
      await proxy.setMode('refuse');
      await proxy.setMode('pass');
      await t.close();
      await proxy.close();
    }
  });
});

import { Client } from 'pg';
import { HostResolver } from '../../src/modules/webhooks/host-resolver';
import { png } from '../fixtures/sample-images';
import { bearer, login, makeKey, makeUser, type TestKey, type TestSession } from '../setup/factories';
import { createTestApp, type TestApp } from '../setup/test-app';
import { waitFor } from '../setup/wait';
import { Receiver } from './webhooks-receiver';

/** The default deployment: ALLOW_PRIVATE_WEBHOOKS is off. */
describe('Webhooks: SSRF (e2e)', () => {
  let t: TestApp;
  let session: TestSession;
  let key: TestKey;

  const post = (url: string) =>
    t.http
      .post('/api/v1/webhooks')
      .set('Cookie', session.cookie)
      .set('X-CSRF-Token', session.csrf)
      .send({ url });

  beforeAll(async () => {
    t = await createTestApp({ env: { WEBHOOK_RETRY_BASE_MS: '10', WEBHOOK_MAX_ATTEMPTS: '8' } });
    const user = await makeUser(t);
    session = await login(t, user);
    key = await makeKey(t, user);
  });
  afterAll(() => t.close());
  afterEach(() => jest.restoreAllMocks());

  it.each([
    ['http://127.0.0.1/'],
    ['http://127.0.0.1:3000/hook'],
    ['http://10.0.0.1/'],
    ['http://192.168.0.10/'],
    ['http://172.20.0.1/'],
    ['http://100.64.0.1/'],
    ['http://[::1]/'],
    ['http://[fd00::1]/'],
    ['http://[fe80::1]/'],
    ['http://169.254.169.254/latest/meta-data/'],
    ['http://0x7f000001/'],
    ['http://2130706433/'],
    ['http://0.0.0.0/'],
    ['http://[::ffff:127.0.0.1]/'],
    ['http://[::ffff:169.254.169.254]/'],
    ['http://localhost:3000/'],
    ['ftp://example.com/'],
    ['file:///etc/passwd'],
    ['gopher://example.com/'],
  ])('should refuse to register %s with 400 bad_request', async (url) => {
    const res = await post(url).expect(400);
    expect(res.body).toMatchObject({ ok: false, code: 'bad_request' });
    expect(res.body.error).toMatch(/non-public address|http and https/);
  });

  it('should refuse a URL changed to a private address', async () => {
    jest
      .spyOn(t.app.get(HostResolver), 'resolve')
      .mockResolvedValue([{ address: '93.184.215.14', family: 4 }]);
    const hook = (await post('https://hooks.example.com/in').expect(201)).body.webhook;
    const res = await t.http
      .patch(`/api/v1/webhooks/${hook.id}`)
      .set('Cookie', session.cookie)
      .set('X-CSRF-Token', session.csrf)
      .send({ url: 'http://169.254.169.254/' })
      .expect(400);
    expect(res.body.code).toBe('bad_request');
    await t.http
      .delete(`/api/v1/webhooks/${hook.id}`)
      .set('Cookie', session.cookie)
      .set('X-CSRF-Token', session.csrf)
      .expect(200);
  });

  it('should refuse at delivery a public-looking name that now resolves to loopback, and say why', async () => {
    const r = await Receiver.start();
    try {
      const resolver = t.app.get(HostResolver);
      const spy = jest
        .spyOn(resolver, 'resolve')
        .mockResolvedValue([{ address: '93.184.215.14', family: 4 }]);
      // Registered while the name pointed at a public address…
      const hook = (await post(`http://rebind.example.com:${r.port}/hook`).expect(201)).body.webhook;
      // …then its DNS moved to our loopback, where a receiver listens.
      spy.mockResolvedValue([{ address: '127.0.0.1', family: 4 }]);
      await t.http
        .post('/api/v1/upload')
        .set(...bearer(key.token))
        .attach('file', await png(7), 'a.png')
        .expect(200);

      const list = (await waitFor('a recorded attempt', async () => {
        const res = await t.http
          .get(`/api/v1/webhooks/${hook.id}/deliveries`)
          .set('Cookie', session.cookie)
          .expect(200);
        return res.body.deliveries.length > 0 ? res.body.deliveries : null;
      })) as Record<string, any>[];
      expect(list[list.length - 1]).toMatchObject({
        attempt: 1,
        succeeded: false,
        status_code: null,
        event: 'upload.created',
      });
      expect(list[list.length - 1].error).toMatch(/^Refused: .*non-public address \(127\.0\.0\.1\)/);

      const ping = await t.http
        .post(`/api/v1/webhooks/${hook.id}/test`)
        .set('Cookie', session.cookie)
        .set('X-CSRF-Token', session.csrf)
        .expect(200);
      expect(ping.body.delivery).toMatchObject({
        succeeded: false,
        error: expect.stringMatching(/^Refused: /),
      });

      // The event is retried and refused every time; nothing ever reached the loopback receiver.
      const c = new Client({ connectionString: t.databaseUrl });
      await c.connect();
      try {
        await waitFor('the event to be given up', async () => {
          const { rows } = await c.query('select failed_at from outbox_events where webhook_id = $1', [
            hook.id,
          ]);
          return rows[0]?.failed_at;
        });
      } finally {
        await c.end();
      }
      expect(r.requests).toHaveLength(0);
    } finally {
      await r.close();
    }
  });
});

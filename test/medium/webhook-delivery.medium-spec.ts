import { EntityManager } from '@mikro-orm/postgresql';
import { Module } from '@nestjs/common';
import { Client } from 'pg';
import { NO_REQUEST } from '../../src/common/http/request-meta';
import { AuditModule } from '../../src/modules/audit/audit.module';
import { AuthModule } from '../../src/modules/auth/auth.module';
import { UsersService } from '../../src/modules/auth/users.service';
import { OutboxService } from '../../src/modules/webhooks/outbox.service';
import {
  type DeliveryOutcome,
  WebhookDeliveryService,
} from '../../src/modules/webhooks/webhook-delivery.service';
import { WebhooksModule } from '../../src/modules/webhooks/webhooks.module';
import { WebhooksService } from '../../src/modules/webhooks/webhooks.service';
import { Receiver } from '../e2e/webhooks-receiver';
import { Latch } from './support/latch';
import { createMedium, type Medium } from './support/medium';

/** The webhooks module with the accounts that own endpoints (auth) and the audit log, on real PostgreSQL. */
@Module({ imports: [WebhooksModule, AuthModule, AuditModule] })
class WebhooksFeature {}

describe('WebhookDeliveryService (medium)', () => {
  let m: Medium;
  let receiver: Receiver;
  /** Holds the receiver's answer to the first request until the test opens it. */
  let answer: Latch;

  beforeAll(async () => {
    m = await createMedium(WebhooksFeature, { env: { ALLOW_PRIVATE_WEBHOOKS: 'true' } });
    receiver = await Receiver.start(async (_n, _req, res) => {
      await answer.wait();
      res.end('ok');
    });
  });
  afterAll(async () => {
    await receiver.close();
    await m.close();
  });

  let n = 0;
  /** One account with one endpoint (the real receiver) and one committed upload.created event; returns its id. */
  async function oneEvent(): Promise<string> {
    const user = await m
      .get(UsersService)
      .create(`hooks${++n}@example.com`, 'a long password', 'user', NO_REQUEST, 'test');
    await m.get(WebhooksService).create(user.id, receiver.url(), true, NO_REQUEST);
    await m
      .get(EntityManager)
      .fork()
      .transactional((em) =>
        m.get(OutboxService).recordUploadCreated(em, {
          ownerId: user.id,
          upload: {
            filename: 'FIXITFY-medium.png',
            url: 'http://upload.test/images/FIXITFY-medium.png',
            size: 1,
            mime: 'image/png',
            width: 1,
            height: 1,
            hash_sha256: '0'.repeat(64),
          },
          createdAt: new Date(),
        }),
      );
    const c = new Client({ connectionString: m.databaseUrl });
    await c.connect();
    try {
      const { rows } = await c.query<{ id: string }>(
        'select e.id from outbox_events e join webhooks w on w.id = e.webhook_id where w.user_id = $1',
        [user.id],
      );
      expect(rows).toHaveLength(1);
      return rows[0].id;
    } finally {
      await c.end();
    }
  }

  it('should send once when two runs of one delivery interleave: the second finds the claim taken', async () => {
    answer = new Latch();
    const eventId = await oneEvent();
    const before = receiver.requests.length;
    const deliveries = m.get(WebhookDeliveryService);

    // The first run claims the attempt and is held inside the send (the receiver has not answered yet)…
    const first = deliveries.deliver(eventId);
    await answer.arrived();
    // …while a second run of the same job (a stall recovery, a re-enqueue) comes and goes without sending.
    const second: DeliveryOutcome = await deliveries.deliver(eventId);
    expect(second).toEqual({ kind: 'busy' });
    answer.open();
    expect(await first).toEqual({ kind: 'delivered' });

    // A third run after the first settled: nothing left to do.
    expect(await deliveries.deliver(eventId)).toEqual({ kind: 'done' });
    expect(receiver.requests.length - before).toBe(1);
    expect(receiver.requests[before].headers['x-fixitfy-delivery']).toBe(eventId);
  });

  it('should let exactly one of two simultaneous runs claim the attempt', async () => {
    answer = new Latch();
    const eventId = await oneEvent();
    const before = receiver.requests.length;
    const deliveries = m.get(WebhookDeliveryService);
    const runs = [deliveries.deliver(eventId), deliveries.deliver(eventId)];
    // Whichever claimed it is held at the receiver; the other has already answered busy.
    const settled = await Promise.race(runs.map((p, i) => p.then((o) => ({ i, o }))));
    expect(settled.o).toEqual({ kind: 'busy' });
    answer.open();
    expect(await runs[1 - settled.i]).toEqual({ kind: 'delivered' });
    expect(receiver.requests.length - before).toBe(1);
  });
});

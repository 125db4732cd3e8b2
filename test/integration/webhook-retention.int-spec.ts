import { randomUUID } from 'node:crypto';
import {
  WebhookRetentionService,
  WEBHOOK_RETENTION_MS,
} from '../../src/modules/webhooks/webhook-retention.service';
import { sql } from '../setup/db';
import { makeUser } from '../setup/factories';
import { createTestApp, type TestApp } from '../setup/test-app';

describe(WebhookRetentionService.name, () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());

  it('should remove settled events, long-held events and attempts older than the retention, never a pending event', async () => {
    const user = await makeUser(t);
    const hookId = randomUUID();
    await sql(
      t,
      `insert into webhooks (id, user_id, url, enabled, created_at, failure_count)
       values ($1, $2, 'https://example.com/hook', true, now(), 0)`,
      [hookId, user.id],
    );
    const old = new Date(Date.now() - WEBHOOK_RETENTION_MS - 60_000);
    const recent = new Date();
    const event = (delivered: Date | null, failed: Date | null, held: Date | null = null) =>
      sql(
        t,
        `insert into outbox_events (id, webhook_id, event, body, created_at, relayed_at, attempts, delivered_at, failed_at, held_at)
         values ($1, $2, 'upload.created', '{}', $3, $3, 1, $4, $5, $6) returning id`,
        [randomUUID(), hookId, old, delivered, failed, held],
      ).then((rows) => (rows[0] as { id: string }).id);
    const oldDelivered = await event(old, null);
    const oldFailed = await event(null, old);
    const oldPending = await event(null, null);
    const recentDelivered = await event(recent, null);
    // Held for a disabled endpoint: kept for the retention period, then dropped.
    const recentHeld = await event(null, null, recent);
    await event(null, null, old);
    for (const at of [old, recent]) {
      await sql(
        t,
        `insert into webhook_deliveries (id, webhook_id, delivery_id, event, attempt, duration_ms, succeeded, created_at)
         values ($1, $2, $3, 'upload.created', 1, 5, true, $4)`,
        [randomUUID(), hookId, oldDelivered, at],
      );
    }

    const result = await t.app.get(WebhookRetentionService).prune();
    expect(result).toEqual({ events: 3, attempts: 1 });
    const left = (await sql<{ id: string }>(t, 'select id from outbox_events')).map((r) => r.id).sort();
    expect(left).toEqual([oldPending, recentDelivered, recentHeld].sort());
    expect(left).not.toContain(oldFailed);
    expect(await sql(t, 'select 1 from webhook_deliveries')).toHaveLength(1);
  });
});

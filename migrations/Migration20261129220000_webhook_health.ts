import { Migration } from '@mikro-orm/migrations';

export class Migration20261129220000_webhook_health extends Migration {
  override async up(): Promise<void> {
    // Why and when an endpoint stopped receiving new events, and since when it has been failing (auto-disable
    // judges the endpoint by how long it went without a success, not by a burst of failed attempts).
    this.addSql(`alter table "webhooks" add column "disabled_reason" text null, add column "disabled_at" timestamptz(3) null, add column "failing_since" timestamptz(3) null;`);
    this.addSql(`update "webhooks" set "disabled_reason" = 'owner', "disabled_at" = "created_at" where not "enabled";`);
    // held_at: recorded while the endpoint was disabled, relayed once it is enabled again. claimed_until: the lease
    // of the worker sending an attempt, so two runs of one job can't both send.
    this.addSql(`alter table "outbox_events" add column "held_at" timestamptz(3) null, add column "claimed_until" timestamptz(3) null;`);
    this.addSql(`drop index "outbox_events_unrelayed_idx";`);
    this.addSql(`create index "outbox_events_unrelayed_idx" on "outbox_events" ("created_at") where "relayed_at" is null and "held_at" is null;`);
    // The reconciler's scan: relayed events still open, oldest hand-over first.
    this.addSql(`create index "outbox_events_open_idx" on "outbox_events" ("relayed_at", "id") where "delivered_at" is null and "failed_at" is null and "relayed_at" is not null;`);
    this.addSql(`create index "outbox_events_held_idx" on "outbox_events" ("webhook_id") where "held_at" is not null;`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop index "outbox_events_held_idx";`);
    this.addSql(`drop index "outbox_events_open_idx";`);
    this.addSql(`drop index "outbox_events_unrelayed_idx";`);
    this.addSql(`create index "outbox_events_unrelayed_idx" on "outbox_events" ("created_at") where "relayed_at" is null;`);
    this.addSql(`alter table "outbox_events" drop column "held_at", drop column "claimed_until";`);
    this.addSql(`alter table "webhooks" drop column "disabled_reason", drop column "disabled_at", drop column "failing_since";`);
  }
}

import { Migration } from '@mikro-orm/migrations';

export class Migration20261125130142_webhooks extends Migration {

  override async up(): Promise<void> {
    this.addSql(`create table "webhooks" ("id" uuid not null, "user_id" uuid not null, "url" text not null, "enabled" boolean not null default true, "created_at" timestamptz(3) not null, "last_success_at" timestamptz(3) null, "last_failure_at" timestamptz(3) null, "failure_count" int not null default 0, constraint "webhooks_pkey" primary key ("id"));`);
    this.addSql(`create index "webhooks_user_id_index" on "webhooks" ("user_id");`);

    this.addSql(`create table "outbox_events" ("id" uuid not null, "webhook_id" uuid not null, "event" text not null, "body" text not null, "created_at" timestamptz(3) not null, "relayed_at" timestamptz(3) null, "attempts" int not null default 0, "delivered_at" timestamptz(3) null, "failed_at" timestamptz(3) null, constraint "outbox_events_pkey" primary key ("id"));`);
    this.addSql(`create index "outbox_events_webhook_id_index" on "outbox_events" ("webhook_id");`);
    this.addSql(`create index "outbox_events_unrelayed_idx" on "outbox_events" ("created_at") where "relayed_at" is null;`);

    this.addSql(`create table "webhook_deliveries" ("id" uuid not null, "webhook_id" uuid not null, "delivery_id" uuid not null, "event" text not null, "attempt" int not null, "status_code" int null, "duration_ms" int not null, "error" text null, "succeeded" boolean not null, "created_at" timestamptz(3) not null, constraint "webhook_deliveries_pkey" primary key ("id"));`);
    this.addSql(`create index "webhook_deliveries_listing_idx" on "webhook_deliveries" ("webhook_id", "created_at" desc, "id" desc);`);

    this.addSql(`create table "webhook_secrets" ("user_id" uuid not null, "sealed" text not null, "created_at" timestamptz(3) not null, "rotated_at" timestamptz(3) null, constraint "webhook_secrets_pkey" primary key ("user_id"));`);

    this.addSql(`alter table "webhooks" add constraint "webhooks_user_id_foreign" foreign key ("user_id") references "users" ("id") on update cascade on delete cascade;`);

    this.addSql(`alter table "outbox_events" add constraint "outbox_events_webhook_id_foreign" foreign key ("webhook_id") references "webhooks" ("id") on update cascade on delete cascade;`);

    this.addSql(`alter table "webhook_deliveries" add constraint "webhook_deliveries_webhook_id_foreign" foreign key ("webhook_id") references "webhooks" ("id") on update cascade on delete cascade;`);

    this.addSql(`alter table "webhook_secrets" add constraint "webhook_secrets_user_id_foreign" foreign key ("user_id") references "users" ("id") on update cascade on delete cascade;`);
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "outbox_events" drop constraint "outbox_events_webhook_id_foreign";`);

    this.addSql(`alter table "webhook_deliveries" drop constraint "webhook_deliveries_webhook_id_foreign";`);

    this.addSql(`drop table if exists "webhooks" cascade;`);

    this.addSql(`drop table if exists "outbox_events" cascade;`);

    this.addSql(`drop table if exists "webhook_deliveries" cascade;`);

    this.addSql(`drop table if exists "webhook_secrets" cascade;`);
  }

}

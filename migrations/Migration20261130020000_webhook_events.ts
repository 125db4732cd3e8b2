import { Migration } from '@mikro-orm/migrations';

export class Migration20261130020000_webhook_events extends Migration {
  override async up(): Promise<void> {
    // The event types an endpoint subscribes to (API.md Part 3); endpoints made before get what they had.
    this.addSql(`alter table "webhooks" add column "events" text[] not null default '{upload.created}';`);
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "webhooks" drop column "events";`);
  }
}

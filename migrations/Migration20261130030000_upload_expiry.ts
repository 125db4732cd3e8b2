import { Migration } from '@mikro-orm/migrations';

export class Migration20261130030000_upload_expiry extends Migration {
  override async up(): Promise<void> {
    // Expiring uploads (API.md Part 3): null = never. The partial index serves the expiry sweep.
    this.addSql(`alter table "uploads" add column "expires_at" timestamptz(3) null;`);
    this.addSql(
      `create index "uploads_expiry_due_idx" on "uploads" ("expires_at") where "deleted_at" is null and "expires_at" is not null;`,
    );
    // A key's default lifetime for its uploads (seconds; null = never).
    this.addSql(`alter table "api_keys" add column "default_expires_in" int null;`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop index if exists "uploads_expiry_due_idx";`);
    this.addSql(`alter table "uploads" drop column "expires_at";`);
    this.addSql(`alter table "api_keys" drop column "default_expires_in";`);
  }
}

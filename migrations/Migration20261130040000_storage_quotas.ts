import { Migration } from '@mikro-orm/migrations';

export class Migration20261130040000_storage_quotas extends Migration {
  override async up(): Promise<void> {
    // Per-user quota overrides set by admins (API.md Part 3); null = the server default (STORAGE_QUOTA_*).
    this.addSql(`alter table "users" add column "quota_bytes" bigint null, add column "quota_files" int null;`);
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "users" drop column "quota_bytes", drop column "quota_files";`);
  }
}

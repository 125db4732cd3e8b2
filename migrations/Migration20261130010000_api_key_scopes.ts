import { Migration } from '@mikro-orm/migrations';

export class Migration20261130010000_api_key_scopes extends Migration {
  override async up(): Promise<void> {
    // Scoped keys (API.md Part 3): keys made before scopes existed keep doing everything, so the default is all.
    this.addSql(
      `alter table "api_keys" add column "scopes" text[] not null default '{upload,read,delete}';`,
    );
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "api_keys" drop column "scopes";`);
  }
}

import { Migration } from '@mikro-orm/migrations';

export class Migration20261130020000_upload_pages extends Migration {
  override async up(): Promise<void> {
    // The frame count of each upload as decoded when it was stored (1 for a still image), so `format=auto` can tell a
    // still GIF or WebP (AVIF is fine) from an animation (AVIF would drop frames). Rows recorded before this are null:
    // unknown, and treated as possibly animated.
    this.addSql(`alter table "uploads" add column "pages" int null;`);
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "uploads" drop column "pages";`);
  }
}

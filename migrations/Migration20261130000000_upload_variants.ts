import { Migration } from '@mikro-orm/migrations';

export class Migration20261130000000_upload_variants extends Migration {
  override async up(): Promise<void> {
    // One row per rendered variant of an upload (API.md Part 3, "Variants on the direct link"): where its bytes are
    // and their SHA-256 (the ETag), so later requests neither re-render nor re-hash. Written after the bytes are
    // stored; a row therefore always points at a complete file. Deleting an upload lists its variants here.
    this.addSql(`create table "upload_variants" ("upload_id" uuid not null, "key" text not null, "storage_key" text not null, "size" int not null, "sha256" text not null, "mime" text not null, "created_at" timestamptz(3) not null default now(), constraint "upload_variants_pkey" primary key ("upload_id", "key"));`);
    this.addSql(`alter table "upload_variants" add constraint "upload_variants_upload_id_foreign" foreign key ("upload_id") references "uploads" ("id") on update cascade on delete cascade;`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "upload_variants" cascade;`);
  }
}

import { Migration } from '@mikro-orm/migrations';

export class Migration20261125123628_initial_schema extends Migration {

  override async up(): Promise<void> {
    this.addSql(`create table "users" ("id" uuid not null, "email" text not null, "password_hash" text not null, "role" text not null default 'user', "banned_at" timestamptz(3) null, "ban_reason" text null, "created_at" timestamptz(3) not null, constraint "users_pkey" primary key ("id"));`);
    this.addSql(`alter table "users" add constraint "users_email_unique" unique ("email");`);
    this.addSql(`create index "users_created_at_index" on "users" ("created_at");`);

    this.addSql(`create table "uploads" ("id" uuid not null, "owner_id" uuid not null, "api_key_id" uuid null, "filename" text not null, "mime" text not null, "size" int not null, "width" int not null, "height" int not null, "sha256" text not null, "stored_sha256" text not null, "tags" text[] not null default '{}', "delete_token_hash" text not null, "scores" jsonb null, "created_at" timestamptz(3) not null, "deleted_at" timestamptz(3) null, constraint "uploads_pkey" primary key ("id"));`);
    this.addSql(`alter table "uploads" add constraint "uploads_filename_unique" unique ("filename");`);
    this.addSql(`alter table "uploads" add constraint "uploads_delete_token_hash_unique" unique ("delete_token_hash");`);
    this.addSql(`create index "uploads_tags_gin_idx" on "uploads" using gin ("tags") where "deleted_at" is null;`);
    this.addSql(`create index "uploads_owner_listing_idx" on "uploads" ("owner_id", "created_at" desc, "id" desc) where "deleted_at" is null;`);
    this.addSql(`create unique index "uploads_owner_sha256_live_uniq" on "uploads" ("owner_id", "sha256") where "deleted_at" is null;`);

    this.addSql(`create table "sessions" ("id" uuid not null, "token_hash" text not null, "user_id" uuid not null, "created_at" timestamptz(3) not null, "expires_at" timestamptz(3) not null, constraint "sessions_pkey" primary key ("id"));`);
    this.addSql(`alter table "sessions" add constraint "sessions_token_hash_unique" unique ("token_hash");`);
    this.addSql(`create index "sessions_user_id_index" on "sessions" ("user_id");`);

    this.addSql(`create table "api_keys" ("id" uuid not null, "user_id" uuid not null, "token_hash" text not null, "prefix" text not null, "label" text not null, "request_count" bigint not null default 0, "created_at" timestamptz(3) not null, "last_used_at" timestamptz(3) null, "revoked_at" timestamptz(3) null, constraint "api_keys_pkey" primary key ("id"));`);
    this.addSql(`alter table "api_keys" add constraint "api_keys_token_hash_unique" unique ("token_hash");`);
    this.addSql(`create index "api_keys_user_active_idx" on "api_keys" ("user_id") where "revoked_at" is null;`);

    this.addSql(`alter table "uploads" add constraint "uploads_owner_id_foreign" foreign key ("owner_id") references "users" ("id") on update cascade on delete cascade;`);

    this.addSql(`alter table "sessions" add constraint "sessions_user_id_foreign" foreign key ("user_id") references "users" ("id") on update cascade on delete cascade;`);

    this.addSql(`alter table "api_keys" add constraint "api_keys_user_id_foreign" foreign key ("user_id") references "users" ("id") on update cascade on delete cascade;`);
  }

}

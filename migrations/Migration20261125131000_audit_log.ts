import { Migration } from '@mikro-orm/migrations';

export class Migration20261125131000_audit_log extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create table "audit_entries" ("id" uuid not null, "action" text not null, "actor_id" uuid null, "key_prefix" text null, "target_type" text null, "target_id" text null, "ip" text null, "user_agent" text null, "metadata" jsonb not null, "created_at" timestamptz(3) not null, constraint "audit_entries_pkey" primary key ("id"));`);
    // GET /api/v1/admin/audit is newest first, keyset-paged on (created_at, id), with at most one filter of each kind:
    // the unfiltered page uses the first index; action=, actor= and target= each have their own leading column, so
    // every filtered page is an index range scan in order, fast on millions of rows.
    this.addSql(`create index "audit_entries_created_idx" on "audit_entries" ("created_at" desc, "id" desc);`);
    this.addSql(`create index "audit_entries_action_idx" on "audit_entries" ("action", "created_at" desc, "id" desc);`);
    this.addSql(`create index "audit_entries_actor_idx" on "audit_entries" ("actor_id", "created_at" desc, "id" desc);`);
    this.addSql(`create index "audit_entries_target_idx" on "audit_entries" ("target_id", "created_at" desc, "id" desc);`);
    // Append-only, enforced by the database: any UPDATE, DELETE or TRUNCATE raises, whoever runs it.
    this.addSql(`create function "audit_entries_append_only"() returns trigger language plpgsql as $$
      begin raise exception 'audit_entries is append-only (% refused)', tg_op using errcode = 'insufficient_privilege'; end $$;`);
    this.addSql(`create trigger "audit_entries_no_update_delete" before update or delete on "audit_entries" for each row execute function "audit_entries_append_only"();`);
    this.addSql(`create trigger "audit_entries_no_truncate" before truncate on "audit_entries" for each statement execute function "audit_entries_append_only"();`);
  }
}

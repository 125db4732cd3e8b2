import { Entity, OptionalProps, PrimaryKey, Property } from '@mikro-orm/core';
import { randomUUID } from 'node:crypto';

/**
 * One line of the append-only audit log. The table refuses UPDATE, DELETE and TRUNCATE by trigger (see the
 * migration); the actor is a plain id, not a foreign key, so nothing can cascade into the log.
 */
@Entity({ tableName: 'audit_entries' })
export class AuditEntry {
  [OptionalProps]?: 'id' | 'createdAt';

  @PrimaryKey({ type: 'uuid' })
  id: string = randomUUID();

  @Property({ type: 'text' })
  action!: string;

  @Property({ type: 'uuid', nullable: true })
  actorId!: string | null;

  /** The display prefix of the API key that acted (never the key). */
  @Property({ type: 'text', nullable: true })
  keyPrefix!: string | null;

  @Property({ type: 'text', nullable: true })
  targetType!: string | null;

  @Property({ type: 'text', nullable: true })
  targetId!: string | null;

  @Property({ type: 'text', nullable: true })
  ip!: string | null;

  @Property({ type: 'text', nullable: true })
  userAgent!: string | null;

  @Property({ type: 'jsonb' })
  metadata!: Record<string, unknown>;

  @Property({ type: 'timestamptz', length: 3 })
  createdAt: Date = new Date();
}

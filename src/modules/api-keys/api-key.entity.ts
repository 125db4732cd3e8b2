import { Entity, Index, ManyToOne, OptionalProps, PrimaryKey, Property } from '@mikro-orm/core';
import { randomUUID } from 'node:crypto';
import type { Scope } from '../../common/auth/scopes';
import { User } from '../auth/user.entity';

/** An API key. Only sha256(token) and a display prefix are stored: a lost key can be revoked, never recovered. */
@Entity({ tableName: 'api_keys' })
@Index({
  name: 'api_keys_user_active_idx',
  properties: ['user'],
  expression: 'create index "api_keys_user_active_idx" on "api_keys" ("user_id") where "revoked_at" is null',
})
export class ApiKey {
  [OptionalProps]?:
    | 'id'
    | 'createdAt'
    | 'lastUsedAt'
    | 'revokedAt'
    | 'requestCount'
    | 'scopes'
    | 'defaultExpiresIn';

  @PrimaryKey({ type: 'uuid' })
  id: string = randomUUID();

  @ManyToOne(() => User, { deleteRule: 'cascade' })
  user!: User;

  /** Key lookup on every bearer request goes through this unique index. */
  @Property({ type: 'text', unique: true })
  tokenHash!: string;

  @Property({ type: 'text' })
  prefix!: string;

  @Property({ type: 'text' })
  label!: string;

  /** What the key may do (API.md Part 3); keys made before scopes existed have all of them. */
  @Property({ type: 'text[]', default: '{upload,read,delete}' })
  scopes: Scope[] = ['upload', 'read', 'delete'];

  /** Seconds its uploads live unless they say otherwise (API.md Part 3); null = they never expire. */
  @Property({ type: 'integer', nullable: true })
  defaultExpiresIn?: number | null = null;

  /** Flushed from Redis periodically; the live figure is max(Redis, this). */
  @Property({ type: 'bigint', default: 0 })
  requestCount: bigint | number | string = 0;

  @Property({ type: 'timestamptz', length: 3 })
  createdAt: Date = new Date();

  @Property({ type: 'timestamptz', length: 3, nullable: true })
  lastUsedAt?: Date | null = null;

  @Property({ type: 'timestamptz', length: 3, nullable: true })
  revokedAt?: Date | null = null;
}

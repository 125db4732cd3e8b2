import { Entity, Index, OptionalProps, PrimaryKey, Property } from '@mikro-orm/core';
import { randomUUID } from 'node:crypto';

import type { UserRole } from '../../common/auth/user-role';

export type { UserRole };

@Entity({ tableName: 'users' })
export class User {
  [OptionalProps]?: 'id' | 'role' | 'createdAt' | 'bannedAt' | 'banReason' | 'quotaBytes' | 'quotaFiles';

  @PrimaryKey({ type: 'uuid' })
  id: string = randomUUID();

  /** Stored lower-cased; unique. */
  @Property({ type: 'text', unique: true })
  email!: string;

  @Property({ type: 'text', hidden: true })
  passwordHash!: string;

  @Property({ type: 'text', default: 'user' })
  role: UserRole = 'user';

  @Property({ type: 'timestamptz', length: 3, nullable: true })
  bannedAt?: Date | null = null;

  @Property({ type: 'text', nullable: true })
  banReason?: string | null = null;

  /** An admin's per-user storage quota (API.md Part 3); null = the server default. */
  @Property({ type: 'bigint', nullable: true })
  quotaBytes?: bigint | number | string | null = null;

  @Property({ type: 'integer', nullable: true })
  quotaFiles?: number | null = null;

  @Index()
  @Property({ type: 'timestamptz', length: 3 })
  createdAt: Date = new Date();
}

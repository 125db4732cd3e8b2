import { Entity, ManyToOne, OptionalProps, PrimaryKey, Property } from '@mikro-orm/core';
import { randomUUID } from 'node:crypto';
import { User } from '../auth/user.entity';

/** An endpoint an owner registered for upload.created events. */
@Entity({ tableName: 'webhooks' })
export class Webhook {
  [OptionalProps]?: 'id' | 'enabled' | 'createdAt' | 'lastSuccessAt' | 'lastFailureAt' | 'failureCount';

  @PrimaryKey({ type: 'uuid' })
  id: string = randomUUID();

  @ManyToOne(() => User, { deleteRule: 'cascade', index: true })
  user!: User;

  @Property({ type: 'text' })
  url!: string;

  @Property({ type: 'boolean', default: true })
  enabled: boolean = true;

  @Property({ type: 'timestamptz', length: 3 })
  createdAt: Date = new Date();

  @Property({ type: 'timestamptz', length: 3, nullable: true })
  lastSuccessAt?: Date | null = null;

  @Property({ type: 'timestamptz', length: 3, nullable: true })
  lastFailureAt?: Date | null = null;

  /** Consecutive failed attempts since the last success; at AUTO_DISABLE_AFTER_FAILURES the endpoint is disabled. */
  @Property({ type: 'integer', default: 0 })
  failureCount: number = 0;
}

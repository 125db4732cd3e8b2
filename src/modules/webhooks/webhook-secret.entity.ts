import { Entity, ManyToOne, OptionalProps, PrimaryKeyProp, Property } from '@mikro-orm/core';
import { User } from '../auth/user.entity';

/**
 * The account's signing secret. It must be shown again, so it is encrypted (AES-256-GCM, key derived from
 * SECRET_KEY), never hashed; see secret-box.ts.
 */
@Entity({ tableName: 'webhook_secrets' })
export class WebhookSecret {
  [PrimaryKeyProp]?: 'user';
  [OptionalProps]?: 'createdAt' | 'rotatedAt';

  @ManyToOne(() => User, { primary: true, deleteRule: 'cascade' })
  user!: User;

  @Property({ type: 'text' })
  sealed!: string;

  @Property({ type: 'timestamptz', length: 3 })
  createdAt: Date = new Date();

  @Property({ type: 'timestamptz', length: 3, nullable: true })
  rotatedAt?: Date | null = null;
}

import { Entity, ManyToOne, OptionalProps, PrimaryKey, Property } from '@mikro-orm/core';
import { randomUUID } from 'node:crypto';
import { User } from '../auth/user.entity';

/** The event types an endpoint may subscribe to (API.md Part 3, Webhooks). */
export const WEBHOOK_EVENTS = [
  'upload.created',
  'upload.deleted',
  'upload.rejected',
  'api_key.created',
  'api_key.revoked',
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENTS)[number];

/** An endpoint an owner registered for events (upload.created unless it chose others). */
@Entity({ tableName: 'webhooks' })
export class Webhook {
  [OptionalProps]?:
    | 'id'
    | 'enabled'
    | 'createdAt'
    | 'lastSuccessAt'
    | 'lastFailureAt'
    | 'failureCount'
    | 'failingSince'
    | 'disabledReason'
    | 'disabledAt'
    | 'events';

  @PrimaryKey({ type: 'uuid' })
  id: string = randomUUID();

  @ManyToOne(() => User, { deleteRule: 'cascade', index: true })
  user!: User;

  @Property({ type: 'text' })
  url!: string;

  @Property({ type: 'boolean', default: true })
  enabled: boolean = true;

  @Property({ type: 'text[]', default: '{upload.created}' })
  events: WebhookEventType[] = ['upload.created'];

  @Property({ type: 'timestamptz', length: 3 })
  createdAt: Date = new Date();

  @Property({ type: 'timestamptz', length: 3, nullable: true })
  lastSuccessAt?: Date | null = null;

  @Property({ type: 'timestamptz', length: 3, nullable: true })
  lastFailureAt?: Date | null = null;

  /** Consecutive failed attempts since the last success. */
  @Property({ type: 'integer', default: 0 })
  failureCount: number = 0;

  /** The first failed attempt since the last success (null while healthy): auto-disable judges by its age. */
  @Property({ type: 'timestamptz', length: 3, nullable: true })
  failingSince?: Date | null = null;

  /** Why a disabled endpoint is off: its owner turned it off, or it went too long without a success. */
  @Property({ type: 'text', nullable: true })
  disabledReason?: WebhookDisabledReason | null = null;

  @Property({ type: 'timestamptz', length: 3, nullable: true })
  disabledAt?: Date | null = null;
}

export type WebhookDisabledReason = 'owner' | 'failing';

import { Entity, Index, ManyToOne, OptionalProps, PrimaryKey, Property } from '@mikro-orm/core';
import { randomUUID } from 'node:crypto';
import { Webhook } from './webhook.entity';

/**
 * One event for one endpoint, written in the transaction that made the event (the upload row), so a committed
 * upload always has its deliveries. The relay copies unrelayed rows to BullMQ; the worker delivers them.
 */
@Entity({ tableName: 'outbox_events' })
@Index({
  name: 'outbox_events_unrelayed_idx',
  properties: ['createdAt'],
  expression:
    'create index "outbox_events_unrelayed_idx" on "outbox_events" ("created_at") where "relayed_at" is null and "held_at" is null',
})
@Index({
  name: 'outbox_events_open_idx',
  properties: ['relayedAt', 'id'],
  expression:
    'create index "outbox_events_open_idx" on "outbox_events" ("relayed_at", "id") where "delivered_at" is null and "failed_at" is null and "relayed_at" is not null',
})
@Index({
  name: 'outbox_events_held_idx',
  properties: ['webhook'],
  expression:
    'create index "outbox_events_held_idx" on "outbox_events" ("webhook_id") where "held_at" is not null',
})
export class OutboxEvent {
  [OptionalProps]?:
    | 'id'
    | 'createdAt'
    | 'relayedAt'
    | 'attempts'
    | 'deliveredAt'
    | 'failedAt'
    | 'heldAt'
    | 'claimedUntil';

  /** Also the delivery id (X-Fixitfy-Delivery, the same on every retry) and the BullMQ job id. */
  @PrimaryKey({ type: 'uuid' })
  id: string = randomUUID();

  @ManyToOne(() => Webhook, { deleteRule: 'cascade', index: true })
  webhook!: Webhook;

  @Property({ type: 'text' })
  event!: string;

  /** The exact JSON body, fixed at event time: every retry sends (and signs) the same bytes. */
  @Property({ type: 'text' })
  body!: string;

  @Property({ type: 'timestamptz', length: 3 })
  createdAt: Date = new Date();

  /**
   * Set when the relay hands the event to the queue (claimed and marked in one statement, before the enqueue); the
   * reconciler re-enqueues an open event whose job Redis no longer has.
   */
  @Property({ type: 'timestamptz', length: 3, nullable: true })
  relayedAt?: Date | null = null;

  @Property({ type: 'integer', default: 0 })
  attempts: number = 0;

  @Property({ type: 'timestamptz', length: 3, nullable: true })
  deliveredAt?: Date | null = null;

  /** Gave up: the last attempt failed. */
  @Property({ type: 'timestamptz', length: 3, nullable: true })
  failedAt?: Date | null = null;

  /** Waiting for its endpoint to be enabled again (recorded while it was disabled, or paused by its owner). */
  @Property({ type: 'timestamptz', length: 3, nullable: true })
  heldAt?: Date | null = null;

  /** The lease of the worker sending an attempt right now: a second run of the job finds it taken. */
  @Property({ type: 'timestamptz', length: 3, nullable: true })
  claimedUntil?: Date | null = null;
}

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
    'create index "outbox_events_unrelayed_idx" on "outbox_events" ("created_at") where "relayed_at" is null',
})
export class OutboxEvent {
  [OptionalProps]?: 'id' | 'createdAt' | 'relayedAt' | 'attempts' | 'deliveredAt' | 'failedAt';

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

  /** Set once the job is in the queue; until then the relay keeps trying. */
  @Property({ type: 'timestamptz', length: 3, nullable: true })
  relayedAt?: Date | null = null;

  @Property({ type: 'integer', default: 0 })
  attempts: number = 0;

  @Property({ type: 'timestamptz', length: 3, nullable: true })
  deliveredAt?: Date | null = null;

  /** Gave up: the last attempt failed, or the endpoint was disabled or removed meanwhile. */
  @Property({ type: 'timestamptz', length: 3, nullable: true })
  failedAt?: Date | null = null;
}

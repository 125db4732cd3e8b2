import { Entity, Index, ManyToOne, OptionalProps, PrimaryKey, Property } from '@mikro-orm/core';
import { randomUUID } from 'node:crypto';
import { Webhook } from './webhook.entity';

/** One attempt to deliver one event to one endpoint (what the owner sees under /deliveries). */
@Entity({ tableName: 'webhook_deliveries' })
@Index({
  name: 'webhook_deliveries_listing_idx',
  properties: ['webhook', 'createdAt', 'id'],
  expression:
    'create index "webhook_deliveries_listing_idx" on "webhook_deliveries" ("webhook_id", "created_at" desc, "id" desc)',
})
export class WebhookDelivery {
  [OptionalProps]?: 'id' | 'createdAt' | 'statusCode' | 'error';

  @PrimaryKey({ type: 'uuid' })
  id: string = randomUUID();

  @ManyToOne(() => Webhook, { deleteRule: 'cascade' })
  webhook!: Webhook;

  /** X-Fixitfy-Delivery: the same for every attempt of one event to one endpoint. */
  @Property({ type: 'uuid' })
  deliveryId!: string;

  @Property({ type: 'text' })
  event!: string;

  @Property({ type: 'integer' })
  attempt!: number;

  @Property({ type: 'integer', nullable: true })
  statusCode?: number | null = null;

  @Property({ type: 'integer' })
  durationMs!: number;

  @Property({ type: 'text', nullable: true })
  error?: string | null = null;

  @Property({ type: 'boolean' })
  succeeded!: boolean;

  /** When the attempt started. */
  @Property({ type: 'timestamptz', length: 3 })
  createdAt: Date = new Date();
}

import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import {
  ArrayMinSize,
  ArrayUnique,
  IsArray,
  IsBoolean,
  IsIn,
  IsString,
  IsUUID,
  MaxLength,
  MinLength,
} from 'class-validator';
import { NOT_FOUND_IF_INVALID } from '../../../common/validation/id-param';
import { Omittable } from '../../../common/validation/omittable';
import { PageQuery } from '../../../common/validation/page-query';
import { WEBHOOK_EVENTS, type WebhookEventType } from '../webhook.entity';

const EVENTS_DOC =
  'The events sent to this endpoint: `upload.created`, `upload.deleted` (with `reason`: `owner`, `delete_link`, ' +
  '`admin` or `expired`), `upload.rejected` (NSFW review), `api_key.created`, `api_key.revoked`. Default ' +
  '`["upload.created"]`.';

const EVENTS_MESSAGE = `events must be a non-empty list of distinct values from ${WEBHOOK_EVENTS.join(', ')}`;

/** A non-empty subset of the event types, without repeats. */
function EventsProperty(): PropertyDecorator {
  return (target, key) => {
    ApiPropertyOptional({
      type: [String],
      enum: WEBHOOK_EVENTS,
      minItems: 1,
      uniqueItems: true,
      example: ['upload.created'],
      description: EVENTS_DOC,
    })(target, key);
    Omittable()(target, key);
    IsArray({ message: EVENTS_MESSAGE })(target, key);
    ArrayMinSize(1, { message: EVENTS_MESSAGE })(target, key);
    ArrayUnique({ message: EVENTS_MESSAGE })(target, key);
    IsIn(WEBHOOK_EVENTS, { each: true, message: EVENTS_MESSAGE })(target, key);
  };
}

const URL_DOC =
  'http or https only. Loopback, private, link-local and other non-public addresses are refused, at registration ' +
  'and again at delivery after DNS resolution, unless the operator set ALLOW_PRIVATE_WEBHOOKS.';

export class CreateWebhookDto {
  @ApiProperty({ example: 'https://example.com/webhooks/fixitfy', maxLength: 2048, description: URL_DOC })
  @IsString()
  @MinLength(1)
  @MaxLength(2048)
  url!: string;

  @ApiPropertyOptional({ example: true, default: true, description: 'Whether events are sent to it.' })
  @Omittable()
  @IsBoolean()
  enabled?: boolean;

  @EventsProperty()
  events?: WebhookEventType[];
}

export class UpdateWebhookDto {
  @ApiPropertyOptional({
    example: 'https://example.com/webhooks/fixitfy',
    maxLength: 2048,
    description: URL_DOC,
  })
  @Omittable()
  @IsString()
  @MinLength(1)
  @MaxLength(2048)
  url?: string;

  @ApiPropertyOptional({
    example: true,
    description:
      'Re-enabling an endpoint (also one disabled automatically) resets its failure_count and sends the events held ' +
      'while it was off. Turning it off stops new events and holds its scheduled retries until it is re-enabled.',
  })
  @Omittable()
  @IsBoolean()
  enabled?: boolean;

  @EventsProperty()
  events?: WebhookEventType[];
}

/** `limit` / `before` as every keyset-paged list. */
export class ListDeliveriesQuery extends PageQuery {}

export class WebhookResponse {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ example: 'https://example.com/webhooks/fixitfy' }) url!: string;
  @ApiProperty({
    example: true,
    description:
      'false when turned off by its owner, or automatically after no successful delivery for ' +
      'WEBHOOK_DISABLE_AFTER_DAYS (3 days by default) with at least WEBHOOK_DISABLE_MIN_FAILURES failed attempts.',
  })
  enabled!: boolean;
  @ApiProperty({ type: [String], enum: WEBHOOK_EVENTS, example: ['upload.created'], description: EVENTS_DOC })
  events!: WebhookEventType[];
  @ApiProperty({ format: 'date-time', example: '2026-06-01T12:00:00.000Z' }) created_at!: string;
  @ApiProperty({ type: String, format: 'date-time', nullable: true, example: '2026-06-01T12:00:01.000Z' })
  last_success_at!: string | null;
  @ApiProperty({ type: String, format: 'date-time', nullable: true, example: null }) last_failure_at!:
    | string
    | null;
  @ApiProperty({
    type: 'integer',
    example: 0,
    description: 'Consecutive failed attempts since the last success.',
  })
  failure_count!: number;
  @ApiProperty({
    type: String,
    nullable: true,
    enum: ['owner', 'failing'],
    example: null,
    description:
      'Why it is disabled: `owner` (turned off; nothing is recorded until re-enabled) or `failing` (no success for ' +
      'days: its scheduled retries still run and new events are held, then sent when it is re-enabled). null when enabled.',
  })
  disabled_reason!: 'owner' | 'failing' | null;
  @ApiProperty({
    type: String,
    format: 'date-time',
    nullable: true,
    example: null,
    description: 'When it was disabled; null when enabled.',
  })
  disabled_at!: string | null;
}

export class WebhookEnvelope {
  @ApiProperty({ example: true }) ok!: true;
  @ApiProperty({ type: WebhookResponse }) webhook!: WebhookResponse;
}

export class ListWebhooksResponse {
  @ApiProperty({ example: true }) ok!: true;
  @ApiProperty({ type: [WebhookResponse] }) webhooks!: WebhookResponse[];
}

export class DeletedWebhookResponse {
  @ApiProperty({ example: true }) ok!: true;
  @ApiProperty({ format: 'uuid' }) deleted!: string;
}

export class SigningSecretResponse {
  @ApiProperty({ example: true }) ok!: true;
  @ApiProperty({
    example: 'whsec_3f9a8c1e…',
    description:
      'The HMAC-SHA256 key for X-Fixitfy-Signature, used as shown (the whole string). The Standard Webhooks ' +
      'signature (`webhook-signature: v1,<base64>` over `<webhook-id>.<webhook-timestamp>.<body>`) is keyed with ' +
      'the part after `whsec_` base64-decoded, as every Standard Webhooks library does with this string.',
  })
  signing_secret!: string;
}

export class DeliveryResponse {
  @ApiProperty({ format: 'uuid', description: 'This attempt.' }) id!: string;
  @ApiProperty({ format: 'uuid', description: 'X-Fixitfy-Delivery: the same on every attempt of one event.' })
  delivery_id!: string;
  @ApiProperty({ example: 'upload.created', enum: [...WEBHOOK_EVENTS, 'ping'] }) event!: string;
  @ApiProperty({ type: 'integer', example: 1, description: '1 for the first try, then one more per retry.' })
  attempt!: number;
  @ApiProperty({ type: 'integer', nullable: true, example: 200, description: 'null when no answer came.' })
  status_code!: number | null;
  @ApiProperty({ type: 'integer', example: 84 }) duration_ms!: number;
  @ApiProperty({ type: String, nullable: true, example: null, description: 'Why the attempt failed.' })
  error!: string | null;
  @ApiProperty({ example: true }) succeeded!: boolean;
  @ApiProperty({
    format: 'date-time',
    example: '2026-06-01T12:00:00.000Z',
    description: 'When the attempt started.',
  })
  created_at!: string;
}

export class ListDeliveriesResponse {
  @ApiProperty({ example: true }) ok!: true;
  @ApiProperty({ type: 'integer', example: 50 }) count!: number;
  @ApiProperty({
    type: String,
    nullable: true,
    example: '2026-06-01T12:00:00.000Z',
    description:
      'Pass back as `before` for the next page; null on the last page. An ISO timestamp, followed by `~<id>` when the page ends among attempts sharing a timestamp.',
  })
  next_before!: string | null;
  @ApiProperty({ type: [DeliveryResponse] }) deliveries!: DeliveryResponse[];
}

/** Like IdParam: an id that is not a UUID names no resource, so it answers 404 like an unknown one. */
export class RedeliverParams {
  @ApiProperty({ format: 'uuid' })
  @IsUUID('all', { context: NOT_FOUND_IF_INVALID })
  id!: string;

  @ApiProperty({ format: 'uuid', description: 'A delivery_id from the deliveries list.' })
  @IsUUID('all', { context: NOT_FOUND_IF_INVALID })
  delivery_id!: string;
}

export class TestDeliveryResponse {
  @ApiProperty({ example: true }) ok!: true;
  @ApiProperty({ type: DeliveryResponse, description: 'The ping attempt, made before this answer.' })
  delivery!: DeliveryResponse;
}

import { MikroOrmModule } from '@mikro-orm/nestjs';
import { Module } from '@nestjs/common';
import { WebhookDeliveryProcessor } from './delivery.processor';
import { HostResolver } from './host-resolver';
import { OutboxEvent } from './outbox-event.entity';
import { OutboxRelay } from './outbox-relay.processor';
import { OutboxService } from './outbox.service';
import { SigningSecretsService } from './signing-secrets.service';
import { SsrfGuard } from './ssrf-guard';
import { Webhook } from './webhook.entity';
import { WebhookDelivery } from './webhook-delivery.entity';
import { WebhookDeliveryService } from './webhook-delivery.service';
import { WebhookQueue } from './webhook-queue';
import { WebhookSecret } from './webhook-secret.entity';
import { WebhookSender } from './webhook-sender';
import { WebhooksController } from './webhooks.controller';
import { WebhookReconciler } from './webhook-reconciler.service';
import { WebhookRetentionService } from './webhook-retention.service';
import { WebhooksService } from './webhooks.service';

/**
 * Webhooks: endpoints and the signing secret (session API), the outbox written with each upload, the relay to
 * BullMQ and the delivery worker. Never imports uploads: the uploads module calls OutboxService.
 */
@Module({
  imports: [MikroOrmModule.forFeature([Webhook, WebhookSecret, OutboxEvent, WebhookDelivery])],
  controllers: [WebhooksController],
  providers: [
    WebhooksService,
    SigningSecretsService,
    WebhookDeliveryService,
    OutboxService,
    OutboxRelay,
    WebhookQueue,
    WebhookDeliveryProcessor,
    SsrfGuard,
    HostResolver,
    WebhookSender,
    WebhookRetentionService,
    WebhookReconciler,
  ],
  exports: [OutboxService],
})
export class WebhooksModule {}

import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
import { ApiCreatedResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Auth } from '../../common/auth/auth.decorator';
import { CurrentPrincipal } from '../../common/auth/current-principal.decorator';
import type { Principal } from '../../common/auth/principal';
import { ApiErrorResponses } from '../../common/errors/error-response';
import { ReqMeta, type RequestMeta } from '../../common/http/request-meta';
import {
  CreateWebhookDto,
  DeletedWebhookResponse,
  ListDeliveriesQuery,
  ListDeliveriesResponse,
  ListWebhooksResponse,
  RedeliverParams,
  SigningSecretResponse,
  TestDeliveryResponse,
  UpdateWebhookDto,
  WebhookEnvelope,
} from './dto/webhook.dto';
import { WebhooksService } from './webhooks.service';
import { IdParam } from '../../common/validation/id-param';
import { NoStore } from '../../common/http/no-store';

@ApiTags('Webhooks')
@Controller('api/v1/webhooks')
@Auth('session')
export class WebhooksController {
  constructor(private readonly webhooks: WebhooksService) {}

  @Get('secret')
  @NoStore()
  @ApiOperation({
    operationId: 'getWebhookSecret',
    summary: "The account's signing secret (made on first use)",
  })
  @ApiOkResponse({ type: SigningSecretResponse })
  secret(@CurrentPrincipal() p: Principal): Promise<SigningSecretResponse> {
    return this.webhooks.secret(p.userId);
  }

  @Post('secret/rotate')
  @HttpCode(200)
  @NoStore()
  @ApiOperation({
    operationId: 'rotateWebhookSecret',
    summary: 'Replace the signing secret; later deliveries are signed with the new one',
  })
  @ApiOkResponse({ type: SigningSecretResponse })
  rotateSecret(
    @CurrentPrincipal() p: Principal,
    @ReqMeta() meta: RequestMeta,
  ): Promise<SigningSecretResponse> {
    return this.webhooks.rotateSecret(p.userId, meta);
  }

  @Post()
  @HttpCode(201)
  @ApiOperation({
    operationId: 'createWebhook',
    summary: 'Register an endpoint for events (upload.created unless `events` says otherwise; at most 10)',
  })
  @ApiCreatedResponse({ type: WebhookEnvelope })
  @ApiErrorResponses('bad_request', 'conflict')
  create(
    @CurrentPrincipal() p: Principal,
    @Body() dto: CreateWebhookDto,
    @ReqMeta() meta: RequestMeta,
  ): Promise<WebhookEnvelope> {
    return this.webhooks.create(p.userId, dto.url, dto.enabled, meta, dto.events);
  }

  @Get()
  @ApiOperation({ operationId: 'listWebhooks', summary: 'Your webhook endpoints' })
  @ApiOkResponse({ type: ListWebhooksResponse })
  async list(@CurrentPrincipal() p: Principal): Promise<ListWebhooksResponse> {
    return { ok: true, webhooks: await this.webhooks.list(p.userId) };
  }

  @Patch(':id')
  @ApiOperation({
    operationId: 'updateWebhook',
    summary: 'Change the URL of an endpoint or turn it on or off',
  })
  @ApiOkResponse({ type: WebhookEnvelope })
  @ApiErrorResponses('bad_request', 'not_found')
  update(
    @CurrentPrincipal() p: Principal,
    @Param() { id }: IdParam,
    @Body() dto: UpdateWebhookDto,
  ): Promise<WebhookEnvelope> {
    return this.webhooks.update(p.userId, id, dto);
  }

  @Delete(':id')
  @ApiOperation({
    operationId: 'deleteWebhook',
    summary: 'Delete an endpoint; its pending deliveries are dropped',
  })
  @ApiOkResponse({ type: DeletedWebhookResponse })
  @ApiErrorResponses('not_found')
  remove(
    @CurrentPrincipal() p: Principal,
    @Param() { id }: IdParam,
    @ReqMeta() meta: RequestMeta,
  ): Promise<DeletedWebhookResponse> {
    return this.webhooks.remove(p.userId, id, meta);
  }

  @Get(':id/deliveries')
  @ApiOperation({
    operationId: 'listWebhookDeliveries',
    summary: 'Recent delivery attempts to an endpoint, newest first, keyset-paged',
  })
  @ApiOkResponse({ type: ListDeliveriesResponse })
  @ApiErrorResponses('bad_request', 'not_found')
  deliveries(
    @CurrentPrincipal() p: Principal,
    @Param() { id }: IdParam,
    @Query() q: ListDeliveriesQuery,
  ): Promise<ListDeliveriesResponse> {
    return this.webhooks.listDeliveries(p.userId, id, q);
  }

  @Post(':id/deliveries/:delivery_id/redeliver')
  @HttpCode(200)
  @ApiOperation({
    operationId: 'redeliverWebhook',
    summary: 'Send a past delivery again now, with the same delivery id, and answer with the attempt',
    description:
      'The same event body under the same `X-Fixitfy-Delivery` / `webhook-id`, freshly timestamped and signed; ' +
      'recorded as one more attempt (also to a disabled endpoint). Its scheduled retries are not changed.',
  })
  @ApiOkResponse({ type: TestDeliveryResponse })
  @ApiErrorResponses('bad_request', 'not_found')
  redeliver(
    @CurrentPrincipal() p: Principal,
    @Param() { id, delivery_id }: RedeliverParams,
  ): Promise<TestDeliveryResponse> {
    return this.webhooks.redeliver(p.userId, id, delivery_id);
  }

  @Post(':id/test')
  @HttpCode(200)
  @ApiOperation({
    operationId: 'testWebhook',
    summary: 'Send a signed ping event to the endpoint now and answer with the attempt',
  })
  @ApiOkResponse({ type: TestDeliveryResponse })
  @ApiErrorResponses('not_found')
  test(@CurrentPrincipal() p: Principal, @Param() { id }: IdParam): Promise<TestDeliveryResponse> {
    return this.webhooks.ping(p.userId, id);
  }
}

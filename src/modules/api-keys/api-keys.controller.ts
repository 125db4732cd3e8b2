import { Body, Controller, Delete, Get, HttpCode, Param, Post } from '@nestjs/common';
import { ApiCreatedResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Auth } from '../../common/auth/auth.decorator';
import { CurrentPrincipal } from '../../common/auth/current-principal.decorator';
import type { Principal } from '../../common/auth/principal';
import { ApiErrorResponses } from '../../common/errors/error-response';
import { ReqMeta, type RequestMeta } from '../../common/http/request-meta';
import { ApiKeysService } from './api-keys.service';
import { CreateKeyDto, CreateKeyResponse, ListKeysResponse, RevokeKeyResponse } from './dto/api-key.dto';
import { IdParam } from '../../common/validation/id-param';
import { NoStore } from '../../common/http/no-store';

@ApiTags('API keys')
@Controller('api/v1/keys')
export class ApiKeysController {
  constructor(private readonly keys: ApiKeysService) {}

  @Post()
  @HttpCode(201)
  @Auth('session')
  @NoStore()
  @ApiOperation({
    operationId: 'createKey',
    summary: 'Create an API key; the token is shown once',
    description:
      'Optional `scopes` limit what the key may do (absent = all). Audit `api_key.created` records them.',
  })
  @ApiCreatedResponse({ type: CreateKeyResponse })
  @ApiErrorResponses('bad_request', 'conflict')
  create(
    @CurrentPrincipal() principal: Principal,
    @Body() dto: CreateKeyDto,
    @ReqMeta() meta: RequestMeta,
  ): Promise<CreateKeyResponse> {
    return this.keys.create(principal.userId, dto.label, meta, {
      scopes: dto.scopes,
      defaultExpiresIn: dto.default_expires_in,
    });
  }

  @Get()
  @Auth('session')
  @ApiOperation({ operationId: 'listKeys', summary: 'List your API keys (never a token or a hash)' })
  @ApiOkResponse({ type: ListKeysResponse })
  async list(@CurrentPrincipal() principal: Principal): Promise<ListKeysResponse> {
    return { ok: true, keys: await this.keys.list(principal.userId) };
  }

  @Delete(':id')
  @Auth('session')
  @ApiOperation({ operationId: 'revokeKey', summary: 'Revoke an API key, instantly on every instance' })
  @ApiOkResponse({ type: RevokeKeyResponse })
  @ApiErrorResponses('not_found')
  revoke(
    @CurrentPrincipal() principal: Principal,
    @Param() { id }: IdParam,
    @ReqMeta() meta: RequestMeta,
  ): Promise<RevokeKeyResponse> {
    return this.keys.revoke(principal.userId, id, meta);
  }
}

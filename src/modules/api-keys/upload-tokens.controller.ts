import { Body, Controller, HttpCode, Post } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { RequireScopes } from '../../common/auth/scopes';
import { Auth } from '../../common/auth/auth.decorator';
import { CurrentPrincipal } from '../../common/auth/current-principal.decorator';
import type { KeyPrincipal } from '../../common/auth/principal';
import { ApiErrorResponses } from '../../common/errors/error-response';
import { RateLimit } from '../../common/rate-limit/rate-limit.decorator';
import { CreateUploadTokenDto, UploadTokenResponse } from './dto/upload-token.dto';
import { normaliseTokenTags, UPLOAD_TOKEN_TTL, UPLOAD_TOKEN_TYPES } from './upload-token';
import { UploadTokensService } from './upload-tokens.service';
import { NoStore } from '../../common/http/no-store';

@ApiTags('Upload tokens')
@Controller('api/v1/upload-token')
export class UploadTokensController {
  constructor(private readonly tokens: UploadTokensService) {}

  @RateLimit('management')
  @Post()
  @HttpCode(200)
  @Auth('key')
  @NoStore()
  @RequireScopes('upload')
  @ApiOperation({
    operationId: 'createUploadToken',
    summary: 'Mint a temporary upload token (ut_) with an API key',
    description:
      'Stateless and signed; valid on POST /api/v1/upload only, until `expires_at`. It cannot be revoked on its own ' +
      "but dies with its minting key (401) and with its owner's ban (403 `banned`); its uploads count against the " +
      "minting key's rate limits and request_count. Needs an `fxf_` key with the `upload` scope: a session or " +
      'another upload token gets 403.\n\nOptional constraints, signed into the token: `max_bytes` (a larger file → 413 ' +
      '`too_large`), `allowed_types` (another type → 415 `unsupported_type`), `tags` (added to every upload) and ' +
      '`max_uploads` (N successful uploads, counted across instances; then 403 `forbidden`). A failed upload does ' +
      'not use the token up; a dedupe hit (200) does.',
  })
  @ApiOkResponse({ type: UploadTokenResponse })
  @ApiErrorResponses('bad_request')
  create(
    @CurrentPrincipal() principal: KeyPrincipal,
    @Body() dto: CreateUploadTokenDto,
  ): UploadTokenResponse {
    return this.tokens.mint(principal, dto.ttl_seconds ?? UPLOAD_TOKEN_TTL.default, {
      maxBytes: dto.max_bytes,
      allowedTypes: dto.allowed_types && UPLOAD_TOKEN_TYPES.filter((t) => dto.allowed_types!.includes(t)),
      tags: dto.tags && normaliseTokenTags(dto.tags),
      maxUploads: dto.max_uploads,
    });
  }
}

import { Body, Controller, Delete, Get, Head, Param, Patch, Query } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { RequireScopes } from '../../common/auth/scopes';
import { Auth } from '../../common/auth/auth.decorator';
import { CurrentPrincipal } from '../../common/auth/current-principal.decorator';
import type { Principal } from '../../common/auth/principal';
import { ApiErrorResponses } from '../../common/errors/error-response';
import { ReqMeta, type RequestMeta } from '../../common/http/request-meta';
import { RateLimit } from '../../common/rate-limit/rate-limit.decorator';
import {
  DeletedResponse,
  HashParam,
  ListUploadsQuery,
  ListUploadsResponse,
  UpdateTagsDto,
  UploadDetailResponse,
} from './dto/upload.dto';
import { UploadsService } from './uploads.service';

@RateLimit('management')
@ApiTags('Uploads')
@Controller('api/v1/uploads')
@Auth('user')
export class UploadsController {
  constructor(private readonly uploads: UploadsService) {}

  @Get()
  @RequireScopes('read')
  @ApiOperation({ operationId: 'listUploads', summary: 'Your live uploads, newest first, keyset-paged' })
  @ApiOkResponse({ type: ListUploadsResponse })
  @ApiErrorResponses('bad_request', 'rate_limit')
  async list(@CurrentPrincipal() p: Principal, @Query() q: ListUploadsQuery): Promise<ListUploadsResponse> {
    return { ok: true, ...(await this.uploads.list(p.userId, q)) };
  }

  @Head('by-hash/:sha256')
  @RequireScopes('read')
  @ApiOperation({
    operationId: 'headUploadByHash',
    summary: 'Whether you already have this content live (200) or not (404), without a body',
    description:
      'A pre-upload check: SHA-256 of the bytes you would send (lowercase or uppercase hex). 200 when one of your ' +
      'live uploads has exactly these bytes (an upload would be a dedupe hit), else 404; a malformed hash is 400.',
  })
  @ApiOkResponse({ description: 'You have this content live.' })
  @ApiErrorResponses('bad_request', 'not_found', 'rate_limit')
  async headByHash(@CurrentPrincipal() p: Principal, @Param() { sha256 }: HashParam): Promise<void> {
    await this.uploads.getByHash(p.userId, sha256);
  }

  @Get('by-hash/:sha256')
  @RequireScopes('read')
  @ApiOperation({
    operationId: 'getUploadByHash',
    summary: 'Your live upload with these bytes (SHA-256 as uploaded), or 404',
  })
  @ApiOkResponse({ type: UploadDetailResponse })
  @ApiErrorResponses('bad_request', 'not_found', 'rate_limit')
  async getByHash(
    @CurrentPrincipal() p: Principal,
    @Param() { sha256 }: HashParam,
  ): Promise<UploadDetailResponse> {
    return { ok: true, upload: await this.uploads.getByHash(p.userId, sha256) };
  }

  @Get(':filename')
  @RequireScopes('read')
  @ApiOperation({ operationId: 'getUpload', summary: 'One of your uploads' })
  @ApiOkResponse({ type: UploadDetailResponse })
  @ApiErrorResponses('not_found', 'rate_limit')
  async get(
    @CurrentPrincipal() p: Principal,
    @Param('filename') filename: string,
  ): Promise<UploadDetailResponse> {
    return { ok: true, upload: await this.uploads.get(p.userId, filename) };
  }

  @Patch(':filename')
  @RequireScopes('upload')
  @ApiOperation({ operationId: 'updateUploadTags', summary: 'Replace the tags of an upload' })
  @ApiOkResponse({ type: UploadDetailResponse })
  @ApiErrorResponses('bad_request', 'not_found', 'rate_limit')
  async patch(
    @CurrentPrincipal() p: Principal,
    @Param('filename') filename: string,
    @Body() dto: UpdateTagsDto,
  ): Promise<UploadDetailResponse> {
    return { ok: true, upload: await this.uploads.setTags(p.userId, filename, dto.tags) };
  }

  @Delete(':filename')
  @RequireScopes('delete')
  @ApiOperation({
    operationId: 'deleteUpload',
    summary: 'Soft-delete an upload; its direct link answers 404 at once',
  })
  @ApiOkResponse({ type: DeletedResponse })
  @ApiErrorResponses('not_found', 'rate_limit')
  delete(
    @CurrentPrincipal() p: Principal,
    @Param('filename') filename: string,
    @ReqMeta() meta: RequestMeta,
  ): Promise<DeletedResponse> {
    return this.uploads.deleteOwned(p.userId, filename, meta);
  }
}

import { Controller, HttpCode, Post, Req } from '@nestjs/common';
import { ApiBody, ApiConsumes, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { Request } from 'express';
import { RequireScopes } from '../../common/auth/scopes';
import { Auth } from '../../common/auth/auth.decorator';
import { CurrentPrincipal } from '../../common/auth/current-principal.decorator';
import type { Principal } from '../../common/auth/principal';
import { ApiErrorResponses } from '../../common/errors/error-response';
import { RateLimit } from '../../common/rate-limit/rate-limit.decorator';
import { UploadFormDto, UploadResponse } from './dto/upload.dto';
import { UploadPipelineService } from './upload-pipeline.service';
import { NoStore } from '../../common/http/no-store';

@ApiTags('Upload')
@Controller('api/v1/upload')
export class UploadController {
  constructor(private readonly pipeline: UploadPipelineService) {}

  @RateLimit('uploads')
  @Post()
  @HttpCode(200)
  @Auth('upload')
  @NoStore()
  @RequireScopes('upload')
  @ApiOperation({
    operationId: 'upload',
    summary: 'Upload an image',
    description:
      'multipart/form-data with one `file` part and an optional `tags` text part. Same bytes from the same owner → the existing upload with `deduplicated: true`.',
  })
  @ApiConsumes('multipart/form-data')
  @ApiBody({ type: UploadFormDto })
  @ApiOkResponse({ type: UploadResponse })
  @ApiErrorResponses(
    'bad_request',
    'missing_file',
    'empty_file',
    'too_large',
    'unsupported_type',
    'nsfw_rejected',
    'processing_failed',
    'rate_limit',
    'rate_limit_day',
    'storage_failed',
    'db_failed',
    'unavailable',
  )
  upload(@CurrentPrincipal() principal: Principal, @Req() req: Request): Promise<UploadResponse> {
    return this.pipeline.handle(principal, req);
  }
}

import { Controller, Get, Req } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { RequireScopes } from '../../common/auth/scopes';
import { Auth } from '../../common/auth/auth.decorator';
import { type AuthedRequest, CurrentPrincipal } from '../../common/auth/current-principal.decorator';
import type { Principal } from '../../common/auth/principal';
import { ApiErrorResponses } from '../../common/errors/error-response';
import { RateLimit } from '../../common/rate-limit/rate-limit.decorator';
import { MeResponse } from './dto/upload.dto';
import { UploadsService } from './uploads.service';

@ApiTags('Account')
@Controller('api/v1/me')
export class MeController {
  constructor(private readonly uploads: UploadsService) {}

  @RateLimit('management')
  @Get()
  @Auth('user')
  @RequireScopes('read')
  @ApiOperation({
    operationId: 'getMe',
    summary: 'Your account usage and the calling key (request_count is exact)',
  })
  @ApiOkResponse({ type: MeResponse })
  @ApiErrorResponses('rate_limit')
  me(@CurrentPrincipal() p: Principal, @Req() req: AuthedRequest): Promise<MeResponse> {
    return this.uploads.me(p, req.counted);
  }
}

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
  async me(@CurrentPrincipal() p: Principal, @Req() req: AuthedRequest): Promise<MeResponse> {
    // The calling key came with the principal (the guard's one query), and its running request_count, this request
    // included, with the guard's count in Redis: what is left is the account's usage.
    const [stats, counted] = await Promise.all([this.uploads.accountStats(p.userId), req.counted]);
    return {
      ok: true,
      account: { email: p.email, role: p.role, ...stats },
      key:
        p.kind === 'session'
          ? null
          : {
              prefix: p.keyPrefix,
              label: p.keyLabel,
              scopes: p.scopes,
              // The database's figure when Redis lost or never gave one (never lower than what was flushed).
              request_count: Math.max(p.storedRequestCount, counted ?? 0),
              created_at: p.keyCreatedAt.toISOString(),
            },
    };
  }
}

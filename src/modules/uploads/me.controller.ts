import { Controller, Get } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { RequireScopes } from '../../common/auth/scopes';
import { Auth } from '../../common/auth/auth.decorator';
import { CurrentPrincipal } from '../../common/auth/current-principal.decorator';
import type { Principal } from '../../common/auth/principal';
import { ApiErrorResponses } from '../../common/errors/error-response';
import { RateLimit } from '../../common/rate-limit/rate-limit.decorator';
import { ApiKeysService } from '../api-keys/api-keys.service';
import { MeResponse } from './dto/upload.dto';
import { UploadsService } from './uploads.service';

@ApiTags('Account')
@Controller('api/v1/me')
export class MeController {
  constructor(
    private readonly uploads: UploadsService,
    private readonly keys: ApiKeysService,
  ) {}

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
  async me(@CurrentPrincipal() p: Principal): Promise<MeResponse> {
    // Two independent reads: side by side, one round trip of waiting instead of two.
    const [stats, key] = await Promise.all([
      this.uploads.accountStats(p.userId),
      p.kind === 'session' ? null : this.keys.get(p.userId, p.keyId),
    ]);
    return {
      ok: true,
      account: { email: p.email, role: p.role, ...stats },
      key: key && {
        prefix: key.prefix,
        label: key.label,
        scopes: key.scopes,
        request_count: key.request_count,
        created_at: key.created_at,
      },
    };
  }
}

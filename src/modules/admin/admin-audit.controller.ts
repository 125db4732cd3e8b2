import { Controller, Get, Query } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { RequireScopes } from '../../common/auth/scopes';
import { Auth } from '../../common/auth/auth.decorator';
import { ApiErrorResponses } from '../../common/errors/error-response';
import { AdminService } from './admin.service';
import { AuditListResponse, AuditQueryDto } from './dto/admin.dto';

@ApiTags('Admin')
@Controller('api/v1/admin/audit')
@Auth('admin')
// An admin's key needs every scope: a narrowed key never acts as an admin.
@RequireScopes('upload', 'read', 'delete')
export class AdminAuditController {
  constructor(private readonly admin: AdminService) {}

  @Get()
  @ApiOperation({
    operationId: 'adminListAudit',
    summary: 'The append-only audit log, newest first, filtered by action, actor or target',
  })
  @ApiOkResponse({ type: AuditListResponse })
  @ApiErrorResponses('bad_request')
  async list(@Query() q: AuditQueryDto): Promise<AuditListResponse> {
    return this.admin.listAudit(q);
  }
}

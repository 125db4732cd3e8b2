import { Body, Controller, Get, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { RequireScopes } from '../../common/auth/scopes';
import { Auth } from '../../common/auth/auth.decorator';
import { ApiErrorResponses } from '../../common/errors/error-response';
import { ReqMeta, type RequestMeta } from '../../common/http/request-meta';
import { AdminService } from './admin.service';
import {
  AdminUserResponse,
  AdminUsersResponse,
  BanDto,
  UpdateUserQuotaDto,
  UsersQueryDto,
} from './dto/admin.dto';
import { IdParam } from '../../common/validation/id-param';

@ApiTags('Admin')
@Controller('api/v1/admin/users')
@Auth('admin')
// An admin's key needs every scope: a narrowed key never acts as an admin.
@RequireScopes('upload', 'read', 'delete')
export class AdminUsersController {
  constructor(private readonly admin: AdminService) {}

  @Get()
  @ApiOperation({
    operationId: 'adminListUsers',
    summary: 'Users with role, ban state and usage; search by email',
  })
  @ApiOkResponse({ type: AdminUsersResponse })
  @ApiErrorResponses('bad_request')
  list(@Query() q: UsersQueryDto): Promise<AdminUsersResponse> {
    return this.admin.listUsers(q);
  }

  @Post(':id/ban')
  @HttpCode(200)
  @ApiOperation({
    operationId: 'adminBanUser',
    summary: 'Ban a user: every key, token and session of theirs answers 403 banned at once',
  })
  @ApiOkResponse({ type: AdminUserResponse })
  @ApiErrorResponses('bad_request', 'not_found', 'conflict')
  ban(
    @Param() { id }: IdParam,
    @Body() dto: BanDto,
    @ReqMeta() meta: RequestMeta,
  ): Promise<AdminUserResponse> {
    return this.admin.ban(id, dto.reason, meta);
  }

  @Patch(':id')
  @ApiOperation({
    operationId: 'adminUpdateUser',
    summary:
      "Set a user's storage quotas (a number, or null for the server default); audit user.quota_changed",
  })
  @ApiOkResponse({ type: AdminUserResponse })
  @ApiErrorResponses('bad_request', 'not_found')
  update(
    @Param() { id }: IdParam,
    @Body() dto: UpdateUserQuotaDto,
    @ReqMeta() meta: RequestMeta,
  ): Promise<AdminUserResponse> {
    return this.admin.setQuota(id, { bytes: dto.quota_bytes, files: dto.quota_files }, meta);
  }

  @Post(':id/unban')
  @HttpCode(200)
  @ApiOperation({ operationId: 'adminUnbanUser', summary: 'Lift a ban' })
  @ApiOkResponse({ type: AdminUserResponse })
  @ApiErrorResponses('not_found')
  unban(@Param() { id }: IdParam, @ReqMeta() meta: RequestMeta): Promise<AdminUserResponse> {
    return this.admin.unban(id, meta);
  }
}

import { Controller, Delete, Get, Param, Query } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { RequireScopes } from '../../common/auth/scopes';
import { Auth } from '../../common/auth/auth.decorator';
import { ApiErrorResponses } from '../../common/errors/error-response';
import { ReqMeta, type RequestMeta } from '../../common/http/request-meta';
import { DeletedResponse } from '../uploads/dto/upload.dto';
import { UploadsService } from '../uploads/uploads.service';
import { AdminService } from './admin.service';
import { AdminUploadsQueryDto, AdminUploadsResponse } from './dto/admin.dto';

@ApiTags('Admin')
@Controller('api/v1/admin/uploads')
@Auth('admin')
// An admin's key needs every scope: a narrowed key never acts as an admin.
@RequireScopes('upload', 'read', 'delete')
export class AdminUploadsController {
  constructor(
    private readonly uploads: UploadsService,
    private readonly admin: AdminService,
  ) {}

  @Get()
  @ApiOperation({
    operationId: 'adminListUploads',
    summary: 'Live uploads of every user (or of one with ?user=, an id or an email), newest first',
  })
  @ApiOkResponse({ type: AdminUploadsResponse })
  @ApiErrorResponses('bad_request')
  async list(@Query() q: AdminUploadsQueryDto): Promise<AdminUploadsResponse> {
    return this.admin.listUploads(q);
  }

  @Delete(':filename')
  @ApiOperation({
    operationId: 'adminDeleteUpload',
    summary: "Delete anyone's upload; its direct link answers 404 at once",
  })
  @ApiOkResponse({ type: DeletedResponse })
  @ApiErrorResponses('not_found')
  delete(@Param('filename') filename: string, @ReqMeta() meta: RequestMeta): Promise<DeletedResponse> {
    return this.uploads.deleteAny(filename, meta);
  }
}

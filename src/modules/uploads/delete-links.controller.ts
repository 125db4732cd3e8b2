import { Controller, Delete, Get, HttpCode, Param, Post } from '@nestjs/common';
import { ApiDefaultResponse, ApiOkResponse, ApiOperation, ApiParam, ApiTags } from '@nestjs/swagger';
import { Public } from '../../common/auth/auth.decorator';
import { AppError } from '../../common/errors/app-error';
import { ApiErrorResponses, ErrorResponse } from '../../common/errors/error-response';
import { refusingRoute } from '../../common/http/allowed-methods';
import { ReqMeta, type RequestMeta } from '../../common/http/request-meta';
import { DeletedResponse } from './dto/upload.dto';
import { DeleteLinksService } from './delete-links.service';

/** A wrong method on a delete link answers 405 with `Allow: POST, DELETE`: its GET only ever refuses. */
refusingRoute('/api/delete/:token', 'get');

@ApiTags('Delete links')
@ApiParam({
  name: 'token',
  type: String,
  description:
    'The one-shot token of the delete link (`delete_url`): 64 hex characters; anything else is 404.',
})
@Controller('api/delete/:token')
@Public()
export class DeleteLinksController {
  constructor(private readonly deleteLinks: DeleteLinksService) {}

  @Delete()
  @ApiOperation({
    operationId: 'deleteWithLink',
    summary: 'Delete an upload with its one-shot delete link (no auth)',
  })
  @ApiOkResponse({ type: DeletedResponse })
  @ApiErrorResponses('not_found')
  delete(@Param('token') token: string, @ReqMeta() meta: RequestMeta): Promise<DeletedResponse> {
    return this.deleteLinks.deleteByToken(token, meta);
  }

  @Post()
  @HttpCode(200)
  @ApiOperation({
    operationId: 'deleteWithLinkPost',
    summary: 'The same as DELETE, for clients that can only POST',
  })
  @ApiOkResponse({ type: DeletedResponse })
  @ApiErrorResponses('not_found')
  post(@Param('token') token: string, @ReqMeta() meta: RequestMeta): Promise<DeletedResponse> {
    return this.deleteLinks.deleteByToken(token, meta);
  }

  /** Link previewers fetch URLs: GET never deletes. */
  @Get()
  @ApiOperation({
    operationId: 'getDeleteLink',
    summary: 'Never deletes: answers 405 with Allow: DELETE, POST',
  })
  @ApiErrorResponses('method_not_allowed')
  @ApiDefaultResponse({
    type: ErrorResponse,
    description: 'Never a success: a GET deletes nothing (405 `method_not_allowed`).',
  })
  get(): never {
    throw new AppError('method_not_allowed', 'Use DELETE or POST on a delete link; GET never deletes.', {
      headers: { Allow: 'DELETE, POST' },
    });
  }
}

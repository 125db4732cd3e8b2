import { Controller, Get, Head, Param, Req, Res } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiProduces, ApiResponse, ApiTags } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { Public } from '../../common/auth/auth.decorator';
import { AppError } from '../../common/errors/app-error';
import { ApiErrorResponses } from '../../common/errors/error-response';
import { StorageDriver } from '../storage/storage-driver';
import { UploadsService } from '../uploads/uploads.service';
import { sendImage } from './image-response';

@ApiTags('Direct links')
@Controller('images')
@Public()
export class ImagesController {
  constructor(
    private readonly uploads: UploadsService,
    private readonly storage: StorageDriver,
  ) {}

  @Head(':filename')
  @ApiOperation({ operationId: 'headImage', summary: 'Headers of a stored image' })
  @ApiOkResponse({ description: 'Headers only.' })
  @ApiErrorResponses('not_found')
  head(@Param('filename') filename: string, @Req() req: Request, @Res() res: Response): Promise<void> {
    return this.serve(filename, req, res, false);
  }

  @Get(':filename')
  @ApiOperation({ operationId: 'getImage', summary: 'The stored image bytes (ETag, 304, Range/206)' })
  @ApiProduces('image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/avif')
  @ApiOkResponse({ description: 'The image.', schema: { type: 'string', format: 'binary' } })
  @ApiResponse({ status: 206, description: 'A byte range of the image.' })
  @ApiResponse({ status: 304, description: 'Not modified (If-None-Match matched the ETag).' })
  @ApiErrorResponses('not_found', 'range_not_satisfiable')
  get(@Param('filename') filename: string, @Req() req: Request, @Res() res: Response): Promise<void> {
    return this.serve(filename, req, res, true);
  }

  private async serve(filename: string, req: Request, res: Response, withBody: boolean): Promise<void> {
    const upload = await this.uploads.findServable(filename);
    if (!upload) {
      throw new AppError('not_found', 'No such image.');
    }
    await sendImage(
      this.storage,
      {
        key: upload.filename,
        etag: `"${upload.storedSha256}"`,
        size: upload.size,
        mime: upload.mime,
        lastModified: upload.createdAt,
      },
      req,
      res,
      withBody,
    );
  }
}

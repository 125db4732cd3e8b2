import { Controller, Get, Head, Param, Req, Res } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiProduces, ApiResponse, ApiTags } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { pipeline } from 'node:stream/promises';
import rangeParser from 'range-parser';
import { Public } from '../../common/auth/auth.decorator';
import { AppError } from '../../common/errors/app-error';
import { ApiErrorResponses } from '../../common/errors/error-response';
import { StorageDriver } from './storage/storage-driver';
import { UploadsService } from './uploads.service';

const CACHE_CONTROL = 'public, max-age=86400';

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

  /**
   * Representation headers (type, length, ETag, caching) go out only once the stored bytes are open: a row whose
   * file is missing answers the 404 envelope with `Cache-Control: no-store`, never a cacheable "image". HEAD and
   * 304 open the file too, so they never vouch for bytes that aren't there.
   */
  private async serve(filename: string, req: Request, res: Response, withBody: boolean): Promise<void> {
    const upload = await this.uploads.findServable(filename);
    if (!upload) {
      throw new AppError('not_found', 'No such image.');
    }
    const etag = `"${upload.storedSha256}"`;
    // RFC 9110 §13.2.2: If-None-Match is evaluated before Range.
    const notModified = etagMatches(req.header('if-none-match'), etag);
    let range: { start: number; end: number } | undefined;
    let unsatisfiable = false;
    const rangeHeader = req.header('range');
    const ifRange = req.header('if-range');
    if (!notModified && rangeHeader && (!ifRange || ifRange === etag)) {
      const parsed = rangeParser(upload.size, rangeHeader, { combine: true });
      unsatisfiable = parsed === -1;
      // One range is served as 206; a malformed header or several ranges get the whole file (RFC 9110 allows it).
      if (parsed !== -1 && parsed !== -2 && parsed.type === 'bytes' && parsed.length === 1) {
        range = { start: parsed[0].start, end: parsed[0].end };
      }
    }
    const stream = await this.storage.get(upload.filename, range);
    if (!stream) {
      throw new AppError('not_found', 'No such image.');
    }
    if (!withBody || notModified || unsatisfiable) {
      stream.destroy();
    }
    if (unsatisfiable) {
      throw new AppError('range_not_satisfiable', undefined, {
        headers: { 'Content-Range': `bytes */${upload.size}` },
      });
    }
    res.setHeader('ETag', etag);
    res.setHeader('Cache-Control', CACHE_CONTROL);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Accept-Ranges', 'bytes');
    res.setHeader('Content-Security-Policy', "default-src 'none'; style-src 'unsafe-inline'; sandbox");
    res.setHeader('Last-Modified', upload.createdAt.toUTCString());
    if (notModified) {
      res.status(304).end();
      return;
    }
    res.setHeader('Content-Type', upload.mime);
    if (range) {
      res.status(206);
      res.setHeader('Content-Range', `bytes ${range.start}-${range.end}/${upload.size}`);
      res.setHeader('Content-Length', String(range.end - range.start + 1));
    } else {
      res.status(200);
      res.setHeader('Content-Length', String(upload.size));
    }
    if (!withBody) {
      res.end();
      return;
    }
    await pipeline(stream, res).catch(() => res.destroy());
  }
}

function etagMatches(header: string | undefined, etag: string): boolean {
  if (!header) {
    return false;
  }
  return header.split(',').some((t) => {
    const v = t.trim();
    return v === '*' || v === etag || v === `W/${etag}`;
  });
}

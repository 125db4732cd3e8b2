import { Controller, Get, Head, Param, Req, Res } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiProduces, ApiQuery, ApiResponse, ApiTags } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { Public } from '../../common/auth/auth.decorator';
import { AppError } from '../../common/errors/app-error';
import { ApiErrorResponses } from '../../common/errors/error-response';
import { AppConfig } from '../../config/app-config';
import { MediaError } from '../media/media-error';
import {
  parseVariantQuery,
  type ParsedVariantQuery,
  resolveVariant,
  type SourceMime,
  VARIANT_FITS,
  VARIANT_FORMATS,
} from '../media/variant-params';
import { StorageDriver } from '../storage/storage-driver';
import { UploadsService } from '../uploads/uploads.service';
import { type ImageRepresentation, sendImage } from './image-response';
import { VariantsService } from './variants.service';

/** The variant parameters (API.md Part 3, "Variants on the direct link"), described once for GET and HEAD. */
function ApiVariantQuery(): MethodDecorator {
  const sizes =
    'One of VARIANT_SIZES (default 64, 128, 256, 320, 480, 640, 960, 1280, 1920, 2560); other values → 400.';
  const decorators = [
    ApiQuery({ name: 'w', required: false, type: Number, description: `Target width in pixels. ${sizes}` }),
    ApiQuery({ name: 'h', required: false, type: Number, description: `Target height in pixels. ${sizes}` }),
    ApiQuery({
      name: 'fit',
      required: false,
      enum: VARIANT_FITS,
      description:
        '`inside` (default): keep the aspect ratio within w×h, never enlarge. `cover`: exactly w×h (needs both), cropped with the `attention` strategy (centre for animations).',
    }),
    ApiQuery({
      name: 'format',
      required: false,
      enum: VARIANT_FORMATS,
      description:
        "Output format; none keeps the original's. `auto`: AVIF, then WebP, then the original's format, from `Accept` (answered with `Vary: Accept`).",
    }),
  ];
  return (target, key, descriptor) => {
    for (const decorate of decorators) {
      decorate(target, key, descriptor);
    }
  };
}

@ApiTags('Direct links')
@Controller('images')
@Public()
export class ImagesController {
  constructor(
    private readonly uploads: UploadsService,
    private readonly storage: StorageDriver,
    private readonly variants: VariantsService,
    private readonly config: AppConfig,
  ) {}

  @Head(':filename')
  @ApiOperation({ operationId: 'headImage', summary: 'Headers of a stored image or one of its variants' })
  @ApiVariantQuery()
  @ApiOkResponse({ description: 'Headers only.' })
  @ApiErrorResponses('bad_request', 'not_found', 'processing_failed', 'unavailable')
  head(@Param('filename') filename: string, @Req() req: Request, @Res() res: Response): Promise<void> {
    return this.serve(filename, req, res, false);
  }

  @Get(':filename')
  @ApiOperation({
    operationId: 'getImage',
    summary: 'The stored image bytes, or a resized/re-encoded variant (ETag, 304, Range/206)',
  })
  @ApiVariantQuery()
  @ApiProduces('image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/avif')
  @ApiOkResponse({ description: 'The image.', schema: { type: 'string', format: 'binary' } })
  @ApiResponse({ status: 206, description: 'A byte range of the image.' })
  @ApiResponse({ status: 304, description: 'Not modified (If-None-Match matched the ETag).' })
  @ApiErrorResponses('bad_request', 'not_found', 'range_not_satisfiable', 'processing_failed', 'unavailable')
  get(@Param('filename') filename: string, @Req() req: Request, @Res() res: Response): Promise<void> {
    return this.serve(filename, req, res, true);
  }

  private async serve(filename: string, req: Request, res: Response, withBody: boolean): Promise<void> {
    // Bad parameters are refused before the lookup: the answer doesn't depend on whether the image exists.
    let parsed: ParsedVariantQuery;
    try {
      parsed = parseVariantQuery(req.query as Record<string, unknown>, this.config.variantSizes);
    } catch (error) {
      if (error instanceof MediaError) {
        throw new AppError('bad_request', error.message, { cause: error });
      }
      throw error;
    }
    const upload = await this.uploads.findServable(filename);
    if (!upload) {
      throw new AppError('not_found', 'No such image.');
    }
    const resolved = resolveVariant(parsed, {
      sourceMime: upload.mime as SourceMime,
      accept: req.header('accept'),
      // The frame count kept at upload time: a still GIF or WebP may become AVIF; unknown (older rows) may not.
      animated: upload.pages === null ? undefined : upload.pages > 1,
    });
    if (resolved.varyAccept) {
      res.vary('Accept');
    }
    let image: ImageRepresentation;
    if (resolved.kind === 'original') {
      image = {
        key: upload.filename,
        etag: `"${upload.storedSha256}"`,
        size: upload.size,
        mime: upload.mime,
        lastModified: upload.createdAt,
      };
    } else {
      const stored = await this.variants.ensure(upload, resolved);
      image = {
        key: stored.storageKey,
        etag: `"${stored.sha256}"`,
        size: stored.size,
        mime: stored.mime,
        lastModified: stored.createdAt,
      };
    }
    await sendImage(this.storage, image, req, res, withBody);
  }
}

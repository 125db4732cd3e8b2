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
  type ResolvedVariant,
  resolveVariant,
  type SourceMime,
  VARIANT_FITS,
  VARIANT_FORMATS,
} from '../media/variant-params';
import { StorageDriver } from '../storage/storage-driver';
import { type ServableUpload, UploadsService } from '../uploads/uploads.service';
import { DeliveryCache } from './delivery-cache';
import { originalOf, takeFastPathFailure, variantOf } from './fast-path';
import { redirectImage } from './image-redirect';
import { type ImageRepresentation, sendImage, sendImageBytes } from './image-response';
import { checkParameterCount } from './query-limit';
import { toAppError, VariantsService } from './variants.service';

/** The variant parameters (API.md Part 3, "Variants on the direct link"), described once for GET and HEAD. */
function ApiVariantQuery(): MethodDecorator {
  const sizes =
    'One of VARIANT_SIZES (default 64, 128, 256, 320, 480, 640, 960, 1280, 1920, 2560); other values → 400.';
  const decorators = [
    ApiQuery({
      name: 'w',
      required: false,
      type: 'integer',
      description: `Target width in pixels. ${sizes}`,
    }),
    ApiQuery({
      name: 'h',
      required: false,
      type: 'integer',
      description: `Target height in pixels. ${sizes}`,
    }),
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
    private readonly cache: DeliveryCache,
  ) {}

  @Head(':filename')
  @ApiOperation({ operationId: 'headImage', summary: 'Headers of a stored image or one of its variants' })
  @ApiVariantQuery()
  @ApiOkResponse({ description: 'Headers only.' })
  @ApiResponse({
    status: 302,
    description: 'With IMAGES_REDIRECT_BASE_URL set: the image at the CDN or public bucket.',
  })
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
  @ApiResponse({
    status: 302,
    description: 'With IMAGES_REDIRECT_BASE_URL set: the image at the CDN or public bucket.',
  })
  @ApiResponse({ status: 304, description: 'Not modified (If-None-Match matched the ETag).' })
  @ApiErrorResponses('bad_request', 'not_found', 'range_not_satisfiable', 'processing_failed', 'unavailable')
  get(@Param('filename') filename: string, @Req() req: Request, @Res() res: Response): Promise<void> {
    return this.serve(filename, req, res, true);
  }

  private async serve(filename: string, req: Request, res: Response, withBody: boolean): Promise<void> {
    // A cold variant the fast path tried and failed: answered as it failed, not made a second time.
    const failed = takeFastPathFailure(req);
    if (failed !== undefined) {
      throw toAppError(failed);
    }
    // Bad parameters are refused before the lookup: the answer doesn't depend on whether the image exists. Past
    // the query parser's key limit some would go unread, so too many is refused too.
    checkParameterCount(req.originalUrl);
    let parsed: ParsedVariantQuery;
    try {
      parsed = parseVariantQuery(req.query as Record<string, unknown>, this.config.variantSizes);
    } catch (error) {
      if (error instanceof MediaError) {
        throw new AppError('bad_request', error.message, { cause: error });
      }
      throw error;
    }
    // What the cache may keep must have been read after this mark (a delete in between wins).
    const mark = this.cache.mark();
    const upload = this.cache.upload(filename) ?? (await this.uploads.findServable(filename));
    if (!upload) {
      throw new AppError('not_found', 'No such image.');
    }
    this.cache.rememberUpload(upload, mark);
    const resolved = resolveVariant(parsed, {
      sourceMime: upload.mime as SourceMime,
      accept: req.header('accept'),
      // The frame count kept at upload time: a still GIF or WebP may become AVIF; unknown (older rows) may not.
      animated: upload.pages === null ? undefined : upload.pages > 1,
    });
    if (resolved.varyAccept) {
      res.vary('Accept');
    }
    if (resolved.kind === 'original') {
      await this.send(originalOf(upload), req, res, withBody, mark);
      return;
    }
    const image =
      this.cache.variant(filename, resolved.key) ??
      (await this.variant(upload, resolved, req, res, withBody, mark));
    if (!image) {
      return;
    }
    this.cache.rememberVariant(upload, resolved.key, image, mark);
    try {
      await this.send(image, req, res, withBody, mark);
    } catch (error) {
      if (!(error instanceof AppError && error.code === 'not_found') || res.headersSent) {
        throw error;
      }
      // Its row names a file gone from storage (removed behind the service's back): README "Variants", a variant
      // that is not stored costs a render, never a wrong answer. Made again as if never made (lease, queue, store);
      // a second miss (its file gone again meanwhile) is the 404, and the next request makes it.
      this.cache.forgetVariant(filename, resolved.key);
      const remark = this.cache.mark();
      await this.variants.forgetMissing(upload.id, resolved.key, {
        sha256: image.etag.slice(1, -1),
        createdAt: image.lastModified,
      });
      const again = await this.variant(upload, resolved, req, res, withBody, remark);
      if (again) {
        this.cache.rememberVariant(upload, resolved.key, again, remark);
        await this.send(again, req, res, withBody, remark);
      }
    }
  }

  /**
   * A variant not held by the cache: stored already (its representation, read from storage by send()), or made now
   * and answered here from its bytes (null).
   */
  private async variant(
    upload: ServableUpload,
    resolved: ResolvedVariant & { kind: 'variant' },
    req: Request,
    res: Response,
    withBody: boolean,
    mark: number,
  ): Promise<ImageRepresentation | null> {
    const stored = await this.variants.ensure(upload, resolved);
    const image = variantOf(upload, stored);
    // A redirect or an X-Accel-Redirect names the stored file: it must be there first. Else the bytes just
    // rendered here are answered at once, while they are stored; the fast path may read the variant from
    // storage only once it is there. A variant that could not be stored is answered from its bytes too.
    const redirects = !!this.config.imagesRedirectBaseUrl || !!this.config.accelRedirectPrefix;
    if (stored.data && stored.saved && (!redirects || !(await stored.saved))) {
      const key = resolved.key;
      void stored.saved.then((ok) => ok && this.cache.rememberVariant(upload, key, image, mark));
      sendImageBytes(image, stored.data, req, res, withBody);
      return null;
    }
    return image;
  }

  /** A stored original or variant: a redirect, or its bytes from storage (404 `not_found` when its file is gone). */
  private async send(
    image: ImageRepresentation,
    req: Request,
    res: Response,
    withBody: boolean,
    mark: number,
  ): Promise<void> {
    if (this.config.imagesRedirectBaseUrl) {
      redirectImage(this.config.imagesRedirectBaseUrl, image, res);
      return;
    }
    // On a remote store (S3) a small object's bytes are kept for the fast path: local files are read by it instead.
    const remote = this.storage.localFile(image.key) === null && this.cache.keepsBytes(image.size);
    const key = image.key;
    const etag = image.etag;
    await sendImage(
      this.storage,
      image,
      req,
      res,
      withBody,
      this.config.accelRedirectPrefix,
      remote ? (data) => this.cache.rememberObjectBytes(key, etag, data, mark) : undefined,
    );
  }
}

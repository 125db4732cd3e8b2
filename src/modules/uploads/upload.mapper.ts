import { Injectable } from '@nestjs/common';
import { AppConfig } from '../../config/app-config';
import type { UploadDetail, UploadListItem, UploadResponse } from './dto/upload.dto';
import type { UploadCreatedEvent } from '../webhooks/outbox.service';
import type { Upload } from './upload.entity';

/** What a listing item is made of: an entity or a raw row (UploadRepository.ownerPage). */
type Listable = Pick<
  Upload,
  'filename' | 'mime' | 'size' | 'width' | 'height' | 'tags' | 'createdAt' | 'expiresAt'
>;

/** Every answer about an upload is built here, so the public shapes (API.md) are written once. */
@Injectable()
export class UploadMapper {
  constructor(private readonly config: AppConfig) {}

  url(filename: string): string {
    return `${this.config.publicUrl}/images/${filename}`;
  }

  /**
   * A gallery-sized variant (API.md Part 3): 320 px wide (or the allowed size nearest below it when VARIANT_SIZES
   * leaves 320 out, else the smallest allowed), `format=auto`, never enlarged.
   */
  thumbnailUrl(filename: string): string {
    const sizes = this.config.variantSizes;
    const width = sizes.includes(320) ? 320 : ([...sizes].reverse().find((s) => s < 320) ?? sizes[0]);
    return `${this.url(filename)}?w=${width}&format=auto`;
  }

  deleteUrl(token: string): string {
    return `${this.config.publicUrl}/api/delete/${token}`;
  }

  /** The answer to an upload: `deleteToken` is the plain delete-link token (DeleteLinksService). */
  toUploadResponse(upload: Upload, deduplicated: boolean, deleteToken: string): UploadResponse {
    return {
      ok: true,
      filename: upload.filename,
      url: this.url(upload.filename),
      thumbnail_url: this.thumbnailUrl(upload.filename),
      delete_url: this.deleteUrl(deleteToken),
      size: upload.size,
      mime: upload.mime,
      width: upload.width,
      height: upload.height,
      hash_sha256: upload.sha256,
      expires_at: upload.expiresAt?.toISOString() ?? null,
      ...(deduplicated ? { deduplicated: true as const } : {}),
    };
  }

  toListItem(upload: Listable): UploadListItem {
    return {
      filename: upload.filename,
      url: this.url(upload.filename),
      thumbnail_url: this.thumbnailUrl(upload.filename),
      mime: upload.mime,
      size: upload.size,
      width: upload.width,
      height: upload.height,
      tags: upload.tags,
      created_at: upload.createdAt.toISOString(),
      expires_at: upload.expiresAt?.toISOString() ?? null,
    };
  }

  toDetail(upload: Listable & Pick<Upload, 'sha256'>): UploadDetail {
    return { ...this.toListItem(upload), hash_sha256: upload.sha256 };
  }

  /** An admin's view: the detail and its owner (the owner must be loaded). */
  toAdminItem(upload: Upload): UploadDetail & { owner: { id: string; email: string } } {
    return { ...this.toDetail(upload), owner: { id: upload.owner.id, email: upload.owner.email } };
  }

  /** The `upload` object of the upload.created webhook. */
  toWebhookUpload(upload: Upload): UploadCreatedEvent['upload'] {
    return {
      filename: upload.filename,
      url: this.url(upload.filename),
      size: upload.size,
      mime: upload.mime,
      width: upload.width,
      height: upload.height,
      hash_sha256: upload.sha256,
    };
  }
}

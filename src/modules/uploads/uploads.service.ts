import { EntityManager } from '@mikro-orm/postgresql';
import { Injectable } from '@nestjs/common';
import { createHash, createHmac } from 'node:crypto';
import { AppError } from '../../common/errors/app-error';
import { AppConfig } from '../../config/app-config';
import { encodeCursor, parseCursor } from '../../common/http/cursor';
import type {
  AccountStats,
  DeletedResponse,
  UploadDetail,
  UploadListItem,
  UploadResponse,
} from './dto/upload.dto';
import { FILENAME_PATTERN } from './filenames';
import { StorageDriver } from './storage/storage-driver';
import { normaliseTags } from './tags';
import { Upload } from './upload.entity';

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

export interface ListResult {
  count: number;
  next_before: string | null;
  uploads: UploadListItem[];
}

/** Reads and owner-side changes of uploads; every query is scoped to its owner. */
@Injectable()
export class UploadsService {
  constructor(
    private readonly em: EntityManager,
    private readonly config: AppConfig,
    private readonly storage: StorageDriver,
  ) {}

  /**
   * The delete-link token: HMAC(SECRET_KEY, upload id), 256 bits. Only its SHA-256 is stored; being derivable,
   * a dedupe hit can hand out a working link again without keeping the token.
   */
  deleteTokenFor(uploadId: string): { token: string; hash: string } {
    const token = createHmac('sha256', this.config.secretKey).update(`delete-link:${uploadId}`).digest('hex');
    return { token, hash: sha256(token) };
  }

  url(filename: string): string {
    return `${this.config.publicUrl}/images/${filename}`;
  }

  toUploadResponse(upload: Upload, deduplicated: boolean): UploadResponse {
    const { token } = this.deleteTokenFor(upload.id);
    return {
      ok: true,
      filename: upload.filename,
      url: this.url(upload.filename),
      delete_url: `${this.config.publicUrl}/api/delete/${token}`,
      size: upload.size,
      mime: upload.mime,
      width: upload.width,
      height: upload.height,
      hash_sha256: upload.sha256,
      ...(deduplicated ? { deduplicated: true as const } : {}),
    };
  }

  toListItem(upload: Upload): UploadListItem {
    return {
      filename: upload.filename,
      url: this.url(upload.filename),
      mime: upload.mime,
      size: upload.size,
      width: upload.width,
      height: upload.height,
      tags: upload.tags,
      created_at: upload.createdAt.toISOString(),
    };
  }

  toDetail(upload: Upload): UploadDetail {
    return { ...this.toListItem(upload), hash_sha256: upload.sha256 };
  }

  findLiveBySha(ownerId: string, sha: string): Promise<Upload | null> {
    return this.em.fork().findOne(Upload, { owner: ownerId, sha256: sha, deletedAt: null });
  }

  /** Keyset paging on (created_at desc, id desc): never skips or repeats, ties included. */
  async list(ownerId: string, opts: { limit?: number; before?: string; tag?: string }): Promise<ListResult> {
    const limit = opts.limit ?? 50;
    const cursor = parseCursor(opts.before);
    const where: Record<string, unknown> = { owner: ownerId, deletedAt: null };
    if (opts.tag) {
      where.tags = { $contains: [opts.tag] };
    }
    if (cursor) {
      where.$or = cursor.id
        ? [{ createdAt: { $lt: cursor.createdAt } }, { createdAt: cursor.createdAt, id: { $lt: cursor.id } }]
        : [{ createdAt: { $lt: cursor.createdAt } }];
    }
    const rows = await this.em
      .fork()
      .find(Upload, where, { orderBy: { createdAt: 'desc', id: 'desc' }, limit: limit + 1 });
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return {
      count: page.length,
      next_before: last ? encodeCursor(last, rows[limit]) : null,
      uploads: page.map((u) => this.toListItem(u)),
    };
  }

  async get(ownerId: string, filename: string): Promise<UploadDetail> {
    return this.toDetail(await this.findOwned(this.em.fork(), ownerId, filename));
  }

  async setTags(ownerId: string, filename: string, tags: string[]): Promise<UploadDetail> {
    const em = this.em.fork();
    const upload = await this.findOwned(em, ownerId, filename);
    upload.tags = normaliseTags(tags);
    await em.flush();
    return this.toDetail(upload);
  }

  async deleteOwned(ownerId: string, filename: string): Promise<DeletedResponse> {
    const em = this.em.fork();
    const upload = await this.findOwned(em, ownerId, filename);
    return this.softDelete(em, upload);
  }

  /** The one-shot delete link: the row is marked deleted, so a second use finds nothing. */
  async deleteByToken(token: string): Promise<DeletedResponse> {
    if (!/^[0-9a-f]{64}$/.test(token)) {
      throw new AppError('not_found', 'Unknown or already used delete link.');
    }
    const em = this.em.fork();
    const upload = await em.findOne(Upload, { deleteTokenHash: sha256(token), deletedAt: null });
    if (!upload) {
      throw new AppError('not_found', 'Unknown or already used delete link.');
    }
    return this.softDelete(em, upload);
  }

  async accountStats(ownerId: string): Promise<Pick<AccountStats, 'uploads_active' | 'storage_used_bytes'>> {
    const [row] = await this.em
      .getConnection()
      .execute<
        { n: string; bytes: string | null }[]
      >('select count(*) as n, coalesce(sum(size), 0) as bytes from uploads where owner_id = ? and deleted_at is null', [ownerId]);
    return { uploads_active: Number(row.n), storage_used_bytes: Number(row.bytes) };
  }

  /** The live upload behind a direct link (null: 404). Checked on every request, so a delete is 404 at once. */
  async findServable(filename: string): Promise<Upload | null> {
    if (!FILENAME_PATTERN.test(filename)) {
      return null;
    }
    const upload = await this.em
      .fork()
      .findOne(Upload, { filename, deletedAt: null }, { populate: ['owner'] });
    if (!upload || (!this.config.serveBannedImages && upload.owner.bannedAt)) {
      return null;
    }
    return upload;
  }

  private async findOwned(em: EntityManager, ownerId: string, filename: string): Promise<Upload> {
    const upload = FILENAME_PATTERN.test(filename)
      ? await em.findOne(Upload, { owner: ownerId, filename, deletedAt: null })
      : null;
    if (!upload) {
      throw new AppError('not_found', 'No such upload.');
    }
    return upload;
  }

  private async softDelete(em: EntityManager, upload: Upload): Promise<DeletedResponse> {
    // Conditional update: of two concurrent deletes exactly one wins; the other answers 404.
    const affected = await em.nativeUpdate(
      Upload,
      { id: upload.id, deletedAt: null },
      { deletedAt: new Date() },
    );
    if (affected === 0) {
      throw new AppError('not_found', 'No such upload.');
    }
    // The row stays (history, audit); the bytes go. A failure here leaves an orphan the janitor removes.
    await this.storage.delete(upload.filename).catch(() => undefined);
    return { ok: true, deleted: upload.filename };
  }
}

import { EntityManager } from '@mikro-orm/postgresql';
import { Injectable } from '@nestjs/common';
import { createHash, createHmac } from 'node:crypto';
import { AppError } from '../../common/errors/app-error';
import { type RequestMeta } from '../../common/http/request-meta';
import { AppConfig } from '../../config/app-config';
import { AuditService } from '../audit/audit.service';
import { keysetFilter, keysetPage } from '../../common/http/cursor';
import type {
  AccountStats,
  DeletedResponse,
  UploadDetail,
  UploadListItem,
  UploadResponse,
} from './dto/upload.dto';
import { FILENAME_PATTERN } from './filenames';
import { StorageDriver } from '../storage/storage-driver';
import { normaliseTags } from './tags';
import { Upload } from './upload.entity';

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

export interface ListResult {
  count: number;
  next_before: string | null;
  uploads: UploadListItem[];
}

/** What delivery needs to serve an upload's stored bytes. */
export interface ServableUpload {
  filename: string;
  storedSha256: string;
  size: number;
  mime: string;
  createdAt: Date;
}

/** Reads and owner-side changes of uploads; every query is scoped to its owner. */
@Injectable()
export class UploadsService {
  constructor(
    private readonly em: EntityManager,
    private readonly config: AppConfig,
    private readonly storage: StorageDriver,
    private readonly audit: AuditService,
  ) {}

  /**
   * The delete-link token: HMAC(SECRET_KEY, upload id), 256 bits. Only its SHA-256 is stored; being derivable,
   * a dedupe hit can hand out a working link again without keeping the token.
   */
  deleteTokenFor(uploadId: string, secret = this.config.secretKey): { token: string; hash: string } {
    const token = createHmac('sha256', secret).update(`delete-link:${uploadId}`).digest('hex');
    return { token, hash: sha256(token) };
  }

  /**
   * The answer to a dedupe hit, with a delete link that works: derived from SECRET_KEY or, for an upload made
   * before a rotation, from SECRET_KEY_PREVIOUS. If neither derives the stored hash any more, the row is re-keyed to
   * the current secret (links handed out under a secret that is gone could not be honoured anyway).
   */
  async dedupeResponse(upload: Upload): Promise<UploadResponse> {
    const secrets = [this.config.secretKey, this.config.secretKeyPrevious].filter((k): k is string => !!k);
    const match = secrets
      .map((k) => this.deleteTokenFor(upload.id, k))
      .find((d) => d.hash === upload.deleteTokenHash);
    if (match) {
      return this.toUploadResponse(upload, true, match.token);
    }
    const current = this.deleteTokenFor(upload.id);
    await this.em.fork().nativeUpdate(Upload, { id: upload.id }, { deleteTokenHash: current.hash });
    return this.toUploadResponse(upload, true, current.token);
  }

  url(filename: string): string {
    return `${this.config.publicUrl}/images/${filename}`;
  }

  toUploadResponse(
    upload: Upload,
    deduplicated: boolean,
    token = this.deleteTokenFor(upload.id).token,
  ): UploadResponse {
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
    const { page, next_before } = await this.livePage({ owner: ownerId }, opts);
    return { count: page.length, next_before, uploads: page.map((u) => this.toListItem(u)) };
  }

  /** Any user's live uploads (or everyone's), for admins. */
  async listForAdmin(opts: { user?: string; limit?: number; before?: string }): Promise<{
    count: number;
    next_before: string | null;
    uploads: (UploadDetail & { owner: { id: string; email: string } })[];
  }> {
    const { page, next_before } = await this.livePage(opts.user ? { owner: opts.user } : {}, opts, true);
    return {
      count: page.length,
      next_before,
      uploads: page.map((u) => ({ ...this.toDetail(u), owner: { id: u.owner.id, email: u.owner.email } })),
    };
  }

  /** uploads_active and storage_used_bytes per user, in one query. */
  async usageFor(
    userIds: string[],
  ): Promise<Map<string, { uploads_active: number; storage_used_bytes: number }>> {
    const out = new Map(userIds.map((id) => [id, { uploads_active: 0, storage_used_bytes: 0 }]));
    if (userIds.length === 0) {
      return out;
    }
    const rows = await this.em.getConnection().execute<{ owner_id: string; n: string; bytes: string }[]>(
      `select owner_id, count(*) as n, coalesce(sum(size), 0) as bytes from uploads
          where deleted_at is null and owner_id in (${userIds.map(() => '?').join(',')}) group by owner_id`,
      userIds,
    );
    for (const r of rows) {
      out.set(r.owner_id, { uploads_active: Number(r.n), storage_used_bytes: Number(r.bytes) });
    }
    return out;
  }

  private async livePage(
    where: Record<string, unknown>,
    opts: { limit?: number; before?: string; tag?: string },
    withOwner = false,
  ): Promise<{ page: Upload[]; next_before: string | null }> {
    const limit = opts.limit ?? 50;
    const filter: Record<string, unknown> = { ...where, deletedAt: null, ...keysetFilter(opts.before) };
    if (opts.tag) {
      filter.tags = { $contains: [opts.tag] };
    }
    const rows = await this.em.fork().find(Upload, filter, {
      orderBy: { createdAt: 'desc', id: 'desc' },
      limit: limit + 1,
      populate: withOwner ? ['owner'] : [],
    });
    return keysetPage(rows, limit);
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

  async deleteOwned(ownerId: string, filename: string, meta: RequestMeta): Promise<DeletedResponse> {
    const em = this.em.fork();
    const upload = await this.findOwned(em, ownerId, filename);
    return this.softDelete(em, upload, meta, 'owner');
  }

  /** An admin's delete: any live upload. */
  async deleteAny(filename: string, meta: RequestMeta): Promise<DeletedResponse> {
    const em = this.em.fork();
    const upload = FILENAME_PATTERN.test(filename)
      ? await em.findOne(Upload, { filename, deletedAt: null })
      : null;
    if (!upload) {
      throw new AppError('not_found', 'No such upload.');
    }
    return this.softDelete(em, upload, meta, 'admin');
  }

  /** The one-shot delete link: the row is marked deleted, so a second use finds nothing. */
  async deleteByToken(token: string, meta: RequestMeta): Promise<DeletedResponse> {
    if (!/^[0-9a-f]{64}$/.test(token)) {
      throw new AppError('not_found', 'Unknown or already used delete link.');
    }
    const em = this.em.fork();
    const upload = await em.findOne(Upload, { deleteTokenHash: sha256(token), deletedAt: null });
    if (!upload) {
      throw new AppError('not_found', 'Unknown or already used delete link.');
    }
    return this.softDelete(em, upload, meta, 'delete_link');
  }

  async accountStats(ownerId: string): Promise<Pick<AccountStats, 'uploads_active' | 'storage_used_bytes'>> {
    const [row] = await this.em
      .getConnection()
      .execute<
        { n: string; bytes: string | null }[]
      >('select count(*) as n, coalesce(sum(size), 0) as bytes from uploads where owner_id = ? and deleted_at is null', [ownerId]);
    return { uploads_active: Number(row.n), storage_used_bytes: Number(row.bytes) };
  }

  /**
   * The live upload behind a direct link (null: 404), with the ban rule. Checked on every request, so a delete is
   * 404 at once. The one thing delivery/ asks of uploads.
   */
  async findServable(filename: string): Promise<ServableUpload | null> {
    if (!FILENAME_PATTERN.test(filename)) {
      return null;
    }
    const upload = await this.em
      .fork()
      .findOne(Upload, { filename, deletedAt: null }, { populate: ['owner'] });
    if (!upload || (!this.config.serveBannedImages && upload.owner.bannedAt)) {
      return null;
    }
    const { storedSha256, size, mime, createdAt } = upload;
    return { filename, storedSha256, size, mime, createdAt };
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

  private async softDelete(
    em: EntityManager,
    upload: Upload,
    meta: RequestMeta,
    via: 'owner' | 'delete_link' | 'admin',
  ): Promise<DeletedResponse> {
    await em.transactional(async (tx) => {
      // Conditional update: of two concurrent deletes exactly one wins; the other answers 404.
      const affected = await tx.nativeUpdate(
        Upload,
        { id: upload.id, deletedAt: null },
        { deletedAt: new Date() },
      );
      if (affected === 0) {
        throw new AppError('not_found', 'No such upload.');
      }
      await this.audit.record(
        {
          action: 'upload.deleted',
          meta,
          targetType: 'upload',
          targetId: upload.filename,
          metadata: { via, owner_id: upload.owner.id, sha256: upload.sha256, size: upload.size },
        },
        tx,
      );
    });
    // The row stays (history, audit); the bytes go. A failure here leaves an orphan the janitor removes.
    await this.storage.delete(upload.filename).catch(() => undefined);
    return { ok: true, deleted: upload.filename };
  }
}

import { EntityManager } from '@mikro-orm/postgresql';
import { Injectable } from '@nestjs/common';
import { AppError } from '../../common/errors/app-error';
import { NO_REQUEST, type RequestMeta } from '../../common/http/request-meta';
import { InvalidationBus } from '../../common/redis/invalidation-bus';
import { AppConfig } from '../../config/app-config';
import { AuditService } from '../audit/audit.service';
import { StorageDriver } from '../storage/storage-driver';
import { UsersService, type UserQuota } from '../auth/users.service';
import { OutboxService, type UploadDeletedReason } from '../webhooks/outbox.service';
import type { Principal } from '../../common/auth/principal';
import type {
  AccountStats,
  DeletedResponse,
  MeResponse,
  UploadDetail,
  UploadListItem,
} from './dto/upload.dto';
import { normaliseTags } from './tags';
import { Upload } from './upload.entity';
import { UploadMapper } from './upload.mapper';
import type { KeyCompanion } from '../api-keys/api-keys.service';
import {
  type ListedUpload,
  type PageOptions,
  UploadRepository,
  type UploadUsage,
  type UsageAndQuota,
} from './upload.repository';

type DeletedVia = UploadDeletedReason;

export interface ListResult {
  count: number;
  next_before: string | null;
  uploads: UploadListItem[];
}

/** What delivery needs to serve an upload's stored bytes. */
export interface ServableUpload {
  id: string;
  /** For caches: a ban of this owner drops the entry. */
  ownerId: string;
  filename: string;
  storedSha256: string;
  size: number;
  mime: string;
  createdAt: Date;
  /** Frames of the stored image (1 for a still); null when unknown (recorded before frame counts were kept). */
  pages: number | null;
  /** Gone from this instant (null: never); a cache of this object must still answer 404 from then on. */
  expiresAt: Date | null;
  /**
   * The keys of its variants stored when the row was read, and of those stored by this instance since (they only
   * grow). A variant not in it was not stored then: delivery/ renders it under its lease without looking for it
   * first. Absent: not known (look first).
   */
  storedVariants?: Set<string>;
}

/** Reads and owner-side changes of uploads; every query is scoped to its owner. */
@Injectable()
export class UploadsService {
  constructor(
    private readonly em: EntityManager,
    private readonly config: AppConfig,
    private readonly storage: StorageDriver,
    private readonly audit: AuditService,
    private readonly repository: UploadRepository,
    private readonly mapper: UploadMapper,
    private readonly invalidation: InvalidationBus,
    private readonly webhooks: OutboxService,
    private readonly users: UsersService,
  ) {}

  async list(ownerId: string, opts: PageOptions): Promise<ListResult> {
    return this.listOf(await this.repository.ownerPage(ownerId, opts));
  }

  /** list() for the owner of the key being looked up, read in the lookup's statement (the read fast path). */
  listWithKey(opts: PageOptions): KeyCompanion<ListResult> {
    const page = this.repository.ownerPageWithKey(opts);
    return { ...page, read: (rows) => this.listOf(page.read(rows)) };
  }

  private listOf({ page, next_before }: { page: ListedUpload[]; next_before: string | null }): ListResult {
    return { count: page.length, next_before, uploads: page.map((u) => this.mapper.toListItem(u)) };
  }

  /** Any user's live uploads (or everyone's), for admins. */
  async listForAdmin(opts: { user?: string; limit?: number; before?: string }): Promise<{
    count: number;
    next_before: string | null;
    uploads: (UploadDetail & { owner: { id: string; email: string } })[];
  }> {
    const { page, next_before } = await this.repository.livePage(
      opts.user ? { owner: opts.user } : {},
      opts,
      true,
    );
    return { count: page.length, next_before, uploads: page.map((u) => this.mapper.toAdminItem(u)) };
  }

  /** uploads_active and storage_used_bytes per user, in one query. */
  usageFor(userIds: string[]): Promise<Map<string, UploadUsage>> {
    return this.repository.usage(userIds);
  }

  /**
   * GET /api/v1/me: the account's usage, and the calling key as the guard read it (one query) with its running
   * request_count, this request included, from the guard's count in Redis (`counted`).
   */
  async me(p: Principal, counted: Promise<number | null> | undefined): Promise<MeResponse> {
    const [stats, count] = await Promise.all([this.accountStats(p.userId), counted]);
    return this.meOf(p, stats, count ?? null);
  }

  /** `/me`'s body from its parts: the principal, the account's usage (accountStats) and the key's running count. */
  meOf(p: Principal, stats: Omit<AccountStats, 'email' | 'role'>, count: number | null): MeResponse {
    return {
      ok: true,
      account: { email: p.email, role: p.role, ...stats },
      key:
        p.kind === 'session'
          ? null
          : {
              prefix: p.keyPrefix,
              label: p.keyLabel,
              scopes: p.scopes,
              // The database's figure when Redis lost or never gave one (never lower than what was flushed).
              request_count: Math.max(p.storedRequestCount, count ?? 0),
              created_at: p.keyCreatedAt.toISOString(),
            },
    };
  }

  async accountStats(ownerId: string): Promise<Omit<AccountStats, 'email' | 'role'>> {
    return this.statsOf(await this.repository.usageAndQuota(ownerId));
  }

  /** accountStats() for the owner of the key being looked up, read in the lookup's statement (the read fast path). */
  accountStatsWithKey(): KeyCompanion<Omit<AccountStats, 'email' | 'role'>> {
    const found = this.repository.usageAndQuotaWithKey();
    return { ...found, read: (rows) => this.statsOf(found.read(rows)) };
  }

  private statsOf(found: UsageAndQuota | null): Omit<AccountStats, 'email' | 'role'> {
    const quota = this.users.effectiveQuota(
      found && { quotaBytes: found.quotaBytes, quotaFiles: found.quotaFiles },
    );
    return {
      uploads_active: found?.uploads_active ?? 0,
      storage_used_bytes: found?.storage_used_bytes ?? 0,
      quota_bytes: quota.bytes,
      quota_files: quota.files,
    };
  }

  /** The quotas in force for a user (null = unlimited). */
  quotaOf(userId: string): Promise<UserQuota> {
    return this.users.quotaOf(userId);
  }

  /**
   * Inside the transaction that records an upload of `size` stored bytes: 413 `quota_exceeded` if it would take the
   * owner past a quota. With a quota in force the owner's uploads pass here one at a time (a transaction-scoped
   * advisory lock, held until the caller commits), so two parallel uploads can't both fit in the last bytes.
   */
  async assertQuotaRoom(ownerId: string, size: number, em: EntityManager): Promise<void> {
    const quota = await this.users.quotaOf(ownerId, em);
    if (quota.bytes === null && quota.files === null) {
      return;
    }
    const conn = em.getConnection();
    const ctx: unknown = em.getTransactionContext();
    await conn.execute('select pg_advisory_xact_lock(hashtext(?))', [`quota:${ownerId}`], 'all', ctx);
    const [used] = await conn.execute<{ n: number; bytes: string }[]>(
      `select count(*)::int as n, coalesce(sum(size), 0)::bigint as bytes from uploads
        where owner_id = ? and deleted_at is null and (expires_at is null or expires_at > now())`,
      [ownerId],
      'all',
      ctx,
    );
    const bytes = Number(used.bytes);
    if (quota.files !== null && used.n + 1 > quota.files) {
      throw new AppError(
        'quota_exceeded',
        `You have ${used.n} of your ${quota.files} files; delete some before uploading more.`,
      );
    }
    if (quota.bytes !== null && bytes + size > quota.bytes) {
      throw new AppError(
        'quota_exceeded',
        `This upload (${size} bytes) would take you to ${bytes + size} bytes of your ${quota.bytes}-byte quota ` +
          `(${bytes} bytes used).`,
      );
    }
  }

  async get(ownerId: string, filename: string): Promise<UploadDetail> {
    return this.detailOf(await this.repository.findOwnedListed(ownerId, filename));
  }

  /**
   * get() for the owner of the key being looked up, read in the lookup's statement (the read fast path): the detail,
   * or a function that throws get()'s 404 (the key's answer — 401, 403 — comes first).
   */
  getWithKey(filename: string): KeyCompanion<() => UploadDetail> {
    const found = this.repository.findOwnedListedWithKey(filename);
    return {
      ...found,
      read: (rows) => {
        const upload = found.read(rows);
        return () => this.detailOf(upload);
      },
    };
  }

  private detailOf(upload: ListedUpload | null): UploadDetail {
    if (!upload) {
      throw new AppError('not_found', 'No such upload.');
    }
    return this.mapper.toDetail(upload);
  }

  /** The caller's live upload with these bytes (sha256 as uploaded, lower-case hex), else 404. */
  async getByHash(ownerId: string, sha256: string): Promise<UploadDetail> {
    const upload = await this.repository.findLiveBySha(ownerId, sha256);
    if (!upload) {
      throw new AppError('not_found', 'You have no live upload with these bytes.');
    }
    return this.mapper.toDetail(upload);
  }

  async setTags(ownerId: string, filename: string, tags: string[]): Promise<UploadDetail> {
    const em = this.em.fork();
    const upload = await this.findOwned(em, ownerId, filename);
    upload.tags = normaliseTags(tags);
    await em.flush();
    return this.mapper.toDetail(upload);
  }

  deleteOwned(ownerId: string, filename: string, meta: RequestMeta): Promise<DeletedResponse> {
    return this.deleteWhere((em) => this.repository.findLive(em, filename, ownerId), meta, 'owner');
  }

  /** An admin's delete: any live upload. */
  deleteAny(filename: string, meta: RequestMeta): Promise<DeletedResponse> {
    return this.deleteWhere((em) => this.repository.findLive(em, filename), meta, 'admin');
  }

  /** Finds the upload with `find` and deletes it (404 from `notFound` when there is none). */
  async deleteWhere(
    find: (em: EntityManager) => Promise<Upload | null>,
    meta: RequestMeta,
    via: DeletedVia,
    notFound = (): AppError => new AppError('not_found', 'No such upload.'),
  ): Promise<DeletedResponse> {
    const em = this.em.fork();
    const upload = await find(em);
    if (!upload) {
      throw notFound();
    }
    return this.softDelete(em, upload, meta, via);
  }

  /**
   * The live upload behind a direct link (null: 404), with the ban rule. delivery/ caches the answer per instance;
   * deletes (softDelete) and bans (UsersService) drop it everywhere at once through the InvalidationBus.
   */
  async findServable(filename: string): Promise<ServableUpload | null> {
    const row = await this.repository.findServable(filename);
    if (!row || (!this.config.serveBannedImages && row.owner_banned)) {
      return null;
    }
    return {
      id: row.id,
      ownerId: row.owner_id,
      filename,
      storedSha256: row.stored_sha256,
      size: Number(row.size),
      mime: row.mime,
      createdAt: new Date(row.created_at),
      pages: row.pages ?? null,
      expiresAt: row.expires_at ? new Date(row.expires_at) : null,
      storedVariants: new Set(row.variant_keys),
    };
  }

  /**
   * Soft-deletes uploads past their expiry (the sweep, or one owner's bytes before they are uploaded again):
   * audit `upload.expired`, event `upload.deleted` with reason `expired`. Returns how many it deleted.
   */
  async expireDue(limit: number, only?: { ownerId: string; sha256: string }): Promise<number> {
    let done = 0;
    for (const upload of await this.repository.findDue(limit, only)) {
      try {
        await this.softDelete(this.em.fork(), upload, NO_REQUEST, 'expired');
        done++;
      } catch (err) {
        // Deleted meanwhile by its owner or another sweep: nothing left to do.
        if (!(err instanceof AppError && err.code === 'not_found')) {
          throw err;
        }
      }
    }
    return done;
  }

  private async findOwned(em: EntityManager, ownerId: string, filename: string): Promise<Upload> {
    const upload = await this.repository.findLive(em, filename, ownerId);
    if (!upload) {
      throw new AppError('not_found', 'No such upload.');
    }
    return upload;
  }

  private async softDelete(
    em: EntityManager,
    upload: Upload,
    meta: RequestMeta,
    via: DeletedVia,
  ): Promise<DeletedResponse> {
    await em.transactional(async (tx) => {
      // Conditional update: of two concurrent deletes exactly one wins; the other answers 404.
      const deletedAt = new Date();
      const affected = await tx.nativeUpdate(Upload, { id: upload.id, deletedAt: null }, { deletedAt });
      if (affected === 0) {
        throw new AppError('not_found', 'No such upload.');
      }
      // upload.deleted commits (or rolls back) with the delete.
      await this.webhooks.recordUploadDeleted(tx, {
        ownerId: upload.owner.id,
        upload: this.mapper.toWebhookUpload(upload),
        reason: via,
        deletedAt,
      });
      await this.audit.record(
        {
          action: via === 'expired' ? 'upload.expired' : 'upload.deleted',
          meta,
          targetType: 'upload',
          targetId: upload.filename,
          metadata: { via, owner_id: upload.owner.id, sha256: upload.sha256, size: upload.size },
        },
        tx,
      );
    });
    // Every instance's direct-link cache drops it before the bytes go (delivery/, issue 14).
    await this.invalidation.publish(`upload:${upload.filename}`);
    // The row stays (history, audit); the bytes go. A failure here leaves an orphan the janitor removes.
    await this.storage.delete(upload.filename).catch(() => undefined);
    await this.deleteVariants(em, upload.id);
    return { ok: true, deleted: upload.filename };
  }

  /**
   * The upload's variants (API.md Part 3) go with it. They already answer 404 (every request checks the upload's
   * row first); a failure here leaves files the janitor removes (their names map back to the deleted original).
   */
  private async deleteVariants(em: EntityManager, uploadId: string): Promise<void> {
    try {
      const rows = await em
        .getConnection()
        .execute<
          { storage_key: string }[]
        >('select storage_key from upload_variants where upload_id = ?', [uploadId]);
      for (const row of rows) {
        await this.storage.delete(row.storage_key);
      }
      await em.getConnection().execute('delete from upload_variants where upload_id = ?', [uploadId]);
    } catch {
      // Left to the janitor.
    }
  }
}

import { EntityManager } from '@mikro-orm/postgresql';
import { Injectable } from '@nestjs/common';
import { leanQuery } from '../../database/lean-query';
import { keysetFilter, keysetPage, parseCursor } from '../../common/http/cursor';
import type { KeyCompanion } from '../api-keys/api-keys.service';
import { FILENAME_PATTERN } from './filenames';
import { Upload } from './upload.entity';

/** A row as listings and lookups show it (UploadMapper.toListItem / toDetail). */
export interface ListedUpload {
  id: string;
  filename: string;
  mime: string;
  size: number;
  width: number;
  height: number;
  tags: string[];
  sha256: string;
  createdAt: Date;
  expiresAt: Date | null;
}

const LISTED_COLUMNS = 'id, filename, mime, size, width, height, tags, sha256, created_at, expires_at';
/** Raw SQL's liveFilter: not deleted and not past its expiry. */
const LIVE_SQL = 'deleted_at is null and (expires_at is null or expires_at > now())';

interface ListedRow {
  id: string;
  filename: string;
  mime: string;
  size: number;
  width: number;
  height: number;
  tags: string[];
  sha256: string;
  created_at: Date;
  expires_at: Date | null;
}

function listed(row: ListedRow): ListedUpload {
  return {
    id: row.id,
    filename: row.filename,
    mime: row.mime,
    size: Number(row.size),
    width: Number(row.width),
    height: Number(row.height),
    tags: row.tags,
    sha256: row.sha256,
    createdAt: new Date(row.created_at),
    expiresAt: row.expires_at ? new Date(row.expires_at) : null,
  };
}

/** uploads_active and storage_used_bytes of one owner. */
export interface UploadUsage {
  uploads_active: number;
  storage_used_bytes: number;
}

/** What a direct link needs of its upload row (and of its owner, for the ban rule). */
export interface ServableRow {
  id: string;
  owner_id: string;
  stored_sha256: string;
  size: number;
  mime: string;
  created_at: Date;
  pages: number | null;
  expires_at: Date | null;
  owner_banned: boolean;
  /** The keys of its variants stored at the time of the read. */
  variant_keys: string[];
}

export interface PageOptions {
  limit?: number;
  before?: string;
  tag?: string;
}

/**
 * "Live": not deleted and not past its expiry. An expired upload is gone at its time on every read (API.md Part 3),
 * before the expiry sweep marks it deleted.
 */
export function liveFilter(now = new Date()): Record<string, unknown> {
  return { deletedAt: null, $or: [{ expiresAt: null }, { expiresAt: { $gt: now } }] };
}

function limit(opts: PageOptions): number {
  return opts.limit ?? 50;
}

/** ownerPage's statement, for the owner `owner` (an SQL expression); `param` adds a parameter, giving its placeholder. */
function ownerPageSql(owner: string, opts: PageOptions, param: (value: unknown) => string): string {
  const cursor = parseCursor(opts.before);
  let sql = `select ${LISTED_COLUMNS} from uploads where owner_id = ${owner} and ${LIVE_SQL}`;
  if (cursor?.id) {
    const at = param(cursor.createdAt);
    sql += ` and (created_at < ${at} or (created_at = ${at} and id < ${param(cursor.id)}))`;
  } else if (cursor) {
    sql += ` and created_at < ${param(cursor.createdAt)}`;
  }
  if (opts.tag) {
    sql += ` and tags @> array[${param(opts.tag)}]::text[]`;
  }
  return `${sql} order by created_at desc, id desc limit ${param(limit(opts) + 1)}`;
}

/** findOwnedListed's statement (SQL expressions for the filename and the owner). */
function ownedListedSql(filename: string, owner: string): string {
  return `select ${LISTED_COLUMNS} from uploads where filename = ${filename} and owner_id = ${owner} and ${LIVE_SQL}`;
}

/** usageAndQuota's statement, for the owner `owner` (an SQL expression). */
function usageAndQuotaSql(owner: string): string {
  return `select s.n, s.bytes, u.quota_bytes, u.quota_files from users u
       cross join lateral (select count(*) as n, coalesce(sum(size), 0) as bytes from uploads
                            where owner_id = u.id and ${LIVE_SQL}) s
      where u.id = ${owner}`;
}

/** One owner's usage and own quota columns (null: the default applies). */
export type UsageAndQuota = UploadUsage & { quotaBytes: string | null; quotaFiles: number | null };

interface UsageAndQuotaRow {
  n: string;
  bytes: string;
  quota_bytes: string | null;
  quota_files: number | null;
}

function usageAndQuotaOf(row: UsageAndQuotaRow | undefined): UsageAndQuota | null {
  return row
    ? {
        uploads_active: Number(row.n),
        storage_used_bytes: Number(row.bytes),
        quotaBytes: row.quota_bytes,
        quotaFiles: row.quota_files,
      }
    : null;
}

/** The named queries on `uploads`: every read of the table goes through here. "Live": see liveFilter. */
@Injectable()
export class UploadRepository {
  constructor(private readonly em: EntityManager) {}

  /**
   * Whether the owner has these bytes: `live`, `due` (past its expiry, not yet swept: it still holds the dedupe index
   * until expired), or null. One indexed statement (uploads_owner_sha256_live_uniq), no hydration: the upload path
   * asks this on every upload and almost always hears null.
   */
  async shaState(ownerId: string, sha: string): Promise<'live' | 'due' | null> {
    const rows = await leanQuery<{ due: boolean }>(
      this.em,
      `select (expires_at is not null and expires_at <= now()) as due from uploads
        where owner_id = $1 and sha256 = $2 and deleted_at is null`,
      [ownerId, sha],
    );
    return rows.length === 0 ? null : rows[0].due ? 'due' : 'live';
  }

  /**
   * Moves a live upload's expiry to `at` if that is later (null: never expires); never earlier, and never for an upload
   * already past its expiry. The expiry it has now, or undefined when it is no longer live.
   */
  async extendExpiry(id: string, at: Date | null): Promise<Date | null | undefined> {
    const rows = await leanQuery<{ expires_at: Date | string | null }>(
      this.em,
      `update uploads
          set expires_at = case when $2::timestamptz is null then null else greatest(expires_at, $2::timestamptz) end
        where id = $1 and ${LIVE_SQL}
        returning expires_at`,
      [id, at],
    );
    if (rows.length === 0) {
      return undefined;
    }
    const value = rows[0].expires_at;
    return value === null ? null : new Date(value);
  }

  findLiveBySha(ownerId: string, sha: string): Promise<Upload | null> {
    return this.em.fork().findOne(Upload, { owner: ownerId, sha256: sha, ...liveFilter() });
  }

  /** Keyset paging on (created_at desc, id desc): never skips or repeats, ties included. */
  async livePage(
    where: { owner?: string },
    opts: PageOptions,
    withOwner = false,
  ): Promise<{ page: Upload[]; next_before: string | null }> {
    const limit = opts.limit ?? 50;
    const filter: Record<string, unknown> = { ...where, $and: [liveFilter(), keysetFilter(opts.before)] };
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

  /**
   * One owner's live uploads, newest first, keyset-paged like livePage: the owner listing runs on every gallery page,
   * so it is one statement on uploads_owner_listing_idx without entity hydration (issue 14).
   */
  async ownerPage(
    ownerId: string,
    opts: PageOptions,
  ): Promise<{ page: ListedUpload[]; next_before: string | null }> {
    const params: unknown[] = [ownerId];
    const sql = ownerPageSql('$1', opts, (value) => `$${params.push(value)}`);
    const rows = await leanQuery<ListedRow>(this.em, sql, params);
    return keysetPage(rows.map(listed), limit(opts));
  }

  /** ownerPage for the owner of the key being looked up, in the lookup's statement (ApiKeysService.authenticateWith). */
  ownerPageWithKey(opts: PageOptions): KeyCompanion<{ page: ListedUpload[]; next_before: string | null }> {
    return {
      sql: (owner, param) => ownerPageSql(owner, opts, param),
      order: 'c.created_at desc, c.id desc',
      read: (rows) => keysetPage((rows as unknown as ListedRow[]).map(listed), limit(opts)),
    };
  }

  /** One owner's live upload by filename, for the lookup route (one indexed query, no hydration). */
  async findOwnedListed(ownerId: string, filename: string): Promise<ListedUpload | null> {
    if (!FILENAME_PATTERN.test(filename)) {
      return null;
    }
    const rows = await leanQuery<ListedRow>(this.em, ownedListedSql('$1', '$2'), [filename, ownerId]);
    return rows[0] ? listed(rows[0]) : null;
  }

  /** findOwnedListed for the owner of the key being looked up, in the lookup's statement. */
  findOwnedListedWithKey(filename: string): KeyCompanion<ListedUpload | null> {
    return {
      // A name no upload can have is looked for nowhere (the key's lookup still runs).
      sql: (owner, param) =>
        FILENAME_PATTERN.test(filename)
          ? ownedListedSql(param(filename), owner)
          : `${ownedListedSql('null', owner)} and false`,
      read: (rows) => (rows[0] ? listed(rows[0] as unknown as ListedRow) : null),
    };
  }

  /**
   * One owner's usage and own quota columns (null: the default applies), in one statement (GET /api/v1/me reads
   * them on every call); null when the user row is gone.
   */
  async usageAndQuota(ownerId: string): Promise<UsageAndQuota | null> {
    return usageAndQuotaOf(
      (await leanQuery<UsageAndQuotaRow>(this.em, usageAndQuotaSql('$1'), [ownerId]))[0],
    );
  }

  /** usageAndQuota for the owner of the key being looked up, in the lookup's statement. */
  usageAndQuotaWithKey(): KeyCompanion<UsageAndQuota | null> {
    return {
      sql: (owner) => usageAndQuotaSql(owner),
      read: (rows) => usageAndQuotaOf(rows[0] as unknown as UsageAndQuotaRow | undefined),
    };
  }

  /** The usage of each owner (zeros for one without live uploads), in one query. */
  async usage(ownerIds: string[]): Promise<Map<string, UploadUsage>> {
    const out = new Map(ownerIds.map((id) => [id, { uploads_active: 0, storage_used_bytes: 0 }]));
    if (ownerIds.length === 0) {
      return out;
    }
    const rows = await this.em.getConnection().execute<{ owner_id: string; n: string; bytes: string }[]>(
      `select owner_id, count(*) as n, coalesce(sum(size), 0) as bytes from uploads
          where deleted_at is null and (expires_at is null or expires_at > now()) and owner_id in (${ownerIds.map(() => '?').join(',')}) group by owner_id`,
      ownerIds,
    );
    for (const r of rows) {
      out.set(r.owner_id, { uploads_active: Number(r.n), storage_used_bytes: Number(r.bytes) });
    }
    return out;
  }

  /**
   * The live upload behind a public filename with its owner's ban state and the keys of its stored variants; null for
   * a malformed or unknown name. One indexed query, no entity hydration: every direct-link miss pays it (issue 14).
   */
  async findServable(filename: string): Promise<ServableRow | null> {
    if (!FILENAME_PATTERN.test(filename)) {
      return null;
    }
    // Live as in liveFilter: not deleted and not past its expiry.
    const rows = await leanQuery<ServableRow>(
      this.em,
      `select u.id, u.owner_id, u.stored_sha256, u.size, u.mime, u.created_at, u.pages, u.expires_at,
              (o.banned_at is not null) as owner_banned,
              array(select v.key from upload_variants v where v.upload_id = u.id) as variant_keys
         from uploads u join users o on o.id = u.owner_id
        where u.filename = $1 and u.deleted_at is null and (u.expires_at is null or u.expires_at > now())`,
      [filename],
    );
    return rows[0] ?? null;
  }

  /** A live upload by filename, optionally only the owner's, in `em` (the caller's unit of work). */
  async findLive(em: EntityManager, filename: string, ownerId?: string): Promise<Upload | null> {
    if (!FILENAME_PATTERN.test(filename)) {
      return null;
    }
    return em.findOne(Upload, { ...(ownerId ? { owner: ownerId } : {}), filename, ...liveFilter() });
  }

  findLiveByDeleteTokenHash(em: EntityManager, hash: string): Promise<Upload | null> {
    return em.findOne(Upload, { deleteTokenHash: hash, ...liveFilter() });
  }

  async setDeleteTokenHash(id: string, hash: string): Promise<void> {
    await this.em.fork().nativeUpdate(Upload, { id }, { deleteTokenHash: hash });
  }

  /** Uploads past their expiry not yet marked deleted (the sweep's batch), optionally one owner's bytes. */
  findDue(limit: number, only?: { ownerId: string; sha256: string }): Promise<Upload[]> {
    return this.em.fork().find(
      Upload,
      {
        deletedAt: null,
        expiresAt: { $lte: new Date() },
        ...(only ? { owner: only.ownerId, sha256: only.sha256 } : {}),
      },
      { orderBy: { expiresAt: 'asc' }, limit, populate: ['owner'] },
    );
  }
}

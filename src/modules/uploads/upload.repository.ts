import { EntityManager } from '@mikro-orm/postgresql';
import { Injectable } from '@nestjs/common';
import type { SqlPart } from '../../common/database/sql-part';
import { keysetFilter, keysetPage, parseCursor } from '../../common/http/cursor';
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
}

const LISTED_COLUMNS = 'id, filename, mime, size, width, height, tags, sha256, created_at';

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
  owner_banned: boolean;
}

export interface PageOptions {
  limit?: number;
  before?: string;
  tag?: string;
}

/** A new upload row as insertChecked writes it. */
export interface NewUploadRow {
  id: string;
  ownerId: string;
  apiKeyId: string | null;
  filename: string;
  mime: string;
  size: number;
  width: number;
  height: number;
  pages: number;
  sha256: string;
  storedSha256: string;
  tags: string[];
  deleteTokenHash: string;
  scores: Upload['scores'];
  createdAt: Date;
}

/** What insertChecked found: each check's verdict, whether the row was written, how many event rows were. */
export interface CheckedInsert {
  /** The key check passed (true when there was none). */
  keyOk: boolean;
  /** The user check passed. */
  userOk: boolean;
  inserted: boolean;
  events: number;
}

/** The named queries on `uploads`: every read of the table goes through here. "Live" means not deleted. */
@Injectable()
export class UploadRepository {
  constructor(private readonly em: EntityManager) {}

  /**
   * Records an upload in one statement (one round trip, its own transaction): the checks (parts yielding zero or one
   * row with a boolean `ok`, locking what they read FOR SHARE) run first, the row is inserted only if every check
   * passed (no key row = failed; no user row = passed: the foreign key answers), and `events(cte)` (a part that
   * writes only if the CTE named `cte` yields a row) commits with it. Errors are the ORM's exception types (a unique
   * violation — the same bytes won a race — is a UniqueConstraintViolationException).
   */
  async insertChecked(
    row: NewUploadRow,
    checks: { key?: SqlPart; user: SqlPart },
    events: (recordedCte: string) => SqlPart,
  ): Promise<CheckedInsert> {
    const ctes: string[] = [];
    const params: unknown[] = [];
    const part = (name: string, p: SqlPart): void => {
      ctes.push(`${name} as (${p.sql})`);
      params.push(...p.params);
    };
    if (checks.key) {
      part('key_check', checks.key);
    }
    part('user_check', checks.user);
    const keyOk = checks.key ? 'coalesce((select ok from key_check), false)' : 'true';
    const userOk = 'coalesce((select ok from user_check), true)';
    ctes.push(`allowed as (select 1 where ${keyOk} and ${userOk})`);
    part('recorded', {
      sql:
        'insert into uploads (id, owner_id, api_key_id, filename, mime, size, width, height, pages, sha256, ' +
        'stored_sha256, tags, delete_token_hash, scores, created_at) ' +
        'select cast(? as uuid), cast(? as uuid), cast(? as uuid), ?, ?, ?, ?, ?, ?, ?, ?, ' +
        'array(select jsonb_array_elements_text(cast(? as jsonb))), ?, cast(? as jsonb), cast(? as timestamptz) ' +
        'from allowed returning id',
      params: [
        row.id,
        row.ownerId,
        row.apiKeyId,
        row.filename,
        row.mime,
        row.size,
        row.width,
        row.height,
        row.pages,
        row.sha256,
        row.storedSha256,
        JSON.stringify(row.tags),
        row.deleteTokenHash,
        row.scores ? JSON.stringify(row.scores) : null,
        row.createdAt,
      ],
    });
    part('events', events('recorded'));
    const statement =
      `with ${ctes.join(', ')} select ${keyOk} as key_ok, ${userOk} as user_ok, ` +
      '(select count(*) from recorded)::int as inserted, (select count(*) from events)::int as events';
    type Row = { key_ok: boolean; user_ok: boolean; inserted: number; events: number };
    const [result] = await this.em
      .getConnection()
      .execute<Row[]>(statement, params)
      .catch((err: unknown) => {
        // A raw statement skips the ORM's exception mapping: map it here, so the error filter answers db_failed and
        // a unique violation is a UniqueConstraintViolationException, as from em.flush().
        throw err instanceof Error ? this.em.getDriver().convertException(err) : err;
      });
    return {
      keyOk: result.key_ok,
      userOk: result.user_ok,
      inserted: result.inserted === 1,
      events: result.events,
    };
  }

  findLiveBySha(ownerId: string, sha: string): Promise<Upload | null> {
    return this.em.fork().findOne(Upload, { owner: ownerId, sha256: sha, deletedAt: null });
  }

  /** Keyset paging on (created_at desc, id desc): never skips or repeats, ties included. */
  async livePage(
    where: { owner?: string },
    opts: PageOptions,
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

  /**
   * One owner's live uploads, newest first, keyset-paged like livePage: the owner listing runs on every gallery page,
   * so it is one statement on uploads_owner_listing_idx without entity hydration (issue 14).
   */
  async ownerPage(
    ownerId: string,
    opts: PageOptions,
  ): Promise<{ page: ListedUpload[]; next_before: string | null }> {
    const limit = opts.limit ?? 50;
    const cursor = parseCursor(opts.before);
    const params: unknown[] = [ownerId];
    let sql = `select ${LISTED_COLUMNS} from uploads where owner_id = ? and deleted_at is null`;
    if (cursor?.id) {
      sql += ' and (created_at < ? or (created_at = ? and id < ?))';
      params.push(cursor.createdAt, cursor.createdAt, cursor.id);
    } else if (cursor) {
      sql += ' and created_at < ?';
      params.push(cursor.createdAt);
    }
    if (opts.tag) {
      sql += ' and tags @> array[?]::text[]';
      params.push(opts.tag);
    }
    sql += ' order by created_at desc, id desc limit ?';
    params.push(limit + 1);
    const rows = await this.em.getConnection().execute<ListedRow[]>(sql, params);
    return keysetPage(rows.map(listed), limit);
  }

  /** One owner's live upload by filename, for the lookup route (one indexed query, no hydration). */
  async findOwnedListed(ownerId: string, filename: string): Promise<ListedUpload | null> {
    if (!FILENAME_PATTERN.test(filename)) {
      return null;
    }
    const rows = await this.em
      .getConnection()
      .execute<
        ListedRow[]
      >(`select ${LISTED_COLUMNS} from uploads where filename = ? and owner_id = ? and deleted_at is null`, [filename, ownerId]);
    return rows[0] ? listed(rows[0]) : null;
  }

  /** The usage of each owner (zeros for one without live uploads), in one query. */
  async usage(ownerIds: string[]): Promise<Map<string, UploadUsage>> {
    const out = new Map(ownerIds.map((id) => [id, { uploads_active: 0, storage_used_bytes: 0 }]));
    if (ownerIds.length === 0) {
      return out;
    }
    const rows = await this.em.getConnection().execute<{ owner_id: string; n: string; bytes: string }[]>(
      `select owner_id, count(*) as n, coalesce(sum(size), 0) as bytes from uploads
          where deleted_at is null and owner_id in (${ownerIds.map(() => '?').join(',')}) group by owner_id`,
      ownerIds,
    );
    for (const r of rows) {
      out.set(r.owner_id, { uploads_active: Number(r.n), storage_used_bytes: Number(r.bytes) });
    }
    return out;
  }

  /**
   * The live upload behind a public filename with its owner's ban state; null for a malformed or unknown name. One
   * indexed query, no entity hydration: every direct-link miss pays it (issue 14).
   */
  async findServable(filename: string): Promise<ServableRow | null> {
    if (!FILENAME_PATTERN.test(filename)) {
      return null;
    }
    const rows = await this.em.getConnection().execute<ServableRow[]>(
      `select u.id, u.owner_id, u.stored_sha256, u.size, u.mime, u.created_at, u.pages,
              (o.banned_at is not null) as owner_banned
         from uploads u join users o on o.id = u.owner_id
        where u.filename = ? and u.deleted_at is null`,
      [filename],
    );
    return rows[0] ?? null;
  }

  /** A live upload by filename, optionally only the owner's, in `em` (the caller's unit of work). */
  async findLive(em: EntityManager, filename: string, ownerId?: string): Promise<Upload | null> {
    if (!FILENAME_PATTERN.test(filename)) {
      return null;
    }
    return em.findOne(Upload, { ...(ownerId ? { owner: ownerId } : {}), filename, deletedAt: null });
  }

  findLiveByDeleteTokenHash(em: EntityManager, hash: string): Promise<Upload | null> {
    return em.findOne(Upload, { deleteTokenHash: hash, deletedAt: null });
  }

  async setDeleteTokenHash(id: string, hash: string): Promise<void> {
    await this.em.fork().nativeUpdate(Upload, { id }, { deleteTokenHash: hash });
  }
}

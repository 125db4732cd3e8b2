import { EntityManager } from '@mikro-orm/postgresql';
import { Injectable } from '@nestjs/common';
import { keysetFilter, keysetPage } from '../../common/http/cursor';
import { FILENAME_PATTERN } from './filenames';
import { Upload } from './upload.entity';

/** uploads_active and storage_used_bytes of one owner. */
export interface UploadUsage {
  uploads_active: number;
  storage_used_bytes: number;
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

/** The named queries on `uploads`: every read of the table goes through here. "Live": see liveFilter. */
@Injectable()
export class UploadRepository {
  constructor(private readonly em: EntityManager) {}

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

  /** The live upload behind a public filename, its owner loaded (for the ban rule); null for a malformed name. */
  async findServable(filename: string): Promise<Upload | null> {
    if (!FILENAME_PATTERN.test(filename)) {
      return null;
    }
    return this.em.fork().findOne(Upload, { filename, ...liveFilter() }, { populate: ['owner'] });
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

import { EntityManager } from '@mikro-orm/postgresql';
import { LockMode, UniqueConstraintViolationException } from '@mikro-orm/core';
import { Injectable } from '@nestjs/common';
import { isEmail } from 'class-validator';
import { assertInTransaction } from '../../common/database/transaction';
import { AppError } from '../../common/errors/app-error';
import { keysetFilter, keysetPage } from '../../common/http/cursor';
import { NO_REQUEST, type RequestMeta } from '../../common/http/request-meta';
import { InvalidationBus } from '../../common/redis/invalidation-bus';
import { AppConfig } from '../../config/app-config';
import { StartupError } from '../../startup-error';
import { AuditService } from '../audit/audit.service';
import { hashPassword } from './password-hasher';
import { Session } from './session.entity';
import { User, type UserRole } from './user.entity';

/** Account creation shared by registration, the CLI and ADMIN_EMAIL bootstrap. */
@Injectable()
export class UsersService {
  constructor(
    private readonly em: EntityManager,
    private readonly audit: AuditService,
    private readonly invalidation: InvalidationBus,
    private readonly config: AppConfig,
  ) {}

  static normaliseEmail(email: string): string {
    return email.trim().toLowerCase();
  }

  /**
   * The user row, locked FOR SHARE for the rest of the caller's transaction, for writes made on the user's behalf
   * (an upload's record transaction): a ban either committed before (→ 403 `banned`, thrown here) or waits for the
   * caller's commit. Must be called inside a transaction (`em.transactional`) — outside one FOR SHARE would be
   * released at once and the check would mean nothing, so that is a programming error, not a silent plain read.
   * A user row that no longer exists is not an error here (the caller's foreign key answers for it).
   */
  /**
   * The user row as lockForWrite reads it (FOR SHARE; one parameter, the id), with its quotas, for a caller that
   * locks and checks in one statement (the upload record).
   */
  static readonly SHARED_ROW_SQL =
    'select banned_at, quota_bytes, quota_files from users where id = ? for share';

  static async lockForWrite(userId: string, em: EntityManager): Promise<void> {
    assertInTransaction(em, 'UsersService.lockForWrite');
    const rows = await em
      .getConnection()
      .execute<
        { banned_at: Date | null }[]
      >('select banned_at from users where id = ? for share', [userId], 'all', em.getTransactionContext());
    if (rows.length === 0) {
      // Deleted since the request was authenticated (by an operator: the API deletes no account).
      throw new AppError('unauthorized', 'The account no longer exists.');
    }
    if (rows[0].banned_at) {
      throw new AppError('banned');
    }
  }

  /** Serialises writes that count a user's rows (e.g. the active-key limit): the user row FOR UPDATE. */
  static async lockExclusive(userId: string, em: EntityManager): Promise<void> {
    assertInTransaction(em, 'UsersService.lockExclusive');
    await em
      .getConnection()
      .execute('select id from users where id = ? for update', [userId], 'all', em.getTransactionContext());
  }

  /** Id of the account with this email (normalised), or null. */
  async idForEmail(email: string): Promise<string | null> {
    const user = await this.em
      .fork()
      .findOne(User, { email: UsersService.normaliseEmail(email) }, { fields: ['id'] });
    return user?.id ?? null;
  }

  /** Emails of these accounts by id (ids without an account are absent). */
  async emailsFor(ids: readonly string[]): Promise<Map<string, string>> {
    if (ids.length === 0) {
      return new Map();
    }
    const users = await this.em
      .fork()
      .find(User, { id: { $in: [...new Set(ids)] } }, { fields: ['id', 'email'] });
    return new Map(users.map((u) => [u.id, u.email]));
  }

  /** Creates an account and its `user.registered` audit entry in one transaction. */
  async create(
    email: string,
    password: string,
    role: UserRole = 'user',
    meta: RequestMeta = NO_REQUEST,
    via: 'register' | 'cli' | 'bootstrap' | 'test' = 'register',
  ): Promise<User> {
    const normalised = UsersService.normaliseEmail(email);
    // What registration's DTO checks, for the paths without one (the CLI, ADMIN_EMAIL): an account is signed in to by
    // its email, and the website and the audit log show it.
    if (normalised.length > 254 || !isEmail(normalised)) {
      throw new AppError('bad_request', 'email must be an email address');
    }
    assertPasswordLength(password);
    if (await this.em.fork().findOne(User, { email: normalised })) {
      throw new AppError('conflict', 'This email is already registered.');
    }
    const passwordHash = await hashPassword(password);
    // A concurrent registration of the same email loses on the unique index → conflict via the filter.
    return this.em.fork().transactional(async (em) => {
      const user = em.create(User, { email: normalised, passwordHash, role });
      await this.audit.record(
        {
          action: 'user.registered',
          meta: { ...meta, actorId: meta.actorId ?? user.id },
          targetType: 'user',
          targetId: user.id,
          metadata: { email: normalised, role, via },
        },
        em,
      );
      return user;
    });
  }

  /**
   * ADMIN_EMAIL / ADMIN_PASSWORD at first start: made once, never overwritten. Instances starting together on a fresh
   * database all try; the unique email lets one win, and the others take the winner's row instead of crashing.
   */
  async ensureBootstrapAdmin(email: string, password: string): Promise<User> {
    const existing = await this.findByEmail(email);
    if (existing) {
      return existing;
    }
    try {
      return await this.create(email, password, 'admin', NO_REQUEST, 'bootstrap');
    } catch (err) {
      const lostRace =
        err instanceof UniqueConstraintViolationException ||
        (err instanceof AppError && err.code === 'conflict');
      const winner = lostRace ? await this.findByEmail(email) : null;
      if (winner) {
        return winner;
      }
      if (err instanceof AppError && err.code === 'bad_request') {
        // Settings the operator can fix: one sentence naming them (a wrong email, a password over 200 characters).
        throw new StartupError(
          `ADMIN_EMAIL / ADMIN_PASSWORD cannot make an admin: ${err.message.replace(/\.$/, '')}.`,
        );
      }
      throw err;
    }
  }

  async findById(id: string): Promise<User | null> {
    return this.em.fork().findOne(User, { id });
  }

  async findByEmail(email: string): Promise<User | null> {
    return this.em.fork().findOne(User, { email: UsersService.normaliseEmail(email) });
  }

  async setRole(email: string, role: UserRole): Promise<User> {
    const em = this.em.fork();
    const user = await em.findOne(User, { email: UsersService.normaliseEmail(email) });
    if (!user) {
      throw new AppError('not_found', 'No user with this email.');
    }
    user.role = role;
    await em.flush();
    return user;
  }

  /**
   * Replaces a user's password hash and ends their sessions, all but `keepSessionId` (the one that asked), in one
   * transaction with its `user.password_changed` entry (API.md Part 2: a password change ends a session at once).
   * `expectedHash` is the hash the caller checked the current password against: when another change committed in
   * between, this one is refused (409) rather than silently undoing it. Keys and upload tokens keep working.
   * Returns how many sessions were ended.
   */
  async replacePassword(
    userId: string,
    change: {
      newHash: string;
      expectedHash?: string;
      keepSessionId?: string;
      meta: RequestMeta;
      via: 'self' | 'cli';
    },
  ): Promise<number> {
    return this.em.fork().transactional(async (em) => {
      const user = await this.lockedUser(em, userId);
      if (change.expectedHash !== undefined && user.passwordHash !== change.expectedHash) {
        throw new AppError(
          'conflict',
          'The password was changed by another request meanwhile; sign in again.',
        );
      }
      user.passwordHash = change.newHash;
      const ended = await em.nativeDelete(
        Session,
        change.keepSessionId ? { user: user.id, id: { $ne: change.keepSessionId } } : { user: user.id },
      );
      await this.audit.record(
        {
          action: 'user.password_changed',
          meta: change.meta,
          targetType: 'user',
          targetId: user.id,
          metadata: { email: user.email, via: change.via, sessions_ended: ended },
        },
        em,
      );
      return ended;
    });
  }

  /** The CLI's reset (`user:password`): a new password for the account with this email; every session ends. */
  async resetPassword(email: string, password: string): Promise<{ user: User; sessionsEnded: number }> {
    assertPasswordLength(password);
    const user = await this.findByEmailOrFail(email);
    const sessionsEnded = await this.replacePassword(user.id, {
      newHash: await hashPassword(password),
      meta: NO_REQUEST,
      via: 'cli',
    });
    return { user, sessionsEnded };
  }

  /** Users for the admin list: newest first, keyset-paged, optionally by an email substring. */
  async listPage(opts: {
    query?: string;
    limit?: number;
    before?: string;
  }): Promise<{ users: User[]; next_before: string | null }> {
    const limit = opts.limit ?? 50;
    const where: Record<string, unknown> = keysetFilter(opts.before);
    if (opts.query) {
      where.email = { $ilike: `%${opts.query.replace(/[\\%_]/g, (c) => `\\${c}`)}%` };
    }
    const rows = await this.em
      .fork()
      .find(User, where, { orderBy: { createdAt: 'desc', id: 'desc' }, limit: limit + 1 });
    const { page, next_before } = keysetPage(rows, limit);
    return { users: page, next_before };
  }

  /**
   * Bans a user: from the commit on, every key, ut_ token and session of theirs answers 403 on every instance (each
   * request reads banned_at). Refuses an admin banning themselves or the last admin who isn't banned.
   */
  async ban(userId: string, reason: string, meta: RequestMeta): Promise<User> {
    const banned = await this.em.fork().transactional(async (em) => {
      if (userId === meta.actorId) {
        throw new AppError('conflict', 'You cannot ban yourself.');
      }
      const user = await this.lockedUser(em, userId);
      if (user.role === 'admin' && !user.bannedAt) {
        // Serialise admin bans so two admins can't ban each other into no admin at all.
        await em
          .getConnection()
          .execute(
            "select pg_advisory_xact_lock(hashtext('fxf:admin-ban'))",
            [],
            'all',
            em.getTransactionContext(),
          );
        const others = await em.count(User, { role: 'admin', bannedAt: null, id: { $ne: user.id } });
        if (others === 0) {
          throw new AppError('conflict', 'You cannot ban the last admin.');
        }
      }
      if (user.bannedAt && user.banReason === reason) {
        // Nothing changes: the audit log records what admins did to an account, not repeated clicks.
        return user;
      }
      if (!user.bannedAt) {
        user.bannedAt = new Date();
      }
      user.banReason = reason;
      await this.audit.record(
        {
          action: 'user.banned',
          meta,
          targetType: 'user',
          targetId: user.id,
          metadata: { email: user.email, reason },
        },
        em,
      );
      return user;
    });
    // Direct links follow the ban rule (SERVE_BANNED_IMAGES) on every instance at once, caches included.
    await this.invalidation.publish(`owner:${userId}`);
    return banned;
  }

  /**
   * Lifts a ban. The user's sessions from before it end here (API.md Part 2: a ban ends a session): while banned they
   * answered 403 `banned`, and a cookie stolen before the ban must not sign in again after it. Keys and their tokens
   * work again; the user signs in anew.
   */
  async unban(userId: string, meta: RequestMeta): Promise<User> {
    const unbanned = await this.em.fork().transactional(async (em) => {
      const user = await this.lockedUser(em, userId);
      if (!user.bannedAt) {
        // Not banned: nothing to lift, nothing to record.
        return user;
      }
      await em.nativeDelete(Session, { user: user.id });
      user.bannedAt = null;
      user.banReason = null;
      await this.audit.record(
        {
          action: 'user.unbanned',
          meta,
          targetType: 'user',
          targetId: user.id,
          metadata: { email: user.email },
        },
        em,
      );
      return user;
    });
    await this.invalidation.publish(`owner:${userId}`);
    return unbanned;
  }

  /** The user's quotas in force: their own (set by an admin) or the server default; null = unlimited. */
  async quotaOf(userId: string, em: EntityManager = this.em.fork()): Promise<UserQuota> {
    const user = await em.findOne(User, { id: userId });
    return this.effectiveQuota(user);
  }

  effectiveQuota(user: Pick<User, 'quotaBytes' | 'quotaFiles'> | null): UserQuota {
    const { bytes, files } = this.config.storageQuota;
    return {
      bytes: user?.quotaBytes !== null && user?.quotaBytes !== undefined ? Number(user.quotaBytes) : bytes,
      files: user?.quotaFiles !== null && user?.quotaFiles !== undefined ? user.quotaFiles : files,
    };
  }

  /** An admin sets (a number) or clears (null: back to the default) a user's quotas; audit `user.quota_changed`. */
  async setQuota(
    userId: string,
    quota: { bytes?: number | null; files?: number | null },
    meta: RequestMeta,
  ): Promise<User> {
    return this.em.fork().transactional(async (em) => {
      const user = await this.lockedUser(em, userId);
      if (quota.bytes !== undefined) {
        user.quotaBytes = quota.bytes;
      }
      if (quota.files !== undefined) {
        user.quotaFiles = quota.files;
      }
      await this.audit.record(
        {
          action: 'user.quota_changed',
          meta,
          targetType: 'user',
          targetId: user.id,
          metadata: {
            quota_bytes:
              user.quotaBytes === null || user.quotaBytes === undefined ? null : Number(user.quotaBytes),
            quota_files: user.quotaFiles ?? null,
          },
        },
        em,
      );
      return user;
    });
  }

  async findByEmailOrFail(email: string): Promise<User> {
    const user = await this.findByEmail(email);
    if (!user) {
      throw new AppError('not_found', 'No user with this email.');
    }
    return user;
  }

  private async lockedUser(em: EntityManager, userId: string): Promise<User> {
    // The id was checked at the edge (IdParam) or came from our own row (CLI).
    const user = await em.findOne(User, { id: userId }, { lockMode: LockMode.PESSIMISTIC_WRITE });
    if (!user) {
      throw new AppError('not_found', 'No such user.');
    }
    return user;
  }
}

/** What registration's DTO checks at the edge, for the paths that have no DTO (the CLI, ADMIN_PASSWORD). */
export function assertPasswordLength(password: string): void {
  if (password.length < 10) {
    throw new AppError('bad_request', 'The password must be at least 10 characters.');
  }
  if (password.length > 200) {
    throw new AppError('bad_request', 'The password must be at most 200 characters.');
  }
}

/** Storage quotas in force for a user; null = unlimited. */
export interface UserQuota {
  bytes: number | null;
  files: number | null;
}

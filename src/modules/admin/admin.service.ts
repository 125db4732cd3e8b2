import { Injectable } from '@nestjs/common';
import { AppError } from '../../common/errors/app-error';
import type { RequestMeta } from '../../common/http/request-meta';
import { isUuid } from '../../common/validation/uuid';
import { AuditService } from '../audit/audit.service';
import type { User } from '../auth/user.entity';
import { UsersService } from '../auth/users.service';
import { UploadsService } from '../uploads/uploads.service';
import type {
  AdminUploadsQueryDto,
  AdminUploadsResponse,
  AdminUser,
  AdminUserResponse,
  AdminUsersResponse,
  AuditListResponse,
  AuditQueryDto,
} from './dto/admin.dto';

/** Admin use cases over other modules' services (users, uploads, audit); no table of theirs is read here. */
@Injectable()
export class AdminService {
  constructor(
    private readonly users: UsersService,
    private readonly uploads: UploadsService,
    private readonly audit: AuditService,
  ) {}

  /** Anyone's live uploads; `user` is a user id or an email, like the audit log's `actor` (no such user: none). */
  async listUploads(q: AdminUploadsQueryDto): Promise<AdminUploadsResponse> {
    const { user, ...page } = q;
    const owner = !user ? undefined : isUuid(user) ? user : await this.users.idForEmail(user);
    if (owner === null) {
      return { ok: true, count: 0, next_before: null, uploads: [] };
    }
    return { ok: true, ...(await this.uploads.listForAdmin({ ...page, user: owner })) };
  }

  /** The audit log; `actor` is a user id or an email (resolved by UsersService), actors' emails joined in here. */
  async listAudit(q: AuditQueryDto): Promise<AuditListResponse> {
    const { actor, ...rest } = q;
    const actorId = !actor ? undefined : isUuid(actor) ? actor : await this.users.idForEmail(actor);
    const page = await this.audit.list({ ...rest, actorId });
    const emails = await this.users.emailsFor(page.entries.flatMap((e) => (e.actor ? [e.actor.id] : [])));
    return {
      ok: true,
      ...page,
      entries: page.entries.map((e) => ({
        ...e,
        actor: e.actor
          ? { id: e.actor.id, email: emails.get(e.actor.id) ?? null, key_prefix: e.actor.key_prefix }
          : null,
      })),
    };
  }

  async listUsers(opts: { query?: string; limit?: number; before?: string }): Promise<AdminUsersResponse> {
    const { users, next_before } = await this.users.listPage(opts);
    const usage = await this.uploads.usageFor(users.map((u) => u.id));
    return {
      ok: true,
      count: users.length,
      next_before,
      users: users.map((u) => this.toAdminUser(u, usage.get(u.id))),
    };
  }

  async ban(userId: string, reason: string, meta: RequestMeta): Promise<AdminUserResponse> {
    return this.withUsage(await this.users.ban(userId, reason, meta));
  }

  async setQuota(
    userId: string,
    quota: { bytes?: number | null; files?: number | null },
    meta: RequestMeta,
  ): Promise<AdminUserResponse> {
    if (quota.bytes === undefined && quota.files === undefined) {
      throw new AppError(
        'bad_request',
        'Send quota_bytes, quota_files or both (a number, or null for the default).',
      );
    }
    return this.withUsage(await this.users.setQuota(userId, quota, meta));
  }

  async unban(userId: string, meta: RequestMeta): Promise<AdminUserResponse> {
    return this.withUsage(await this.users.unban(userId, meta));
  }

  private async withUsage(user: User): Promise<AdminUserResponse> {
    const usage = await this.uploads.usageFor([user.id]);
    return { ok: true, user: this.toAdminUser(user, usage.get(user.id)) };
  }

  private toAdminUser(u: User, usage?: { uploads_active: number; storage_used_bytes: number }): AdminUser {
    return {
      id: u.id,
      email: u.email,
      role: u.role,
      banned: !!u.bannedAt,
      banned_at: u.bannedAt ? u.bannedAt.toISOString() : null,
      ban_reason: u.banReason ?? null,
      uploads_active: usage?.uploads_active ?? 0,
      storage_used_bytes: usage?.storage_used_bytes ?? 0,
      quota_bytes: this.users.effectiveQuota(u).bytes,
      quota_files: this.users.effectiveQuota(u).files,
      created_at: u.createdAt.toISOString(),
    };
  }
}

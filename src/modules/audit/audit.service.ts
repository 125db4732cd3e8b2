import { EntityManager } from '@mikro-orm/postgresql';
import { Injectable, Logger, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { DomainEvents } from '../../common/events/domain-events';
import { keysetPage, parseCursor } from '../../common/http/cursor';
import type { RequestMeta } from '../../common/http/request-meta';
import { AuditEntry } from './audit-entry.entity';

export type AuditAction =
  | 'user.registered'
  | 'user.login_failed'
  | 'user.password_changed'
  | 'user.password_change_failed'
  | 'user.banned'
  | 'user.unbanned'
  | 'user.quota_changed'
  | 'api_key.created'
  | 'api_key.revoked'
  | 'upload.deleted'
  | 'upload.expired'
  | 'upload.rejected'
  | 'webhook.created'
  | 'webhook.deleted'
  | 'webhook.disabled'
  | 'webhook.secret_rotated';

export interface AuditRecord {
  action: AuditAction;
  meta: RequestMeta;
  targetType?: string;
  targetId?: string;
  /** Never a secret: no tokens, passwords or signing secrets (enforced by redactSecrets). */
  metadata?: Record<string, unknown>;
}

export interface AuditQuery {
  action?: string;
  /** The acting user's id; null matches nothing (an actor email with no account). Emails are UsersService's. */
  actorId?: string | null;
  target?: string;
  limit?: number;
  before?: string;
}

export interface AuditEntryView {
  id: string;
  action: string;
  /** key_prefix: set when an API key (or a ut_ token it minted) acted. The email is filled in by the caller. */
  actor: { id: string; key_prefix: string | null } | null;
  target_type: string | null;
  target_id: string | null;
  ip: string | null;
  user_agent: string | null;
  metadata: Record<string, unknown>;
  created_at: string;
}

const SECRET_KEYS = /token|password|secret|hash|authorization|cookie/i;

/** Drops any metadata field whose name suggests a secret, at any depth: a second line of defence. */
export function redactSecrets(value: unknown): unknown {
  if (Array.isArray(value)) {
    return value.map(redactSecrets);
  }
  if (value && typeof value === 'object' && !(value instanceof Date)) {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>)
        .filter(([k]) => !SECRET_KEYS.test(k) || k === 'sha256')
        .map(([k, v]) => [k, redactSecrets(v)]),
    );
  }
  return value;
}

/** The append-only audit log. Writers pass their transaction's EntityManager so the entry commits with the change. */
@Injectable()
export class AuditService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(AuditService.name);
  private unsubscribe?: () => void;

  constructor(
    private readonly em: EntityManager,
    private readonly events: DomainEvents,
  ) {}

  onModuleInit(): void {
    // upload.rejected has no transaction of its own (nothing is stored), so it is recorded on its own.
    this.unsubscribe = this.events.on('upload.rejected', (e) => {
      void this.record({
        action: 'upload.rejected',
        meta: { actorId: e.userId, keyPrefix: e.keyPrefix, ip: e.ip, userAgent: e.userAgent },
        targetType: 'upload',
        targetId: e.sha256,
        metadata: { sha256: e.sha256, scores: e.scores },
      }).catch((err: unknown) => {
        // The upload is still refused (415); only its audit entry is missing, which an operator must know.
        this.logger.error(
          { err, requestId: e.requestId, sha256: e.sha256 },
          `Could not record upload.rejected (request ${e.requestId})`,
        );
      });
    });
  }

  onModuleDestroy(): void {
    this.unsubscribe?.();
  }

  /** Adds an entry; inside `em`'s transaction when one is given (flushed with it), else on its own. */
  async record(entry: AuditRecord, em?: EntityManager): Promise<void> {
    const target = em ?? this.em.fork();
    target.create(AuditEntry, {
      action: entry.action,
      actorId: entry.meta.actorId,
      keyPrefix: entry.meta.keyPrefix,
      targetType: entry.targetType ?? null,
      targetId: entry.targetId ?? null,
      ip: entry.meta.ip,
      userAgent: entry.meta.userAgent,
      metadata: redactSecrets(entry.metadata ?? {}) as Record<string, unknown>,
    });
    if (!em) {
      await target.flush();
    }
  }

  /** Newest first, keyset-paged; by action, acting user id, target id. */
  async list(
    q: AuditQuery,
  ): Promise<{ count: number; next_before: string | null; entries: AuditEntryView[] }> {
    const limit = q.limit ?? 50;
    const cursor = parseCursor(q.before);
    const params: unknown[] = [];
    const where: string[] = [];
    if (q.action) {
      where.push('a.action = ?');
      params.push(q.action);
    }
    if (q.actorId === null) {
      where.push('false');
    } else if (q.actorId !== undefined) {
      where.push('a.actor_id = ?');
      params.push(q.actorId);
    }
    if (q.target) {
      where.push('a.target_id = ?');
      params.push(q.target);
    }
    if (cursor) {
      if (cursor.id) {
        where.push('(a.created_at, a.id) < (?, ?)');
        params.push(cursor.createdAt, cursor.id);
      } else {
        where.push('a.created_at < ?');
        params.push(cursor.createdAt);
      }
    }
    const rows = await this.em.getConnection().execute<
      (Omit<AuditEntryView, 'actor' | 'created_at'> & {
        actor_id: string | null;
        key_prefix: string | null;
        created_at: string | Date;
      })[]
    >(
      `select a.id, a.action, a.actor_id, a.key_prefix, a.target_type, a.target_id, a.ip, a.user_agent,
              a.metadata, a.created_at
         from audit_entries a
        ${where.length > 0 ? `where ${where.join(' and ')}` : ''}
        order by a.created_at desc, a.id desc limit ?`,
      [...params, limit + 1],
    );
    // The raw driver hands timestamps back as strings.
    const { page, next_before } = keysetPage(
      rows.map((r) => ({ ...r, createdAt: new Date(r.created_at) })),
      limit,
    );
    return {
      count: page.length,
      next_before,
      entries: page.map((r) => ({
        id: r.id,
        action: r.action,
        actor: r.actor_id ? { id: r.actor_id, key_prefix: r.key_prefix } : null,
        target_type: r.target_type,
        target_id: r.target_id,
        ip: r.ip,
        user_agent: r.user_agent,
        metadata: r.metadata,
        created_at: r.createdAt.toISOString(),
      })),
    };
  }
}

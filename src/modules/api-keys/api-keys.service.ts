import { EntityManager } from '@mikro-orm/postgresql';
import { Injectable } from '@nestjs/common';
import { leanQuery } from '../../database/lean-query';
import { BearerAuthenticator } from '../../common/auth/authenticators';
import type { KeyPrincipal, Principal, UploadTokenPrincipal } from '../../common/auth/principal';
import type { UserRole } from '../../common/auth/user-role';
import { normaliseScopes, type Scope } from '../../common/auth/scopes';
import { assertInTransaction } from '../../common/database/transaction';
import { AppError } from '../../common/errors/app-error';
import { NO_REQUEST, type RequestMeta } from '../../common/http/request-meta';
import { InvalidationBus } from '../../common/redis/invalidation-bus';
import { AuditService } from '../audit/audit.service';
import { UsersService } from '../auth/users.service';
import { OutboxService } from '../webhooks/outbox.service';
import { ApiKey } from './api-key.entity';
import { API_KEY_PATTERN, hashToken, mintApiKey } from './api-key-token';
import { keyPrincipalFields } from './key-principal';
import type { CreateKeyResponse, KeyResponse } from './dto/api-key.dto';
import { RequestCounterService } from './request-counter.service';
import { UPLOAD_TOKEN_PREFIX } from './upload-token';
import { UploadTokensService } from './upload-tokens.service';

export const MAX_ACTIVE_KEYS = 10;

interface KeyRow {
  id: string;
  prefix: string;
  label: string;
  request_count: string;
  created_at: Date;
  last_used_at: Date | null;
  revoked_at: Date | null;
  scopes: Scope[];
  default_expires_in: number | null;
}

/** A key and its user as the lookup reads them (aliased, so a companion's columns can sit beside them). */
interface AuthRow {
  key_id: string;
  key_prefix: string;
  key_label: string;
  key_created_at: Date;
  key_request_count: string;
  key_scopes: Scope[];
  key_default_expires_in: number | null;
  key_user_id: string;
  key_email: string;
  key_role: UserRole;
  key_banned_at: Date | null;
}

/** The lookup of a live key by its token's hash ($1), on the token_hash unique index, no entity hydration. */
const KEY_LOOKUP_COLUMNS = `k.id as key_id, k.prefix as key_prefix, k.label as key_label, k.created_at as key_created_at,
       k.request_count as key_request_count, k.scopes as key_scopes, k.default_expires_in as key_default_expires_in,
       u.id as key_user_id, u.email as key_email, u.role as key_role, u.banned_at as key_banned_at`;
const KEY_LOOKUP_FROM = 'api_keys k join users u on u.id = k.user_id';
const KEY_LOOKUP_WHERE = 'k.token_hash = $1 and k.revoked_at is null';

/**
 * A statement that runs inside a key's lookup, in its one round trip (the read fast path's data statement): a
 * SELECT about the key's owner, whatever the key turns out to be, and what to make of its rows.
 */
export interface KeyCompanion<T> {
  /**
   * Its SELECT: `owner` is the key's user id (an SQL expression), `param` adds a parameter and returns its
   * placeholder. Its column names must not start with `key_` or be `companion_row`.
   */
  sql(owner: string, param: (value: unknown) => string): string;
  /**
   * For a statement of many rows (a page): their order, over its columns as `c.<column>`. Its rows then come as one
   * JSON array beside the key's one row, each row's values as JSON gives them (timestamps as ISO strings, numbers as
   * numbers, arrays as arrays), instead of one row each that repeats the key's columns (a listing of 50: 51 copies
   * of the key's scopes for pg to parse).
   */
  order?: string;
  /** Its rows, in that order (none when it found none). */
  read(rows: Record<string, unknown>[]): T;
}

@Injectable()
export class ApiKeysService extends BearerAuthenticator {
  constructor(
    private readonly em: EntityManager,
    private readonly counter: RequestCounterService,
    private readonly audit: AuditService,
    private readonly uploadTokens: UploadTokensService,
    private readonly webhooks: OutboxService,
    private readonly invalidation: InvalidationBus,
  ) {
    super();
  }

  /**
   * For writes made with a key (an upload's record transaction): locks the key row, then its user's row, FOR SHARE
   * until the caller's transaction ends, so a revoke or a ban either committed before (→ 401 `unauthorized` / 403
   * `banned`, thrown here, revocation checked first) or waits for the caller's commit. Must be called inside a
   * transaction (asserted). Static: it needs nothing but the caller's EntityManager.
   */
  /** The key row as lockForWrite reads it (FOR SHARE; one parameter, the key id or null), for a one-statement caller. */
  static readonly SHARED_ROW_SQL = 'select revoked_at from api_keys where id = ?::uuid for share';

  static async lockForWrite(
    principal: KeyPrincipal | UploadTokenPrincipal,
    em: EntityManager,
  ): Promise<void> {
    assertInTransaction(em, 'ApiKeysService.lockForWrite');
    const rows = await em
      .getConnection()
      .execute<
        { revoked_at: Date | null }[]
      >('select revoked_at from api_keys where id = ? for share', [principal.keyId], 'all', em.getTransactionContext());
    if (!rows[0] || rows[0].revoked_at) {
      throw new AppError('unauthorized', 'The API key was revoked.');
    }
    await UsersService.lockForWrite(principal.userId, em);
  }

  async create(
    userId: string,
    label: string,
    meta: RequestMeta = NO_REQUEST,
    opts: { scopes?: Scope[]; defaultExpiresIn?: number } = {},
  ): Promise<CreateKeyResponse> {
    const { token, hash, prefix } = mintApiKey();
    const scopes = normaliseScopes(opts.scopes);
    const key = await this.em.fork().transactional(async (em) => {
      // Serialise key creation per user so two parallel creates can't both pass the limit.
      await UsersService.lockExclusive(userId, em);
      const active = await em.count(ApiKey, { user: userId, revokedAt: null });
      if (active >= MAX_ACTIVE_KEYS) {
        throw new AppError(
          'conflict',
          `You already have ${MAX_ACTIVE_KEYS} active API keys; revoke one first.`,
        );
      }
      const created = em.create(ApiKey, {
        user: userId,
        tokenHash: hash,
        prefix,
        label,
        scopes,
        defaultExpiresIn: opts.defaultExpiresIn ?? null,
      });
      await this.audit.record(
        {
          action: 'api_key.created',
          meta,
          targetType: 'api_key',
          targetId: created.id,
          metadata: { prefix, label, scopes },
        },
        em,
      );
      await this.webhooks.recordApiKeyEvent(em, 'api_key.created', {
        ownerId: userId,
        key: { id: created.id, prefix, label, scopes },
        at: created.createdAt,
      });
      return created;
    });
    return { ok: true, token, key: this.toResponse(key, null) };
  }

  async list(userId: string): Promise<KeyResponse[]> {
    const keys = await this.em
      .fork()
      .find(ApiKey, { user: userId }, { orderBy: { createdAt: 'desc', id: 'desc' } });
    const live = await this.counter.live(keys.map((k) => k.id));
    return keys.map((k) => this.toResponse(k, live.get(k.id) ?? null));
  }

  /** One key of the user, with its live request count (one indexed query, no hydration). */
  async get(userId: string, keyId: string): Promise<KeyResponse> {
    const rows = await this.em.getConnection().execute<KeyRow[]>(
      `select id, prefix, label, request_count, created_at, last_used_at, revoked_at, scopes, default_expires_in
         from api_keys where id = ? and user_id = ?`,
      [keyId, userId],
    );
    const row = rows[0];
    if (!row) {
      throw new AppError('not_found', 'No such API key.');
    }
    const live = await this.counter.live([row.id]);
    const key = {
      id: row.id,
      prefix: row.prefix,
      label: row.label,
      requestCount: row.request_count,
      createdAt: new Date(row.created_at),
      lastUsedAt: row.last_used_at && new Date(row.last_used_at),
      revokedAt: row.revoked_at && new Date(row.revoked_at),
      scopes: row.scopes,
      defaultExpiresIn: row.default_expires_in,
    };
    return this.toResponse(key, live.get(row.id) ?? null);
  }

  async revoke(
    userId: string,
    keyId: string,
    meta: RequestMeta = NO_REQUEST,
  ): Promise<{ ok: true; revoked: string }> {
    const revoked = await this.em.fork().transactional(async (em) => {
      const key = await em.findOne(ApiKey, { id: keyId, user: userId, revokedAt: null });
      if (!key) {
        throw new AppError('not_found', 'No such API key.');
      }
      // Committed before we answer: every instance reads the key from the database on each request.
      key.revokedAt = new Date();
      await this.audit.record(
        {
          action: 'api_key.revoked',
          meta,
          targetType: 'api_key',
          targetId: key.id,
          metadata: { prefix: key.prefix, scopes: normaliseScopes(key.scopes) },
        },
        em,
      );
      await this.webhooks.recordApiKeyEvent(em, 'api_key.revoked', {
        ownerId: userId,
        key: { id: key.id, prefix: key.prefix, label: key.label, scopes: normaliseScopes(key.scopes) },
        at: key.revokedAt,
      });
      return { ok: true as const, revoked: key.id };
    });
    // Every request is answered from the database's key, but the read fast path starts a known key's work before
    // the answer is in (KeyHints): it forgets the key everywhere now.
    await this.invalidation.publish(`key:${keyId}`);
    return revoked;
  }

  /** The BearerAuthenticator: an `fxf_` key here, a `ut_` upload token in UploadTokensService. */
  async authenticate(token: string): Promise<Principal> {
    if (token.startsWith(UPLOAD_TOKEN_PREFIX)) {
      return this.uploadTokens.authenticate(token);
    }
    if (!API_KEY_PATTERN.test(token)) {
      throw new AppError('unauthorized', 'Unknown or malformed API key.');
    }
    // Every bearer request pays this: one query on the token_hash unique index, no entity hydration.
    const rows = await leanQuery<AuthRow>(
      this.em,
      `select ${KEY_LOOKUP_COLUMNS} from ${KEY_LOOKUP_FROM} where ${KEY_LOOKUP_WHERE}`,
      [hashToken(token)],
    );
    return principalOf(rows[0]);
  }

  /**
   * authenticate() for an `fxf_` key, with a companion statement about the key's owner run in the same statement (a
   * lateral join on the key's user id): one round trip and one statement where a read would take two. The companion
   * runs whatever the key turns out to be; its rows are read only for a live key of an owner not banned. `tokenHash`:
   * the token's hashToken(), when the caller has it already.
   */
  async authenticateWith<T>(
    token: string,
    companion: KeyCompanion<T>,
    tokenHash: string = hashToken(token),
  ): Promise<{ principal: KeyPrincipal; data: T }> {
    if (!API_KEY_PATTERN.test(token)) {
      throw new AppError('unauthorized', 'Unknown or malformed API key.');
    }
    const params: unknown[] = [tokenHash];
    const param = (value: unknown): string => `$${params.push(value)}`;
    const data = companion.sql('k.user_id', param);
    if (companion.order) {
      const rows = await leanQuery<AuthRow & { companion_rows: Record<string, unknown>[] | null }>(
        this.em,
        `select ${KEY_LOOKUP_COLUMNS}, d.companion_rows from ${KEY_LOOKUP_FROM}
           left join lateral (select json_agg(c order by ${companion.order}) as companion_rows from (${data}) c) d
             on true
          where ${KEY_LOOKUP_WHERE}`,
        params,
      );
      const principal = principalOf(rows[0]);
      return { principal, data: companion.read(rows[0].companion_rows ?? []) };
    }
    const rows = await leanQuery<AuthRow & Record<string, unknown>>(
      this.em,
      `select ${KEY_LOOKUP_COLUMNS}, d.* from ${KEY_LOOKUP_FROM}
         left join lateral (select true as companion_row, c.* from (${data}) c) d on true
        where ${KEY_LOOKUP_WHERE}`,
      params,
    );
    const principal = principalOf(rows[0]);
    return { principal, data: companion.read(rows.filter((r) => r.companion_row === true)) };
  }

  toResponse(
    key: Pick<
      ApiKey,
      | 'id'
      | 'prefix'
      | 'label'
      | 'requestCount'
      | 'createdAt'
      | 'lastUsedAt'
      | 'revokedAt'
      | 'scopes'
      | 'defaultExpiresIn'
    >,
    live: { count: number | null; lastUsed: Date | null } | null,
  ): KeyResponse {
    const stored = Number(key.requestCount);
    const lastUsed = [key.lastUsedAt ?? null, live?.lastUsed ?? null]
      .filter((d): d is Date => d !== null)
      .sort((a, b) => b.getTime() - a.getTime())[0];
    return {
      id: key.id,
      prefix: key.prefix,
      label: key.label,
      scopes: normaliseScopes(key.scopes),
      default_expires_in: key.defaultExpiresIn ?? null,
      request_count: Math.max(stored, live?.count ?? 0),
      created_at: key.createdAt.toISOString(),
      last_used_at: lastUsed ? lastUsed.toISOString() : null,
      revoked_at: key.revokedAt ? key.revokedAt.toISOString() : null,
    };
  }
}

/** The principal of the lookup's row; 401 when there is none (unknown or revoked), 403 when its owner is banned. */
function principalOf(row: AuthRow | undefined): KeyPrincipal {
  if (!row) {
    throw new AppError('unauthorized', 'Unknown or revoked API key.');
  }
  return {
    kind: 'key',
    ...keyPrincipalFields({
      id: row.key_id,
      prefix: row.key_prefix,
      label: row.key_label,
      createdAt: new Date(row.key_created_at),
      requestCount: row.key_request_count,
      scopes: row.key_scopes,
      defaultExpiresIn: row.key_default_expires_in,
      user: { id: row.key_user_id, email: row.key_email, role: row.key_role, bannedAt: row.key_banned_at },
    }),
  };
}

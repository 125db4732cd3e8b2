import { EntityManager } from '@mikro-orm/postgresql';
import {
  type BeforeApplicationShutdown,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { SessionAuthenticator } from '../../common/auth/authenticators';
import type { SessionPrincipal } from '../../common/auth/principal';
import { sha256Hex } from '../../common/crypto/sha256';
import { AppError } from '../../common/errors/app-error';
import { PeriodicJob } from '../../common/jobs/periodic-job';
import { ProcessRoleService } from '../../common/jobs/process-role.service';
import { AppConfig } from '../../config/app-config';
import { Session } from './session.entity';
import type { User } from './user.entity';

const SESSION_TTL_MS = 30 * 24 * 3600 * 1000;
/** Expired sessions are deleted this often (they already stopped working at expires_at). */
const CLEANUP_EVERY_MS = 60 * 60 * 1000;
const CLEANUP_BATCH = 5000;
/** The BullMQ queue of the cleanup's job scheduler (one run per period across all instances). */
export const SESSION_CLEANUP_QUEUE = 'session-cleanup';

/**
 * Server-side sessions: the cookie holds a random token, the table its hash. Every request looks the session up
 * (no cache), so logout and bans end it at once on every instance.
 */
@Injectable()
export class SessionsService
  extends SessionAuthenticator
  implements OnApplicationBootstrap, BeforeApplicationShutdown
{
  private readonly logger = new Logger(SessionsService.name);
  private job: PeriodicJob | null = null;

  constructor(
    private readonly em: EntityManager,
    private readonly config: AppConfig,
    private readonly roles: ProcessRoleService,
  ) {
    super();
  }

  /** Hourly, once across the deployment (a job scheduler where the role runs periodic work), so the table stays small. */
  onApplicationBootstrap(): void {
    if (!this.roles.starts('periodic')) {
      return;
    }
    this.job = PeriodicJob.start(
      this.config,
      {
        queue: SESSION_CLEANUP_QUEUE,
        schedulerId: 'session-cleanup',
        name: 'delete-expired',
        everyMs: CLEANUP_EVERY_MS,
        run: () => this.deleteExpired(),
      },
      this.logger,
    );
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.job?.close();
  }

  /**
   * Deletes sessions that expired before `now`, in batches so no statement holds many row locks. Idempotent: two
   * instances running it at once just share the work. Returns how many were deleted.
   */
  async deleteExpired(now = new Date()): Promise<number> {
    const conn = this.em.getConnection();
    let total = 0;
    for (;;) {
      const res = await conn.execute<{ affectedRows?: number }>(
        'delete from sessions where id in (select id from sessions where expires_at < ? limit ?)',
        [now, CLEANUP_BATCH],
        'run',
      );
      const n = res.affectedRows ?? 0;
      total += n;
      if (n < CLEANUP_BATCH) {
        return total;
      }
    }
  }

  async create(user: User): Promise<{ token: string; expiresAt: Date }> {
    const token = randomBytes(32).toString('hex');
    const expiresAt = new Date(Date.now() + SESSION_TTL_MS);
    const em = this.em.fork();
    em.create(Session, { tokenHash: sha256Hex(token), user: user.id, expiresAt });
    await em.flush();
    return { token, expiresAt };
  }

  async destroy(token: string): Promise<void> {
    await this.em.fork().nativeDelete(Session, { tokenHash: sha256Hex(token) });
  }

  async authenticate(token: string): Promise<SessionPrincipal | null> {
    if (!/^[0-9a-f]{64}$/.test(token)) {
      return null;
    }
    const session = await this.em
      .fork()
      .findOne(
        Session,
        { tokenHash: sha256Hex(token), expiresAt: { $gt: new Date() } },
        { populate: ['user'] },
      );
    if (!session) {
      return null;
    }
    const user = session.user;
    if (user.bannedAt) {
      // As sign-in answers it: the person whose page this is reads why (the website shows it on the sign-in page).
      throw new AppError('banned', user.banReason ? `This account is banned: ${user.banReason}` : undefined);
    }
    return {
      kind: 'session',
      userId: user.id,
      email: user.email,
      role: user.role,
      sessionId: session.id,
      csrfToken: this.csrfFor(token),
    };
  }

  /** The CSRF token is derived from the session token (HMAC), so nothing extra is stored. */
  csrfFor(sessionToken: string): string {
    return createHmac('sha256', this.config.secretKey).update(`csrf:${sessionToken}`).digest('hex');
  }

  verifyCsrf(principal: SessionPrincipal, header: string | undefined): boolean {
    if (!header) {
      return false;
    }
    const a = Buffer.from(header);
    const b = Buffer.from(principal.csrfToken);
    return a.length === b.length && timingSafeEqual(a, b);
  }
}

import { Injectable } from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';
import { AppError } from '../../common/errors/app-error';
import type { RequestMeta } from '../../common/http/request-meta';
import { AppConfig } from '../../config/app-config';
import { AuditService } from '../audit/audit.service';
import type { SessionPrincipal } from '../../common/auth/principal';
import type { UserResponse } from './dto/auth.dto';
import { LoginThrottle } from './login-throttle';
import { DUMMY_HASH_PROMISE, hashPassword, verifyPassword } from './password-hasher';
import { SessionsService } from './sessions.service';
import type { User } from './user.entity';
import { UsersService } from './users.service';

export interface LoginResult {
  user: UserResponse;
  sessionToken: string;
  expiresAt: Date;
}

export function toUserResponse(user: User): UserResponse {
  return { id: user.id, email: user.email, role: user.role };
}

@Injectable()
export class AuthService {
  constructor(
    private readonly users: UsersService,
    private readonly sessions: SessionsService,
    private readonly throttle: LoginThrottle,
    private readonly config: AppConfig,
    private readonly audit: AuditService,
  ) {}

  async register(email: string, password: string, meta: RequestMeta): Promise<LoginResult> {
    if (!this.config.registrationOpen) {
      throw new AppError('forbidden', 'Registration is closed on this server.');
    }
    const user = await this.users.create(email, password, 'user', meta);
    const session = await this.sessions.create(user);
    return { user: toUserResponse(user), sessionToken: session.token, expiresAt: session.expiresAt };
  }

  async login(email: string, password: string, meta: RequestMeta): Promise<LoginResult> {
    const ip = meta.ip ?? 'unknown';
    const normalised = UsersService.normaliseEmail(email);
    const delay = await this.throttle.delayFor(normalised, ip);
    if (delay > 0) {
      await sleep(delay);
    }
    const user = await this.users.findByEmail(normalised);
    // Unknown email and wrong password cost the same and answer the same.
    const ok = await verifyPassword(password, user?.passwordHash ?? (await DUMMY_HASH_PROMISE));
    if (!user || !ok) {
      await this.throttle.recordFailure(normalised, ip);
      await this.audit.record({
        action: 'user.login_failed',
        meta,
        targetType: 'user',
        targetId: user?.id,
        metadata: { email: normalised, reason: user ? 'wrong_password' : 'unknown_email' },
      });
      throw new AppError('unauthorized', 'Wrong email or password.');
    }
    if (user.bannedAt) {
      // Only after the right password: the person learns why (the website shows it), a guesser learns nothing.
      throw new AppError('banned', user.banReason ? `This account is banned: ${user.banReason}` : undefined);
    }
    await this.throttle.reset(normalised, ip);
    const session = await this.sessions.create(user);
    return { user: toUserResponse(user), sessionToken: session.token, expiresAt: session.expiresAt };
  }

  /**
   * A signed-in person's new password: the current one first (a session left open on a shared machine must not be
   * enough), slowed down after repeated failures exactly like sign-in (the same counter, so a guesser gains nothing
   * by switching between the two). Ends every other session of the account; this one stays. Returns how many ended.
   */
  async changePassword(
    principal: SessionPrincipal,
    current: string,
    next: string,
    meta: RequestMeta,
  ): Promise<number> {
    if (current === next) {
      throw new AppError('bad_request', 'The new password must differ from the current one.');
    }
    const ip = meta.ip ?? 'unknown';
    const delay = await this.throttle.delayFor(principal.email, ip);
    if (delay > 0) {
      await sleep(delay);
    }
    const user = await this.users.findById(principal.userId);
    if (!user) {
      throw new AppError('unauthorized', 'The account no longer exists.');
    }
    if (!(await verifyPassword(current, user.passwordHash))) {
      await this.throttle.recordFailure(principal.email, ip);
      await this.audit.record({
        action: 'user.password_change_failed',
        meta,
        targetType: 'user',
        targetId: user.id,
        metadata: { email: user.email },
      });
      throw new AppError('forbidden', 'The current password is wrong.');
    }
    const ended = await this.users.replacePassword(user.id, {
      newHash: await hashPassword(next),
      expectedHash: user.passwordHash,
      keepSessionId: principal.sessionId,
      meta,
      via: 'self',
    });
    await this.throttle.reset(principal.email, ip);
    return ended;
  }

  logout(sessionToken: string | undefined): Promise<void> {
    return sessionToken ? this.sessions.destroy(sessionToken) : Promise.resolve();
  }
}

import { EntityManager } from '@mikro-orm/postgresql';
import { Injectable } from '@nestjs/common';
import { AppError } from '../../common/errors/app-error';
import { hashPassword } from './password-hasher';
import { User, type UserRole } from './user.entity';

/** Account creation shared by registration, the CLI and ADMIN_EMAIL bootstrap. */
@Injectable()
export class UsersService {
  constructor(private readonly em: EntityManager) {}

  static normaliseEmail(email: string): string {
    return email.trim().toLowerCase();
  }

  async create(email: string, password: string, role: UserRole = 'user'): Promise<User> {
    if (password.length < 10) {
      throw new AppError('bad_request', 'The password must be at least 10 characters.');
    }
    const normalised = UsersService.normaliseEmail(email);
    const em = this.em.fork();
    if (await em.findOne(User, { email: normalised })) {
      throw new AppError('conflict', 'This email is already registered.');
    }
    const user = em.create(User, { email: normalised, passwordHash: await hashPassword(password), role });
    // A concurrent registration of the same email loses on the unique index → conflict via the filter.
    await em.persistAndFlush(user);
    return user;
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
}

import { Injectable } from '@nestjs/common';
import { RedisService } from '../../common/redis/redis.module';

const WINDOW_SECONDS = 15 * 60;
const FREE_FAILURES = 5;

/**
 * "Repeated failures are slowed down" (API.md, Auth): after 5 failed logins for one (email, IP) in 15 minutes,
 * each further attempt waits 1 s more (up to 10 s) before it is answered. Keyed by the pair so an attacker
 * can't lock a victim out from another address.
 */
@Injectable()
export class LoginThrottle {
  constructor(private readonly redis: RedisService) {}

  async delayFor(email: string, ip: string): Promise<number> {
    const failures = Number((await this.redis.client.get(this.key(email, ip)).catch(() => null)) ?? 0);
    return failures < FREE_FAILURES ? 0 : Math.min(10_000, (failures - FREE_FAILURES + 1) * 1000);
  }

  async recordFailure(email: string, ip: string): Promise<void> {
    const key = this.key(email, ip);
    await this.redis.client
      .multi()
      .incr(key)
      .expire(key, WINDOW_SECONDS)
      .exec()
      .catch(() => undefined);
  }

  async reset(email: string, ip: string): Promise<void> {
    await this.redis.client.del(this.key(email, ip)).catch(() => undefined);
  }

  private key(email: string, ip: string): string {
    return `login-fail:${email}:${ip}`;
  }
}

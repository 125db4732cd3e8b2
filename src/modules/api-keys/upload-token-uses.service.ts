import { Injectable, Logger } from '@nestjs/common';
import type { Principal } from '../../common/auth/principal';
import { AppError } from '../../common/errors/app-error';
import { RedisService } from '../../common/redis/redis.module';
import { withRedisTimeout } from '../../common/redis/redis-timeout';

const REDIS_TIMEOUT_MS = 2000;
/** The counter outlives the token by this much, so a use is never forgotten while the token still verifies. */
const KEEP_AFTER_EXPIRY_MS = 60_000;

/**
 * Takes one use if fewer than ARGV[1] are taken. KEYS[1]: the token's counter. ARGV: max, expire-at (epoch ms).
 * One script, so every instance sees one count: exactly max uses are handed out, however many race.
 */
const RESERVE_SCRIPT = `
local used = redis.call('INCR', KEYS[1])
if used == 1 then
  redis.call('PEXPIREAT', KEYS[1], ARGV[2])
end
if used > tonumber(ARGV[1]) then
  redis.call('DECR', KEYS[1])
  return 0
end
return 1`;

/**
 * `max_uploads` of a constrained `ut_` token (API.md Part 3), the one stateful part of a token: counted in Redis
 * under the token's signed id. A use is taken before the body is read and given back when the upload fails, so
 * only successful answers (a new upload or a dedupe hit) use the token up. Redis down → 503 `unavailable` (never
 * admitted unchecked: the count is a promise to the token's minter).
 */
@Injectable()
export class UploadTokenUsesService {
  private readonly logger = new Logger(UploadTokenUsesService.name);

  constructor(private readonly redis: RedisService) {}

  /** Takes a use (a no-op for anything but a token with max_uploads); returns the function that gives it back. */
  async reserve(principal: Principal): Promise<() => Promise<void>> {
    if (principal.kind !== 'upload_token' || !principal.limits.maxUploads || !principal.limits.tokenId) {
      return () => Promise.resolve();
    }
    const { maxUploads, tokenId } = principal.limits;
    const key = `upload-token-uses:${tokenId}`;
    const client = this.redis.client;
    let taken: unknown;
    try {
      taken = await withRedisTimeout(
        client.eval(
          RESERVE_SCRIPT,
          1,
          key,
          String(maxUploads),
          String(principal.expiresAt.getTime() + KEEP_AFTER_EXPIRY_MS),
        ),
        REDIS_TIMEOUT_MS,
        'upload token uses',
      );
    } catch (err) {
      this.logger.error({ err }, 'upload token use counter unavailable; refusing');
      throw new AppError('unavailable', 'The upload token counter is unavailable. Retry with backoff.', {
        cause: err,
        headers: { 'Retry-After': '5' },
      });
    }
    if (taken !== 1) {
      throw new AppError(
        'forbidden',
        `This upload token is used up: it allowed ${maxUploads} upload${maxUploads === 1 ? '' : 's'}.`,
      );
    }
    let given = false;
    return async () => {
      if (given) {
        return;
      }
      given = true;
      await withRedisTimeout(client.decr(key), REDIS_TIMEOUT_MS, 'upload token uses').catch((err: unknown) =>
        this.logger.warn({ err }, 'could not give an upload token use back'),
      );
    };
  }
}

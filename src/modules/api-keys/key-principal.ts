import type { KeyPrincipal } from '../../common/auth/principal';
import { normaliseScopes } from '../../common/auth/scopes';
import { AppError } from '../../common/errors/app-error';
import type { ApiKey } from './api-key.entity';

/** What a live key (and every ut_ token it minted) acts as; a banned owner stops here with 403 `banned`. */
export function keyPrincipalFields(key: ApiKey): Omit<KeyPrincipal, 'kind'> {
  if (key.user.bannedAt) {
    throw new AppError('banned');
  }
  return {
    userId: key.user.id,
    email: key.user.email,
    role: key.user.role,
    keyId: key.id,
    keyPrefix: key.prefix,
    storedRequestCount: Number(key.requestCount),
    scopes: normaliseScopes(key.scopes),
    defaultExpiresIn: key.defaultExpiresIn ?? null,
  };
}

import type { KeyPrincipal } from '../../common/auth/principal';
import { normaliseScopes } from '../../common/auth/scopes';
import { AppError } from '../../common/errors/app-error';
import type { ApiKey } from './api-key.entity';

/** The parts of a key (entity or raw row) and of its user that a principal is made of. */
export type KeyWithUser = Pick<
  ApiKey,
  'id' | 'prefix' | 'label' | 'createdAt' | 'requestCount' | 'scopes' | 'defaultExpiresIn'
> & {
  user: Pick<ApiKey['user'], 'id' | 'email' | 'role' | 'bannedAt'>;
};

/** What a live key (and every ut_ token it minted) acts as; a banned owner stops here with 403 `banned`. */
export function keyPrincipalFields(key: KeyWithUser): Omit<KeyPrincipal, 'kind'> {
  if (key.user.bannedAt) {
    throw new AppError('banned');
  }
  return {
    userId: key.user.id,
    email: key.user.email,
    role: key.user.role,
    keyId: key.id,
    keyPrefix: key.prefix,
    keyLabel: key.label,
    keyCreatedAt: key.createdAt,
    storedRequestCount: Number(key.requestCount),
    scopes: normaliseScopes(key.scopes),
    defaultExpiresIn: key.defaultExpiresIn ?? null,
  };
}

import { EntityManager } from '@mikro-orm/postgresql';
import { Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { KeyPrincipal, UploadTokenPrincipal } from '../../common/auth/principal';
import { AppError } from '../../common/errors/app-error';
import { Clock } from '../../common/time/clock';
import { AppConfig } from '../../config/app-config';
import { ApiKey } from './api-key.entity';
import { keyPrincipalFields } from './key-principal';
import type { UploadTokenResponse } from './dto/upload-token.dto';
import {
  signUploadToken,
  type UploadTokenConstraints,
  uploadTokenSigningKey,
  verifyUploadToken,
} from './upload-token';

/**
 * Stateless `ut_` upload tokens (API.md, POST /api/v1/upload-token). Nothing is stored per token: it carries its
 * owner, minting key and expiry under an HMAC, and every use re-reads the minting key, so revoking the key or
 * banning the owner ends all its tokens at once on every instance.
 */
@Injectable()
export class UploadTokensService {
  /** The current secret signs; the previous one (SECRET_KEY_PREVIOUS) still verifies during a rotation. */
  private readonly keys: Buffer[];

  constructor(
    private readonly em: EntityManager,
    private readonly clock: Clock,
    config: AppConfig,
  ) {
    this.keys = [config.secretKey, config.secretKeyPrevious]
      .filter((s): s is string => Boolean(s))
      .map(uploadTokenSigningKey);
  }

  /** `constraints` are signed into the token; max_uploads also gets a random token id to count uses under. */
  mint(
    key: KeyPrincipal,
    ttlSeconds: number,
    constraints: Omit<UploadTokenConstraints, 'tokenId'> = {},
  ): UploadTokenResponse {
    const expiresAt = this.clock.now() + ttlSeconds * 1000;
    const token = signUploadToken(
      {
        userId: key.userId,
        keyId: key.keyId,
        expiresAt,
        ...constraints,
        tokenId: constraints.maxUploads === undefined ? undefined : randomUUID(),
      },
      this.keys[0],
    );
    return { ok: true, token, expires_at: new Date(expiresAt).toISOString() };
  }

  async authenticate(token: string): Promise<UploadTokenPrincipal> {
    const verdict = verifyUploadToken(token, this.keys, this.clock.now());
    if (!verdict.ok) {
      throw new AppError(
        'unauthorized',
        verdict.reason === 'expired' ? 'The upload token has expired.' : 'Invalid upload token.',
      );
    }
    const { claims } = verdict;
    // No cache, on purpose: one indexed read per use is what makes a revoke instant.
    const key = await this.em
      .fork()
      .findOne(ApiKey, { id: claims.keyId, revokedAt: null }, { populate: ['user'] });
    if (!key || key.user.id !== claims.userId) {
      throw new AppError('unauthorized', 'The API key that minted this upload token was revoked.');
    }
    const { maxBytes, allowedTypes, tags, maxUploads, tokenId } = claims;
    return {
      kind: 'upload_token',
      ...keyPrincipalFields(key),
      expiresAt: new Date(claims.expiresAt),
      limits: { maxBytes, allowedTypes, tags, maxUploads, tokenId },
    };
  }
}

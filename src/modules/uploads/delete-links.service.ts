import { Injectable } from '@nestjs/common';
import { createHmac } from 'node:crypto';
import { sha256Hex } from '../../common/crypto/sha256';
import { AppError } from '../../common/errors/app-error';
import type { RequestMeta } from '../../common/http/request-meta';
import { AppConfig } from '../../config/app-config';
import type { DeletedResponse } from './dto/upload.dto';
import type { Upload } from './upload.entity';
import { UploadRepository } from './upload.repository';
import { UploadsService } from './uploads.service';

/**
 * The one-shot delete links: derive, verify, re-key and delete-by-token. The token is HMAC(SECRET_KEY, upload id),
 * 256 bits; only its SHA-256 is stored. Being derivable, a dedupe hit can hand out a working link again without
 * keeping the token.
 */
@Injectable()
export class DeleteLinksService {
  constructor(
    private readonly config: AppConfig,
    private readonly repository: UploadRepository,
    private readonly uploads: UploadsService,
  ) {}

  derive(uploadId: string, secret = this.config.secretKey): { token: string; hash: string } {
    const token = createHmac('sha256', secret).update(`delete-link:${uploadId}`).digest('hex');
    return { token, hash: sha256Hex(token) };
  }

  /**
   * A working token for an existing upload: derived from SECRET_KEY or, for an upload made before a rotation, from
   * SECRET_KEY_PREVIOUS. If neither derives the stored hash any more, the row is re-keyed to the current secret
   * (links handed out under a secret that is gone could not be honoured anyway).
   */
  async tokenFor(upload: Upload): Promise<string> {
    const secrets = [this.config.secretKey, this.config.secretKeyPrevious].filter((k): k is string => !!k);
    const match = secrets
      .map((k) => this.derive(upload.id, k))
      .find((d) => d.hash === upload.deleteTokenHash);
    if (match) {
      return match.token;
    }
    const current = this.derive(upload.id);
    await this.repository.setDeleteTokenHash(upload.id, current.hash);
    return current.token;
  }

  /** The one-shot delete link: the row is marked deleted, so a second use finds nothing. */
  async deleteByToken(token: string, meta: RequestMeta): Promise<DeletedResponse> {
    return this.uploads.deleteWhere(
      (em) =>
        /^[0-9a-f]{64}$/.test(token)
          ? this.repository.findLiveByDeleteTokenHash(em, sha256Hex(token))
          : Promise.resolve(null),
      meta,
      'delete_link',
      () => new AppError('not_found', 'Unknown or already used delete link.'),
    );
  }
}

import { EntityManager } from '@mikro-orm/postgresql';
import { Injectable, Logger, type OnApplicationBootstrap } from '@nestjs/common';
import { AppError } from '../../common/errors/app-error';
import { ProcessRoleService } from '../../common/jobs/process-role.service';
import { AppConfig } from '../../config/app-config';
import { SecretBox } from './secret-box';
import { newSigningSecret } from './signer';
import { WebhookSecret } from './webhook-secret.entity';

/** The one signing secret per account: made on first use, rotated on request, kept encrypted. */
@Injectable()
export class SigningSecretsService implements OnApplicationBootstrap {
  private readonly logger = new Logger(SigningSecretsService.name);
  private readonly box: SecretBox;

  constructor(
    private readonly em: EntityManager,
    private readonly config: AppConfig,
    private readonly roles: ProcessRoleService,
  ) {
    this.box = new SecretBox(config.secretKey, config.secretKeyPrevious);
  }

  /** After a SECRET_KEY rotation, worker instances re-seal every secret in the background (reads do it too). */
  onApplicationBootstrap(): void {
    if (this.config.secretKeyPrevious && this.roles.starts('secretReseal')) {
      this.resealAll().catch((err: unknown) => this.logger.warn({ err }, 'signing secrets not re-sealed'));
    }
  }

  /** Seals under SECRET_KEY every secret that only SECRET_KEY_PREVIOUS opens; returns how many. */
  async resealAll(): Promise<number> {
    const conn = this.em.getConnection();
    let after = '00000000-0000-0000-0000-000000000000';
    let resealed = 0;
    for (;;) {
      const rows = await conn.execute<{ user_id: string; sealed: string }[]>(
        'select user_id, sealed from webhook_secrets where user_id > ? order by user_id limit 500',
        [after],
      );
      for (const row of rows) {
        const opened = this.box.unseal(row.sealed, row.user_id);
        if (opened?.stale) {
          const res = await conn.execute<{ affectedRows?: number }>(
            'update webhook_secrets set sealed = ? where user_id = ? and sealed = ?',
            [this.box.seal(opened.plaintext, row.user_id), row.user_id, row.sealed],
            'run',
          );
          resealed += res.affectedRows ?? 0;
        }
      }
      if (rows.length < 500) {
        return resealed;
      }
      after = rows[rows.length - 1].user_id;
    }
  }

  /** The account's secret, created if it has none yet (concurrent first calls agree on one). */
  async reveal(userId: string, em: EntityManager = this.em.fork()): Promise<string> {
    const existing = await em.findOne(WebhookSecret, { user: userId }, { refresh: true });
    if (existing) {
      return this.open(existing, em);
    }
    const secret = newSigningSecret();
    await em
      .getConnection()
      .execute(
        'insert into webhook_secrets (user_id, sealed, created_at) values (?, ?, ?) on conflict (user_id) do nothing',
        [userId, this.box.seal(secret, userId), new Date()],
        'run',
        em.getTransactionContext(),
      );
    const row = await em.findOneOrFail(WebhookSecret, { user: userId }, { refresh: true });
    return this.open(row, em);
  }

  /** A new secret replaces the old one at once (in `em`'s transaction when given). */
  async rotate(userId: string, em: EntityManager = this.em.fork()): Promise<string> {
    const secret = newSigningSecret();
    await em.getConnection().execute(
      `insert into webhook_secrets (user_id, sealed, created_at, rotated_at) values (?, ?, ?, ?)
           on conflict (user_id) do update set sealed = excluded.sealed, rotated_at = excluded.rotated_at`,
      [userId, this.box.seal(secret, userId), new Date(), new Date()],
      'run',
      em.getTransactionContext(),
    );
    return secret;
  }

  private async open(row: WebhookSecret, em: EntityManager): Promise<string> {
    const opened = this.box.unseal(row.sealed, row.user.id);
    if (opened === null) {
      // Sealed under a SECRET_KEY that is no longer configured: only a rotation can mend it.
      throw new AppError(
        'internal',
        'The signing secret cannot be decrypted with the configured SECRET_KEY; rotate it.',
      );
    }
    if (opened.stale) {
      // Opened with SECRET_KEY_PREVIOUS: seal it again under the current key, so retiring the old key later doesn't
      // kill it. Conditional on the value read, so a rotation that committed meanwhile is never overwritten.
      try {
        await em
          .getConnection()
          .execute(
            'update webhook_secrets set sealed = ? where user_id = ? and sealed = ?',
            [this.box.seal(opened.plaintext, row.user.id), row.user.id, row.sealed],
            'run',
            em.getTransactionContext(),
          );
      } catch (err) {
        // The secret is still good; the next read tries again.
        this.logger.warn({ err }, 'signing secret not re-sealed under the current SECRET_KEY');
      }
    }
    return opened.plaintext;
  }
}

import { EntityManager } from '@mikro-orm/postgresql';
import { Module } from '@nestjs/common';
import { createHmac, randomBytes } from 'node:crypto';
import { Client } from 'pg';
import type { KeyPrincipal } from '../../src/common/auth/principal';
import { sha256Hex } from '../../src/common/crypto/sha256';
import { AppError } from '../../src/common/errors/app-error';
import { NO_REQUEST } from '../../src/common/http/request-meta';
import { ApiKeysService } from '../../src/modules/api-keys/api-keys.service';
import { AuditModule } from '../../src/modules/audit/audit.module';
import { AuthModule } from '../../src/modules/auth/auth.module';
import { UsersService } from '../../src/modules/auth/users.service';
import { StorageDriver } from '../../src/modules/storage/storage-driver';
import { DeleteLinksService } from '../../src/modules/uploads/delete-links.service';
import { UploadPipelineService } from '../../src/modules/uploads/upload-pipeline.service';
import { UploadRepository } from '../../src/modules/uploads/upload.repository';
import { UploadsModule } from '../../src/modules/uploads/uploads.module';
import { png } from '../fixtures/sample-images';
import { FakeStorage } from './support/fake-storage';
import { createMedium, type Medium } from './support/medium';
import { multipartRequest } from './support/multipart';

@Module({ imports: [UploadsModule, AuthModule, AuditModule] })
class UploadsFeature {}

/** The token a secret derives for an upload, as the service derives it (HMAC of the upload id). */
const tokenUnder = (secret: string, uploadId: string): string =>
  createHmac('sha256', secret).update(`delete-link:${uploadId}`).digest('hex');

describe('DeleteLinksService (medium)', () => {
  const previous = randomBytes(32).toString('hex');
  let m: Medium;
  let links: DeleteLinksService;
  let n = 0;

  beforeAll(async () => {
    m = await createMedium(UploadsFeature, {
      env: { SECRET_KEY_PREVIOUS: previous },
      overrides: [{ provide: StorageDriver, useValue: new FakeStorage() }],
    });
    links = m.get(DeleteLinksService);
  });
  afterAll(() => m.close());

  async function sql(text: string, params: unknown[]): Promise<Record<string, unknown>[]> {
    const c = new Client({ connectionString: m.databaseUrl });
    await c.connect();
    try {
      return (await c.query(text, params)).rows;
    } finally {
      await c.end();
    }
  }

  /** A live upload whose stored delete-link hash is `hashOf(uploadId)`. */
  async function uploadWithHash(
    hashOf: (uploadId: string) => string,
  ): Promise<{ id: string; filename: string }> {
    const user = await m
      .get(UsersService)
      .create(`links${++n}@example.com`, 'a long password', 'user', NO_REQUEST, 'test');
    const key = await m.get(ApiKeysService).create(user.id, 'links');
    const principal = (await m.get(ApiKeysService).authenticate(key.token)) as KeyPrincipal;
    const answer = await m.get(UploadPipelineService).handle(principal, multipartRequest(await png(200 + n)));
    const [row] = await sql('select id from uploads where filename = $1', [answer.filename]);
    const id = row.id as string;
    await sql('update uploads set delete_token_hash = $1 where id = $2', [hashOf(id), id]);
    return { id, filename: answer.filename };
  }

  async function storedHash(id: string): Promise<string> {
    const [row] = await sql('select delete_token_hash from uploads where id = $1', [id]);
    return row.delete_token_hash as string;
  }

  async function tokenFor(filename: string): Promise<string> {
    const upload = await m.get(UploadRepository).findLive(m.get(EntityManager).fork(), filename);
    if (!upload) {
      throw new Error(`no live upload ${filename}`);
    }
    return links.tokenFor(upload);
  }

  it('should hand out the link derived from SECRET_KEY_PREVIOUS for an upload made before a rotation, unchanged', async () => {
    const made = await uploadWithHash((id) => sha256Hex(tokenUnder(previous, id)));
    const token = await tokenFor(made.filename);
    expect(token).toBe(tokenUnder(previous, made.id));
    expect(await storedHash(made.id)).toBe(sha256Hex(tokenUnder(previous, made.id)));
    await expect(links.deleteByToken(token, NO_REQUEST)).resolves.toEqual({
      ok: true,
      deleted: made.filename,
    });
  });

  it('should re-key a row whose hash no current secret derives, once, even when two callers race', async () => {
    const gone = randomBytes(32).toString('hex');
    const made = await uploadWithHash((id) => sha256Hex(tokenUnder(gone, id)));
    // Two dedupe answers for the same stale row at once: both re-key, to the same derivable value.
    const [a, b] = await Promise.all([tokenFor(made.filename), tokenFor(made.filename)]);
    const current = tokenUnder(m.config.secretKey, made.id);
    expect([a, b]).toEqual([current, current]);
    expect(await storedHash(made.id)).toBe(sha256Hex(current));
    // The link handed out under the secret that is gone no longer deletes; the re-keyed one does, once.
    await expect(links.deleteByToken(tokenUnder(gone, made.id), NO_REQUEST)).rejects.toMatchObject({
      code: 'not_found',
    });
    await expect(links.deleteByToken(current, NO_REQUEST)).resolves.toEqual({
      ok: true,
      deleted: made.filename,
    });
    const second = await links.deleteByToken(current, NO_REQUEST).catch((e: unknown) => e);
    expect(second).toBeInstanceOf(AppError);
    expect((second as AppError).code).toBe('not_found');
  });

  it('should answer not_found for a malformed token', async () => {
    await expect(links.deleteByToken('not-hex', NO_REQUEST)).rejects.toMatchObject({ code: 'not_found' });
  });
});

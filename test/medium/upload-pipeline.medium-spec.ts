import { AppError } from '../../src/common/errors/app-error';
import type { KeyPrincipal } from '../../src/common/auth/principal';
import { NO_REQUEST } from '../../src/common/http/request-meta';
import { ApiKeysService } from '../../src/modules/api-keys/api-keys.service';
import { UsersService } from '../../src/modules/auth/users.service';
import { AuditModule } from '../../src/modules/audit/audit.module';
import { AuthModule } from '../../src/modules/auth/auth.module';
import { StorageDriver } from '../../src/modules/storage/storage-driver';
import {
  EARLY_RECEIVE_MAX_BYTES,
  UploadPipelineService,
} from '../../src/modules/uploads/upload-pipeline.service';
import { UploadsModule } from '../../src/modules/uploads/uploads.module';
import { png } from '../fixtures/sample-images';
import { Client } from 'pg';
import { Barrier, Latch } from './support/latch';
import { FakeStorage } from './support/fake-storage';
import { createMedium, type Medium } from './support/medium';
import { multipartRequest } from './support/multipart';
import { Module } from '@nestjs/common';
import type { Readable } from 'node:stream';

/** The uploads module with the users it uploads for (auth) and the audit log they write, on real PostgreSQL. */
@Module({ imports: [UploadsModule, AuthModule, AuditModule] })
class UploadsFeature {}

describe('UploadPipelineService (medium)', () => {
  let m: Medium;
  let storage: FakeStorage;
  let pipeline: UploadPipelineService;

  beforeAll(async () => {
    storage = new FakeStorage();
    m = await createMedium(UploadsFeature, { overrides: [{ provide: StorageDriver, useValue: storage }] });
    pipeline = m.get(UploadPipelineService);
  });
  afterAll(() => m.close());
  afterEach(() => {
    storage.beforePut = () => Promise.resolve();
  });

  let n = 0;
  async function keyHolder(): Promise<KeyPrincipal> {
    const user = await m
      .get(UsersService)
      .create(`medium${++n}@example.com`, 'a long password', 'user', NO_REQUEST, 'test');
    const key = await m.get(ApiKeysService).create(user.id, 'medium');
    return m.get(ApiKeysService).authenticate(key.token) as Promise<KeyPrincipal>;
  }

  async function rows(sql: string, params: unknown[]): Promise<Record<string, unknown>[]> {
    const c = new Client({ connectionString: m.databaseUrl });
    await c.connect();
    try {
      return (await c.query(sql, params)).rows;
    } finally {
      await c.end();
    }
  }

  it('should answer the loser of a same-bytes race as a dedupe hit when its record hits the unique index', async () => {
    const principal = await keyHolder();
    const bytes = await png(101);
    // Both uploads pass the dedupe lookup (nothing recorded yet) and meet at the storage write: then both record.
    const bothStored = new Barrier(2);
    storage.beforePut = () => bothStored.arrive();
    const [a, b] = await Promise.all([
      pipeline.handle(principal, multipartRequest(bytes)),
      pipeline.handle(principal, multipartRequest(bytes)),
    ]);
    const answers = [a, b];
    expect(answers.filter((r) => 'deduplicated' in r && r.deduplicated)).toHaveLength(1);
    expect(a.filename).toBe(b.filename);
    // One row; the loser's stored file was removed, the winner's is the one kept.
    const live = await rows('select filename from uploads where owner_id = $1 and deleted_at is null', [
      principal.userId,
    ]);
    expect(live).toEqual([{ filename: a.filename }]);
    expect([...storage.files.keys()].filter((k) => k === a.filename)).toHaveLength(1);
    expect(storage.files.size).toBe(1);
  });

  it('should answer 401 and remove the stored file when the key is revoked while the upload waits to record', async () => {
    const principal = await keyHolder();
    const held = new Latch();
    storage.beforePut = () => held.wait();
    const before = storage.files.size;
    const upload = pipeline.handle(principal, multipartRequest(await png(102)));
    const outcome = upload.then(
      () => null,
      (err: unknown) => err,
    );
    await held.arrived();
    // The revoke commits while the upload sits between its checks and its record transaction.
    await m.get(ApiKeysService).revoke(principal.userId, principal.keyId);
    held.open();
    const err = await outcome;
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe('unauthorized');
    expect((err as AppError).status).toBe(401);
    expect(storage.files.size).toBe(before);
    expect(await rows('select id from uploads where api_key_id = $1', [principal.keyId])).toEqual([]);
  });

  describe('a body read while the limits are asked (EARLY_RECEIVE_MAX_BYTES)', () => {
    /** Whether the request's body has been read to its end, once the event loop has had a few turns to read it. */
    async function readToEnd(req: ReturnType<typeof multipartRequest>): Promise<boolean> {
      const body = req as unknown as Readable;
      for (let i = 0; i < 50 && !body.readableEnded; i++) {
        await new Promise((resolve) => setImmediate(resolve));
      }
      return body.readableEnded;
    }

    /** The uploads' rows of `principal`'s key. */
    const uploadsOf = (principal: KeyPrincipal) =>
      rows('select id from uploads where api_key_id = $1', [principal.keyId]);

    it('reads a small body before the limits answer, and answers with what they say', async () => {
      const principal = await keyHolder();
      const admit = new Latch();
      const req = multipartRequest(await png(103));
      const upload = pipeline.handle(principal, req, admit.wait());
      expect(await readToEnd(req)).toBe(true);
      admit.open();
      const answer = await upload;
      expect(answer.deduplicated).toBeUndefined();
      expect(storage.files.has(answer.filename)).toBe(true);
      expect(await uploadsOf(principal)).toHaveLength(1);
    });

    it('answers the limits’ refusal, not the body’s, and keeps nothing of a body it read', async () => {
      const principal = await keyHolder();
      const before = storage.files.size;
      let refuse!: (err: Error) => void;
      const admitted = new Promise<void>((_, reject) => (refuse = reject));
      // Not an image: were the body used, the answer would be 415.
      const req = multipartRequest(Buffer.from('not an image at all'));
      const upload = pipeline.handle(principal, req, admitted).catch((err: unknown) => err);
      expect(await readToEnd(req)).toBe(true);
      refuse(new AppError('rate_limit'));
      const err = await upload;
      expect(err).toBeInstanceOf(AppError);
      expect((err as AppError).code).toBe('rate_limit');
      expect(storage.files.size).toBe(before);
      expect(await uploadsOf(principal)).toEqual([]);
    });

    it('leaves a larger body, or one that asks to be continued, unread until the limits have said yes', async () => {
      const principal = await keyHolder();
      const large = multipartRequest(Buffer.alloc(EARLY_RECEIVE_MAX_BYTES, 7));
      const continued = multipartRequest(await png(104));
      (continued.headers as Record<string, string>).expect = '100-continue';
      for (const req of [large, continued]) {
        const admit = new Latch();
        const upload = pipeline.handle(principal, req, admit.wait()).catch((err: unknown) => err);
        expect(await readToEnd(req)).toBe(false);
        admit.open();
        await upload;
        expect(await readToEnd(req)).toBe(true);
      }
    });
  });
});

import { UniqueConstraintViolationException } from '@mikro-orm/core';
import { EntityManager } from '@mikro-orm/postgresql';
import { Injectable, Optional } from '@nestjs/common';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { finished } from 'node:stream';
import type { Principal } from '../../common/auth/principal';
import { sha256HexAsync } from '../../common/crypto/sha256';
import { leanQuery } from '../../database/lean-query';
import { AppError } from '../../common/errors/app-error';
import { DomainEvents } from '../../common/events/domain-events';
import { Metrics, type UploadStage } from '../../common/metrics/metrics.service';
import { clientIp } from '../../common/http/client-ip';
import { AppConfig } from '../../config/app-config';
import { ApiKeysService } from '../api-keys/api-keys.service';
import { UploadTokenUsesService } from '../api-keys/upload-token-uses.service';
import { UsersService } from '../auth/users.service';
import { ModerationService } from '../moderation/moderation.service';
import type { ModerationVerdict } from '../moderation/moderation.types';
import { OutboxService } from '../webhooks/outbox.service';
import type { UploadResponse } from './dto/upload.dto';
import { newFilename } from './filenames';
import { type ImageStage, ImagePool } from './image-pool.service';
import { releaseFrames } from '../media/frame-memory';
import { EARLY_DECODE_MAX_BYTES, processImage } from '../media/image-processor';
import type { ImageType, ProcessedImage } from '../media/image.types';
import { sniffImageType } from '../media/image-type';
import {
  type BodyMemory,
  moveBodyToDisk,
  type ReceivedFile,
  receiveUpload,
  SINK_BUFFER_BYTES,
} from './multipart/multipart-reader';
import { StorageDriver } from '../storage/storage-driver';
import { DeleteLinksService } from './delete-links.service';
import { Upload } from './upload.entity';
import { UploadMapper } from './upload.mapper';
import { UploadRepository } from './upload.repository';
import { type UploadSlot, UploadSlots } from './upload-slots.service';
import { UploadsService } from './uploads.service';
import { resolveExpiry } from './expiry';
import {
  assertTypeAllowed,
  maxFileBytes,
  refuseByContentLength,
  tooLargeFor,
  withTokenTags,
} from './token-limits';

/**
 * POST /api/v1/upload, in API.md's order of outcomes: stream (413) → dedupe (bytes the owner already has live passed
 * every later check) → sniff (415 unsupported_type) → decode and strip (415 processing_failed) → moderation
 * (415 nsfw_rejected) → store the file → one transaction
 * that re-checks the credential and records the row. The file is written before the row and removed if the row
 * is not, so no row ever points at a missing file and a rejected upload leaves nothing. Before the body is used, the
 * key takes one of its UPLOADS_IN_FLIGHT_PER_KEY slots (429 rate_limit when all are taken); a body small enough to
 * be held without a loan is read meanwhile (EARLY_RECEIVE_MAX_BYTES), a larger one only once the slot is taken.
 * Decoding and moderation run in the ImagePool's lanes.
 */
@Injectable()
export class UploadPipelineService {
  constructor(
    private readonly em: EntityManager,
    private readonly config: AppConfig,
    private readonly repository: UploadRepository,
    private readonly mapper: UploadMapper,
    private readonly deleteLinks: DeleteLinksService,
    private readonly storage: StorageDriver,
    private readonly moderation: ModerationService,
    private readonly events: DomainEvents,
    private readonly webhooks: OutboxService,
    private readonly slots: UploadSlots,
    private readonly pool: ImagePool,
    private readonly tokenUses: UploadTokenUsesService,
    private readonly uploads: UploadsService,
    @Optional() private readonly metrics?: Metrics,
  ) {}

  /**
   * `admitted`: the rate limits' answer, when the caller asks for it beside this call (the upload fast path); its
   * refusal is the answer, before the slot's. Whatever refuses the upload before its body is used (the limits, the
   * slot, a ut_ token's uses) answers as if the body had not been read: an early one is left to the collector (it is
   * in memory, never on disk, and its failure is already handled).
   */
  async handle(
    principal: Principal,
    req: UploadRequest,
    admitted?: Promise<unknown>,
  ): Promise<UploadResponse> {
    const lap = stageClock(this.metrics);
    const early = this.receiveEarly(principal, req);
    const slot = await this.slotBeside(principal, admitted);
    try {
      // A ut_ token's max_uploads: a use is taken now and given back if the upload fails.
      const giveBack = await this.tokenUses.reserve(principal);
      lap('admission');
      try {
        return await this.handleInSlot(principal, req, early, lap);
      } catch (err) {
        await giveBack();
        throw err;
      }
    } finally {
      // Not awaited: the answer does not wait for Redis's reply to the release (which never fails an upload). Its
      // command is written to Redis before the answer is, so the client's next upload, sent once the answer arrived,
      // finds the slot free: on this instance in order on the same connection, on another one a round trip later.
      void slot.release();
    }
  }

  /**
   * The upload's slot, asked at once, beside the rate limits (`admitted`) rather than once they have answered: both
   * go out together on the one Redis connection, so the upload waits one round trip for them instead of two. The
   * limits' refusal is still the answer, before the slot's; a slot taken for an upload they refuse is given back
   * before that refusal is answered (its reply comes with theirs), so the client never finds it held.
   */
  private async slotBeside(
    principal: Principal,
    admitted: Promise<unknown> | undefined,
  ): Promise<UploadSlot> {
    const slot = this.slots.acquire(principal);
    // Read below whatever the limits say; until then its failure must not count as unhandled.
    slot.catch(() => undefined);
    try {
      await admitted;
    } catch (err) {
      const taken = await slot.catch(() => null);
      void taken?.release();
      throw err;
    }
    return slot;
  }

  /**
   * The body of a request that declares at most EARLY_RECEIVE_MAX_BYTES, read from now on (null otherwise): the
   * multipart reader holds that much in memory without a loan of the ImagePool's budget, and never spills it to
   * disk (Node delivers no more of a body than its Content-Length). A request that asks `Expect: 100-continue` waits
   * for the checks before its body, as it asked.
   */
  private receiveEarly(principal: Principal, req: UploadRequest): Promise<ReceivedFile> | null {
    const declared = declaredLength(req);
    if (declared === undefined || declared > EARLY_RECEIVE_MAX_BYTES || req.headers.expect !== undefined) {
      return null;
    }
    const received = this.receive(principal, req);
    // Awaited in handleInSlot, or never when the upload is refused first: a failure must not count as unhandled.
    received.catch(() => undefined);
    return received;
  }

  /** The body, streamed through the multipart reader; its refusals are the contract's (413 with the token's limit). */
  private receive(principal: Principal, req: UploadRequest, memory?: BodyMemory): Promise<ReceivedFile> {
    const serverMax = this.config.maxUploadBytes;
    return receiveUpload(req, {
      maxFileBytes: maxFileBytes(principal, serverMax),
      tempDir: join(this.config.dataDir, 'tmp'),
      idleTimeoutMs: this.config.uploadIdleTimeoutMs,
      memory,
    }).catch((err: unknown) => {
      throw err instanceof AppError && err.code === 'too_large' ? tooLargeFor(principal, serverMax) : err;
    });
  }

  private async handleInSlot(
    principal: Principal,
    req: UploadRequest,
    early: Promise<ReceivedFile> | null,
    lap: StageClock,
  ): Promise<UploadResponse> {
    const tempDir = join(this.config.dataDir, 'tmp');
    let received: ReceivedFile;
    if (early) {
      received = await early;
    } else {
      refuseByContentLength(req, principal, this.config.maxUploadBytes);
      const memory = this.pool.bodyMemory(declaredLength(req));
      received = await this.receive(principal, req, memory)
        // The loan ends with the receiving; a body in memory is counted by holdBytes below, or goes to disk.
        .finally(() => memory?.giveBack());
    }
    lap('receive');
    try {
      const tags = withTokenTags(principal, received.tags);
      const expiresAt = resolveExpiry(principal, received.expiry, Date.now());
      // A body held in memory (up to 1 MB, or up to BODY_MEMORY_MAX_BYTES with memory lent) is sniffed and its header
      // read while the dedupe lookup runs, and one of at most EARLY_DECODE_MAX_BYTES is decoded and reviewed too
      // (processImage's early decode, reviewBeside): a larger one's decode waits for the lookup (processImage's
      // notBefore), so a hit never decodes it. That takes the lookup's round trip (0.5–0.8 ms in the service) off the
      // upload's path; a hit pays a header read for nothing. A body on disk waits for the lookup before anything, as
      // the order of outcomes reads.
      const beside = received.body.data !== undefined && !this.pool.wouldWaitForBytes(received.size);
      const dedupe = this.dedupe(principal, received.sha256, expiresAt);
      if (beside) {
        // Awaited in processAndStore; until then a failure must not count as unhandled.
        dedupe.catch(() => undefined);
      } else {
        const { answer } = await dedupe;
        if (answer) {
          return answer;
        }
      }
      // From here the bytes are in memory (the original, the stripped copy, decoded frames): the ImagePool's byte
      // budget bounds how many uploads are at this stage at once; the others wait on disk. A body the reader held in
      // memory goes to disk too when it would wait: a queue must not hold memory the budget does not count.
      if (this.pool.wouldWaitForBytes(received.size)) {
        received = await moveBodyToDisk(received, tempDir);
      }
      return await this.pool.holdBytes(received.size, async () => {
        lap('queue');
        // A heavy image holds a slot of the heavy stage from its decode until its frames are dropped (ImageStage);
        // when they were decoded here, until the collection that frees them, which runs once the upload is answered.
        const stage = this.pool.stage((settle) => afterAnswer(req, settle));
        try {
          return await this.processAndStore(principal, req, received, stage, dedupe, {
            tags,
            expiresAt,
            lap,
          });
        } finally {
          stage.done();
        }
      });
    } finally {
      if (received.body.path !== undefined) {
        await rm(received.body.path, { force: true });
      }
    }
  }

  /**
   * The dedupe step: the same bytes of the same owner already passed sniffing, decoding and review, so the answer is
   * the upload they made (`answer`). `due`: the owner's same bytes are past their expiry but not yet swept.
   */
  private async dedupe(
    principal: Principal,
    sha256: string,
    expiresAt: Date | null,
  ): Promise<{ answer: UploadResponse | null; due: boolean }> {
    const state = await this.repository.shaState(principal.userId, sha256);
    const existing = state === 'live' ? await this.repository.findLiveBySha(principal.userId, sha256) : null;
    if (existing) {
      assertTypeAllowed(principal, existing.mime);
      await this.assertStillAuthorised(principal);
      const answer = await this.dedupeResponse(existing, expiresAt);
      // Null: it expired in between, and these bytes make a new upload, as after any expiry.
      return { answer, due: answer === null };
    }
    return { answer: null, due: state === 'due' };
  }

  /**
   * Sniffs, decodes and strips the bytes, then (once `dedupe` found no upload of them to answer with) reviews, stores
   * and records them. `dedupe` may still be running: its outcome comes first, whatever the decode found, so an upload
   * answers as it would had the lookup finished before the decode began.
   */
  private async processAndStore(
    principal: Principal,
    req: UploadRequest,
    received: ReceivedFile,
    stage: ImageStage,
    dedupe: Promise<{ answer: UploadResponse | null; due: boolean }>,
    { tags, expiresAt, lap }: { tags: string[]; expiresAt: Date | null; lap: StageClock },
  ): Promise<UploadResponse> {
    // Whether the lookup has already said the answer is not this upload's (a hit, or a failure): then a review not
    // yet begun is not begun (reviewBeside). Set as soon as the lookup settles.
    let answeredElsewise = false;
    dedupe.then(
      ({ answer }) => (answeredElsewise = answer !== null),
      () => (answeredElsewise = true),
    );
    let original: Buffer | null = received.body.data ?? (await readFile(received.body.path));
    // A dedupe hit stops processImage before a decode of its own (only the early one of a small still may have run).
    const notBefore = dedupe.then(({ answer }) => answer && Promise.reject(new Error('a dedupe hit')));
    // processImage may not await it (a still decoded early): its rejection is read from `dedupe`, below.
    notBefore.catch(() => undefined);
    // The write (and the stored bytes' hash) starts once the bytes to store are known: for a small file before its
    // decode (processImage's onStored), else once it is done. It overlaps the rest; an upload that fails or is
    // rejected, or a dedupe hit, removes the file again.
    let filename = '';
    // Set by store(), which processImage may call: `as` keeps TypeScript from narrowing it to null for good.
    let storing = null as { data: Buffer; done: Promise<[void, string]> } | null;
    const store = (data: Buffer): { data: Buffer; done: Promise<[void, string]> } => {
      // Stripping usually removes nothing: then the stored bytes' hash is the one computed while receiving.
      const unchanged = original !== null && (data === original || data.equals(original));
      const done = Promise.all([
        this.storage.put(filename, data, { expiresAt }),
        unchanged ? received.sha256 : sha256HexAsync(data),
      ]);
      done.catch(() => undefined);
      storing = { data, done };
      return storing;
    };
    const discard = async (): Promise<void> => {
      if (storing) {
        await storing.done.catch(() => undefined);
        await this.storage.delete(filename).catch(() => undefined);
      }
    };
    let image: ProcessedImage;
    let type: ImageType;
    try {
      const sniffed = await sniffImageType(original);
      if (!sniffed) {
        throw new AppError('unsupported_type');
      }
      type = sniffed;
      assertTypeAllowed(principal, type.mime);
      filename = newFilename(type.ext);
      // One decode: the check that the image is sound also yields the frames the review classifies.
      image = await processImage(original, type, {
        ...this.config.images,
        gate: stage.gate,
        offload: this.pool.offload,
        stillOffload: this.pool.stillOffload,
        reviewFrames: this.moderation.reviewFrames,
        notBefore,
        onStored: store,
      });
    } catch (err) {
      await discard();
      const { answer } = await dedupe;
      if (answer) {
        return answer;
      }
      throw err;
    }
    // A small body's review does not wait for the dedupe lookup (reviewBeside): its verdict stands only if the lookup
    // then finds nothing. A larger one's lookup answered before its decode began (processImage's notBefore).
    const beside = reviewBeside(received.size);
    let looked = beside ? null : await dedupe;
    if (looked?.answer) {
      await discard();
      return looked.answer;
    }
    lap('decode');
    const { review, ...stored } = image;
    let written = storing;
    if (written === null || written.data !== stored.data) {
      // Bytes known only now (re-encoded, or decoded elsewhere): written over whatever an early write left.
      await written?.done.catch(() => undefined);
      written = store(stored.data);
    }
    original = null;

    // The moderation step: the classifier sees what a viewer would see (orientation applied, alpha flattened).
    const pixels = image.width * image.height * image.pages;
    const reviewing = this.pool
      .run(pixels, () =>
        // A review the lookup has made pointless before its lane let it begin is not begun: what runs on past a hit's
        // answer is at most what the lanes were already running, never a queue of them.
        answeredElsewise
          ? Promise.reject(new Error('not reviewed: the dedupe lookup answered'))
          : this.moderation.review(review),
      )
      .catch((err: unknown) => {
        // Anything but a contract error while classifying the decoded frames stays the image's fault, as before.
        throw err instanceof AppError ? err : new AppError('processing_failed', undefined, { cause: err });
      })
      .finally(() => {
        // The full-resolution frames are not needed past the review: their memory is freed now (releaseFrames), not
        // whenever V8 next collects, so the next decode here writes into memory already in use; GarbageRelease no
        // longer counts it among the dead buffers a collection must free. A heavy image decoded here gives the heavy
        // stage's slot to the next image once the collection after the answer has run: it frees the rest of the
        // upload's dead buffers (its bytes, the stripped copy). One decoded in the heavy-image process gives it back
        // now (ImageStage).
        this.pool.framesFreed(releaseFrames(review));
        review.length = 0;
        stage.done();
      });
    let verdict: ModerationVerdict;
    try {
      if (looked === null) {
        // Read below; a dedupe hit answers without it, and its failure then must not count as unhandled.
        reviewing.catch(() => undefined);
        looked = await dedupe;
        if (looked.answer) {
          // The same bytes' upload answers, whatever this review finds: begun, it runs on in its lane and frees its
          // frames when done, but no one waits for it; not yet begun, it never is.
          await discard();
          return looked.answer;
        }
      }
      verdict = await reviewing;
    } catch (err) {
      await discard();
      throw err;
    }
    const { due } = looked;
    lap('review');
    if (verdict.rejected) {
      await discard();
      this.events.emit('upload.rejected', {
        userId: principal.userId,
        keyId: principal.kind === 'session' ? null : principal.keyId,
        keyPrefix: principal.kind === 'session' ? null : principal.keyPrefix,
        sha256: received.sha256,
        scores: verdict.scores ? { ...verdict.scores } : null,
        ip: clientIp(req),
        userAgent: req.headers['user-agent'] ?? null,
        requestId: typeof req.id === 'string' || typeof req.id === 'number' ? String(req.id) : '',
      });
      throw new AppError('nsfw_rejected');
    }

    let storedSha256: string;
    try {
      [, storedSha256] = await written.done;
      lap('store');
    } catch (err) {
      await discard();
      throw err;
    }
    try {
      // The owner's same bytes past their expiry but not yet swept would hold the dedupe index: expire them now.
      if (due) {
        await this.uploads.expireDue(1, { ownerId: principal.userId, sha256: received.sha256 });
      }
      const { upload, deleteToken } = await this.record(principal, {
        filename,
        mime: type.mime,
        size: stored.data.length,
        width: stored.width,
        height: stored.height,
        pages: stored.pages,
        sha256: received.sha256,
        storedSha256,
        tags,
        expiresAt,
        scores: verdict.scores ? { ...verdict.scores } : null,
      });
      lap('record');
      return this.mapper.toUploadResponse(upload, false, deleteToken);
    } catch (err) {
      await this.storage.delete(filename).catch(() => undefined);
      if (isUniqueViolation(err)) {
        // The same bytes won a race from a parallel request: answer as the dedupe hit it now is.
        const winner = await this.repository.findLiveBySha(principal.userId, received.sha256);
        const answer = winner && (await this.dedupeResponse(winner, expiresAt));
        if (answer) {
          return answer;
        }
      }
      throw err;
    }
  }

  /**
   * The answer to a dedupe hit, with a delete link that works (re-keyed if the secret that made it is gone). The upload
   * then lives at least as long as this request asked: no expiry (a Part 1 client, or a key without a default) makes
   * it permanent, a later one moves it later, an earlier one changes nothing; otherwise a client that never sent an
   * expiry would get a link that dies. Null when the upload expired in between.
   */
  private async dedupeResponse(upload: Upload, expiresAt: Date | null): Promise<UploadResponse | null> {
    const current = upload.expiresAt ?? null;
    if (current !== null && (expiresAt === null || expiresAt > current)) {
      const kept = await this.repository.extendExpiry(upload.id, expiresAt);
      if (kept === undefined) {
        return null;
      }
      // A direct-link cache entry ends at the expiry it read and then reads the row again: nothing to invalidate.
      upload.expiresAt = kept;
    }
    return this.mapper.toUploadResponse(upload, true, await this.deleteLinks.tokenFor(upload));
  }

  /**
   * Records the upload and its webhook events, all or nothing: the quota check, the key/user re-check FOR SHARE (a
   * revoke or a ban either committed before → 401 / 403, nothing written, or waits for this commit), then the row and
   * its outbox rows. Without a quota in force that is one statement (one round trip); with one, a transaction that
   * takes the owner's advisory lock first. Returns the row and its delete link's token: the link is derived once, its
   * hash stored and its token answered (deriving it again for the answer was 2.6 % of a 16×16 upload's event loop).
   */
  private async record(principal: Principal, data: NewUpload): Promise<Recorded> {
    const { bytes, files } = this.config.storageQuota;
    if (bytes === null && files === null) {
      const recorded = await this.recordInOneStatement(principal, data);
      if (recorded) {
        return recorded;
      }
    }
    return this.recordInTransaction(principal, data);
  }

  /**
   * The record as one statement, for an owner without a quota: the user (and key) rows read FOR SHARE, the upload
   * inserted only if the key is live, the owner not banned and no quota of theirs in force, and the outbox rows
   * inserted from the inserted row. Null when the owner has a quota (the caller takes the transaction path).
   */
  private async recordInOneStatement(principal: Principal, data: NewUpload): Promise<Recorded | null> {
    const keyId = principal.kind === 'session' ? null : principal.keyId;
    // Not a managed entity (its owner reference is left unset): what the answer and the event are made from.
    const upload: Upload = Object.assign(new Upload(), data, { apiKeyId: keyId });
    const link = this.deleteLinks.derive(upload.id);
    upload.deleteTokenHash = link.hash;
    const body = OutboxService.uploadCreatedBody({
      ownerId: principal.userId,
      upload: this.mapper.toWebhookUpload(upload),
      createdAt: upload.createdAt,
    });
    const [result] = await leanQuery<{
      user_found: boolean;
      banned: boolean;
      quota: boolean;
      key_live: boolean;
      inserted: number;
      events: number;
    }>(
      this.em,
      // `?` placeholders numbered in order ($1…): pg binds the values, and leanQuery prepares the statement once per
      // connection (the ORM's execute would format each upload's values into a new text, parsed and planned anew).
      numbered(`with u as (${UsersService.SHARED_ROW_SQL}),
              k as (${ApiKeysService.SHARED_ROW_SQL}),
              allowed as (
                select 1 from u
                 where u.banned_at is null and u.quota_bytes is null and u.quota_files is null
                   and (?::uuid is null or exists (select 1 from k where k.revoked_at is null))),
              ins as (
                insert into uploads (id, owner_id, api_key_id, filename, mime, size, width, height, pages, sha256,
                                     stored_sha256, tags, delete_token_hash, scores, created_at, expires_at)
                select ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,
                       array(select t from jsonb_array_elements_text(?::jsonb) with ordinality as x(t, i) order by i),
                       ?, ?::jsonb, ?, ?
                  from allowed
                returning id),
              outbox as (${OutboxService.uploadCreatedInsert('ins')})
         select exists (select 1 from u) as user_found,
                coalesce((select banned_at is not null from u), false) as banned,
                coalesce((select quota_bytes is not null or quota_files is not null from u), false) as quota,
                (?::uuid is null or exists (select 1 from k where k.revoked_at is null)) as key_live,
                (select count(*) from ins)::int as inserted,
                (select count(*) from outbox)::int as events`),
      [
        principal.userId,
        keyId,
        keyId,
        upload.id,
        principal.userId,
        keyId,
        upload.filename,
        upload.mime,
        upload.size,
        upload.width,
        upload.height,
        upload.pages ?? null,
        upload.sha256,
        upload.storedSha256,
        // As JSON: the driver would spread a JS array into a list of parameters.
        JSON.stringify(upload.tags),
        upload.deleteTokenHash,
        upload.scores ? JSON.stringify(upload.scores) : null,
        upload.createdAt,
        upload.expiresAt ?? null,
        body,
        principal.userId,
        keyId,
      ],
    );
    if (result.inserted === 1) {
      if (result.events > 0) {
        this.webhooks.kickRelay();
      }
      return { upload, deleteToken: link.token };
    }
    // Nothing was written: say why, in the order the transaction path checks (quota, key, owner). An owner with a
    // quota goes that path, which answers 413 before 401 when both apply.
    if (result.quota) {
      return null;
    }
    if (!result.key_live) {
      throw new AppError('unauthorized', 'The API key was revoked.');
    }
    if (result.banned) {
      throw new AppError('banned');
    }
    throw new AppError('unauthorized', result.user_found ? undefined : 'The account no longer exists.');
  }

  private async recordInTransaction(principal: Principal, data: NewUpload): Promise<Recorded> {
    return this.em.fork().transactional(async (em) => {
      await this.uploads.assertQuotaRoom(principal.userId, data.size, em);
      await this.assertStillAuthorised(principal, em);
      const upload = em.create(Upload, {
        ...data,
        owner: principal.userId,
        apiKeyId: principal.kind === 'session' ? null : principal.keyId,
        deleteTokenHash: '',
      });
      const link = this.deleteLinks.derive(upload.id);
      upload.deleteTokenHash = link.hash;
      await em.flush();
      // The webhook outbox rows commit (or roll back) with the upload row: no upload without its events.
      await this.webhooks.recordUploadCreated(em, {
        ownerId: principal.userId,
        upload: this.mapper.toWebhookUpload(upload),
        createdAt: upload.createdAt,
      });
      return { upload, deleteToken: link.token };
    });
  }

  /**
   * The key (or session user) may have been revoked or banned while the body streamed. Inside the transaction the
   * key row is read FOR SHARE, so a revoke either committed before (→ 401, nothing kept) or waits for our commit.
   */
  private async assertStillAuthorised(
    principal: Principal,
    em: EntityManager = this.em.fork(),
  ): Promise<void> {
    // The owners' named locks (FOR SHARE, in a transaction). Outside the record transaction (the dedupe answer) a
    // transaction of its own makes it a plain up-to-date check.
    const check = (tx: EntityManager): Promise<void> =>
      principal.kind === 'session'
        ? UsersService.lockForWrite(principal.userId, tx)
        : ApiKeysService.lockForWrite(principal, tx);
    await (em.isInTransaction() ? check(em) : em.transactional(check));
  }
}

/**
 * The upload's request, as Express routes it or as the upload fast path takes it: `ip` the client's address (Express's
 * req.ip), `id` the request id, `res` its response.
 */
export type UploadRequest = IncomingMessage & { ip?: string; id?: unknown; res?: ServerResponse };

/** A recorded upload and its delete link's token. */
interface Recorded {
  upload: Upload;
  deleteToken: string;
}

/**
 * Whether an upload of `bytes` is reviewed beside its dedupe lookup rather than once the lookup has found nothing: a
 * body of at most EARLY_DECODE_MAX_BYTES, decoded beside the lookup already (processImage's early decode), so that its
 * review need not wait for the rest of the lookup's round trip. Side by side with the build before, a 16×16 PNG from
 * fetch took 0.963 of the time (median of five runs of 20), and 0.956 with the two builds' start order swapped
 * (docs/performance.md). A dedupe hit of such a body pays for a review only when the review began before the lookup
 * answered (the answer does not wait for it; a review still waiting for its lane then is never begun, so what runs on
 * past the answers is bounded by the lanes); a larger body's decode, and so its review, still waits for the lookup,
 * so its hit pays for neither.
 */
function reviewBeside(bytes: number): boolean {
  return bytes <= EARLY_DECODE_MAX_BYTES;
}

/** What the pipeline knows of a new upload before it is recorded. */
type NewUpload = Omit<Upload, 'id' | 'owner' | 'apiKeyId' | 'deleteTokenHash' | 'createdAt' | 'deletedAt'>;

/** A unique violation, as the ORM converts it or as the driver raises it from a raw statement (SQLSTATE 23505). */
function isUniqueViolation(err: unknown): boolean {
  return (
    err instanceof UniqueConstraintViolationException ||
    (typeof err === 'object' && err !== null && (err as { code?: unknown }).code === '23505')
  );
}

/**
 * A body that declares at most this many bytes is read while the limits and the upload slot are asked (handle): the
 * multipart reader's in-memory buffer (SINK_BUFFER_BYTES), so such a body needs no loan and never goes to disk. Traced
 * in the service, a 270 KB 1080p JPEG sent with fetch took 0.8–0.9 ms to arrive after its slot, and the limits and the
 * slot 0.6–0.8 ms before that: read beside them, the body was in 0.4–0.6 ms sooner. A request refused by them has had
 * at most this much of its body read for nothing (bytes on their way anyway; the answer waits for none of them).
 */
export const EARLY_RECEIVE_MAX_BYTES = SINK_BUFFER_BYTES;

/** The body's declared length (Content-Length), when it has one. */
function declaredLength(req: IncomingMessage): number | undefined {
  const header = req.headers['content-length'];
  return header !== undefined && /^\d+$/.test(header) ? Number(header) : undefined;
}

/** Observes the time since the last lap (or since the clock was made) as an upload's `stage`. */
type StageClock = (stage: UploadStage) => void;

/** A StageClock for one upload, into fixitfy_upload_stage_seconds; one that observes nothing without metrics. */
function stageClock(metrics: Metrics | undefined): StageClock {
  if (!metrics) {
    return () => undefined;
  }
  let last = performance.now();
  return (stage) => {
    const now = performance.now();
    metrics.uploadStages.observe({ stage }, (now - last) / 1000);
    last = now;
  };
}

/** SQL written with `?` placeholders (as the ORM's execute takes them), with `$1`, `$2`, … in their place, in order. */
function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

/**
 * Runs `settle` once the request's answer has been written out, or its connection has closed (a client that went
 * away), whichever comes first; at once when there is no response to wait for.
 */
function afterAnswer(req: UploadRequest, settle: () => void): void {
  const res = req.res;
  if (!res || res.writableFinished || res.destroyed) {
    setImmediate(settle);
    return;
  }
  finished(res, () => settle());
}

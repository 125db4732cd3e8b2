import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Logger } from '@nestjs/common';
import { Client } from 'pg';
import sharp from 'sharp';
import { createColourModelApp } from '../fixtures/moderation/make-colour-model';
import { solid } from '../fixtures/sample-images';
import { bearer, makeKey } from '../setup/factories';
import { sql, storedFiles } from '../setup/db';
import { waitFor } from '../setup/wait';
import { createTestApp, type TestApp } from '../setup/test-app';
import type { ReviewFrame } from '../../src/modules/media/decode';
import { ModerationService } from '../../src/modules/moderation/moderation.service';
import { ImagePool } from '../../src/modules/uploads/image-pool.service';
import { UploadPipelineService } from '../../src/modules/uploads/upload-pipeline.service';
import { AppConfig } from '../../src/config/app-config';
import { EARLY_DECODE_MAX_BYTES } from '../../src/modules/media/image-processor';

const RED = { r: 230, g: 20, b: 20 };
const BLUE = { r: 20, g: 40, b: 230 };

/** Animated GIF whose frames have the given colours. */
async function gif(colours: { r: number; g: number; b: number }[]): Promise<Buffer> {
  const frames = await Promise.all(
    colours.map((c) =>
      sharp({ create: { width: 32, height: 32, channels: 3, background: c } })
        .raw()
        .toBuffer(),
    ),
  );
  return sharp(Buffer.concat(frames), {
    raw: { width: 32, height: 32 * colours.length, channels: 3, pageHeight: 32 },
  } as never)
    .gif()
    .toBuffer();
}

describe('NSFW moderation through the upload API (e2e, tiny colour model: red → Porn)', () => {
  let t: TestApp;
  let token: string;
  let userId: string;

  beforeAll(async () => {
    t = await createColourModelApp();
    const key = await makeKey(t);
    token = key.token;
    userId = key.user.id;
  });
  afterAll(async () => {
    await t.close();
  });

  const upload = (bytes: Buffer, name = 'a.png') =>
    t.http
      .post('/api/v1/upload')
      .set(...bearer(token))
      .attach('file', bytes, name);

  it('should reject a red image with 415 nsfw_rejected, keep nothing, and record upload.rejected', async () => {
    const before = storedFiles(t).length;
    const bytes = await solid(RED);
    const res = await upload(bytes);
    expect(res.status).toBe(415);
    expect(res.body).toEqual({
      ok: false,
      code: 'nsfw_rejected',
      error: 'Explicit content detected. This image cannot be hosted.',
    });
    expect(storedFiles(t).length).toBe(before);
    expect(await sql(t, 'select id from uploads where owner_id = $1', [userId])).toHaveLength(0);
    // The audit entry is written by a listener of the upload.rejected event, just after the answer.
    const audit = await waitFor('the upload.rejected audit entry', async () => {
      const found = await sql(
        t,
        "select key_prefix, metadata from audit_entries where action = 'upload.rejected'",
      );
      return found.length > 0 ? found : null;
    });
    expect(audit).toHaveLength(1);
    expect(audit[0].key_prefix).toBe(token.slice(0, 8));
    expect(audit[0].metadata.scores.porn).toBeGreaterThan(0.9);
    expect(audit[0].metadata.sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('should accept a blue image and store its five scores', async () => {
    const res = await upload(await solid(BLUE)).expect(200);
    const c = new Client({ connectionString: t.databaseUrl });
    await c.connect();
    const [row] = (await c.query('select scores from uploads where filename = $1', [res.body.filename])).rows;
    await c.end();
    expect(Object.keys(row.scores).sort()).toEqual(['drawing', 'hentai', 'neutral', 'porn', 'sexy']);
    expect(row.scores.neutral).toBeGreaterThan(0.9);
  });

  it('should reject an animated GIF whose last frame is red', async () => {
    const res = await upload(await gif([BLUE, BLUE, BLUE, RED]), 'a.gif');
    expect(res.status).toBe(415);
    expect(res.body.code).toBe('nsfw_rejected');
    await upload(await gif([BLUE, BLUE, BLUE]), 'b.gif').expect(200);
  });

  it('should free the frames it reviewed once the review is done, accepted or rejected', async () => {
    const moderation = t.app.get(ModerationService);
    const review = moderation.review.bind(moderation);
    const seen: { frames: readonly ReviewFrame[]; bytes: number[] }[] = [];
    moderation.review = async (frames: readonly ReviewFrame[]) => {
      // A copy of the list: the pipeline empties its own once the review is done.
      seen.push({ frames: [...frames], bytes: frames.map((f) => ('data' in f ? f.data.length : -1)) });
      return review(frames);
    };
    try {
      const still = await sharp({ create: { width: 640, height: 480, channels: 3, background: BLUE } })
        .jpeg()
        .toBuffer();
      const release = t.app.get(ImagePool).release;
      const counted = release.pendingBytes;
      expect((await upload(still, 'still.jpg')).status).toBe(200);
      // GarbageRelease counted its file bytes and at most four bytes a pixel decoded, less the frame freed: it no
      // longer holds the 921,600 bytes of the frame as memory a collection must free.
      expect(release.pendingBytes - counted).toBeLessThan(640 * 480 * 3);
      const animation = await upload(await gif([BLUE, RED, BLUE]), 'c.gif');
      expect(animation.status).toBe(415);
      expect(animation.body.code).toBe('nsfw_rejected');

      // The review had every pixel (the red frame was found), and by the answer their memory was given back: the
      // frames read empty. The GIF's three frames (RGBA) are views of one decode, freed once.
      expect(seen.map((s) => s.bytes)).toEqual([[640 * 480 * 3], [32 * 32 * 4, 32 * 32 * 4, 32 * 32 * 4]]);
      expect(seen.map((s) => s.frames.map((f) => ('data' in f ? f.data.length : -1)))).toEqual([
        [0],
        [0, 0, 0],
      ]);
    } finally {
      moderation.review = review;
    }
  });

  describe('a dedupe hit', () => {
    /** Wraps the review for one test: `verdict` overrides what the model says for a call (undefined: the model's). */
    function watchReviews(verdict: (call: number) => { rejected: boolean } | undefined = () => undefined) {
      const moderation = t.app.get(ModerationService);
      const review = moderation.review.bind(moderation);
      const calls: ReviewFrame[][] = [];
      moderation.review = async (frames: readonly ReviewFrame[]) => {
        calls.push([...frames]);
        const said = verdict(calls.length);
        return said ? { ...said, scores: null, frames: frames.length } : review(frames);
      };
      return { calls, restore: () => (moderation.review = review) };
    }

    const rejectedAudits = (bytes: Buffer) =>
      sql(t, "select id from audit_entries where action = 'upload.rejected' and metadata->>'sha256' = $1", [
        createHash('sha256').update(bytes).digest('hex'),
      ]);

    it('should answer a small body’s hit as its live upload, whatever the review beside the lookup finds', async () => {
      // The owner's red image, accepted when it was uploaded (as under another threshold): the review of a body of at
      // most EARLY_DECODE_MAX_BYTES runs beside the dedupe lookup, and its verdict stands only if the lookup finds
      // nothing. Here it finds the live upload, so the answer is that upload, not 415.
      const bytes = await solid(RED, 24, 24);
      expect(bytes.length).toBeLessThanOrEqual(EARLY_DECODE_MAX_BYTES);
      const reviews = watchReviews((call) => (call === 1 ? { rejected: false } : undefined));
      const lock = new Client({ connectionString: t.databaseUrl });
      await lock.connect();
      try {
        const first = await upload(bytes, 'red.png').expect(200);
        const files = storedFiles(t).length;
        // The lookup waits on the table's lock while the image is decoded and reviewed beside it.
        await lock.query('begin');
        await lock.query('lock table uploads in access exclusive mode');
        const again = upload(bytes, 'red.png').then((res) => res);
        await waitFor('the review beside the held lookup', () => (reviews.calls.length === 2 ? true : null));
        await lock.query('commit');
        const res = await again;
        expect(res.status).toBe(200);
        expect(res.body).toMatchObject({ ok: true, filename: first.body.filename, deduplicated: true });
        expect(storedFiles(t).length).toBe(files);
        expect(
          await sql(t, 'select id from uploads where owner_id = $1 and sha256 = $2', [
            userId,
            createHash('sha256').update(bytes).digest('hex'),
          ]),
        ).toHaveLength(1);
        // The answer does not wait for that review; its frames are freed all the same once it is done, and only then
        // is the absence of a rejection telling.
        await waitFor('the hit’s review frames freed', () =>
          reviews.calls[1].every((f) => 'data' in f && f.data.length === 0) ? true : null,
        );
        expect(await rejectedAudits(bytes)).toHaveLength(0);
      } finally {
        await lock.query('rollback').catch(() => undefined);
        await lock.end();
        reviews.restore();
      }
    });

    it('should answer 401 and keep no file when the key is revoked while a small duplicate’s lookup waits', async () => {
      const key = await makeKey(t);
      const bytes = await solid(BLUE, 26, 26);
      await t.http
        .post('/api/v1/upload')
        .set(...bearer(key.token))
        .attach('file', bytes, 'blue.png')
        .expect(200);
      const files = storedFiles(t).length;
      const reviews = watchReviews();
      const lock = new Client({ connectionString: t.databaseUrl });
      await lock.connect();
      try {
        // The duplicate's file is written before its decode, and its review begins while the lookup waits on the lock;
        // the key is revoked in the same transaction, so the lookup's hit then finds it gone.
        await lock.query('begin');
        await lock.query('lock table uploads in access exclusive mode');
        const again = t.http
          .post('/api/v1/upload')
          .set(...bearer(key.token))
          .attach('file', bytes, 'blue.png')
          .then((res) => res);
        await waitFor('the review beside the held lookup', () => (reviews.calls.length === 1 ? true : null));
        await lock.query('update api_keys set revoked_at = now() where id = $1', [key.keyId]);
        await lock.query('commit');
        const res = await again;
        expect(res.status).toBe(401);
        expect(res.body).toMatchObject({ ok: false, code: 'unauthorized' });
        expect(storedFiles(t).length).toBe(files);
      } finally {
        await lock.query('rollback').catch(() => undefined);
        await lock.end();
        reviews.restore();
      }
    });

    it('should not begin the review of a small body whose lookup found its hit before the review’s turn', async () => {
      const bytes = await solid(BLUE, 22, 22);
      await upload(bytes, 'blue.png').expect(200);
      const reviews = watchReviews();
      // Every lane of the image pool held: the duplicate's decode, and so its review, wait while its lookup answers.
      const pool = t.app.get(ImagePool);
      let open: () => void = () => undefined;
      const opened = new Promise<void>((resolve) => (open = resolve));
      const held = Array.from({ length: t.app.get(AppConfig).images.concurrency }, () =>
        pool.run(1, () => opened),
      );
      // The lookup's answer, marked as it settles (the pipeline's own dedupe step, wrapped for this test).
      const pipeline: { dedupe: (...args: unknown[]) => Promise<unknown> } = t.app.get(UploadPipelineService);
      const dedupe = pipeline.dedupe.bind(pipeline);
      let looked = false;
      pipeline.dedupe = (...args: unknown[]) => {
        const answer = dedupe(...args);
        answer.then(
          () => (looked = true),
          () => (looked = true),
        );
        return answer;
      };
      try {
        const again = upload(bytes, 'blue.png').then((res) => res);
        await waitFor('the duplicate’s dedupe lookup answered', () => (looked ? true : null));
        open();
        const res = await again;
        expect(res.status).toBe(200);
        expect(res.body.deduplicated).toBe(true);
        expect(reviews.calls).toHaveLength(0);
      } finally {
        open();
        await Promise.all(held);
        pipeline.dedupe = dedupe;
        reviews.restore();
      }
    });

    it('should review a new small red image and reject it, and never review a larger body’s hit', async () => {
      const reviews = watchReviews();
      try {
        // A small body reviewed beside a lookup that finds nothing: the verdict stands.
        const red = await solid(RED, 20, 20);
        expect((await upload(red, 'red.png')).body.code).toBe('nsfw_rejected');
        await waitFor('the upload.rejected audit entry', async () =>
          (await rejectedAudits(red)).length === 1 ? true : null,
        );
        // A body over EARLY_DECODE_MAX_BYTES waits for its lookup before its decode: a hit is neither decoded nor
        // reviewed.
        const noise = await sharp(randomBytes(200 * 200 * 3), {
          raw: { width: 200, height: 200, channels: 3 },
        })
          .png()
          .toBuffer();
        expect(noise.length).toBeGreaterThan(EARLY_DECODE_MAX_BYTES);
        const first = await upload(noise, 'noise.png').expect(200);
        const reviewed = reviews.calls.length;
        const again = await upload(noise, 'noise.png').expect(200);
        expect(again.body).toMatchObject({ filename: first.body.filename, deduplicated: true });
        expect(reviews.calls).toHaveLength(reviewed);
      } finally {
        reviews.restore();
      }
    });
  });

  it('should judge transparency by what a viewer sees', async () => {
    // Red RGB under alpha 0: a viewer sees only the page behind it.
    const hidden = await sharp({
      create: { width: 32, height: 32, channels: 4, background: { ...RED, alpha: 0 } },
    })
      .png()
      .toBuffer();
    await upload(hidden).expect(200);
    // Opaque red: visible, rejected.
    const visible = await sharp({
      create: { width: 32, height: 32, channels: 4, background: { ...RED, alpha: 1 } },
    })
      .png()
      .toBuffer();
    expect((await upload(visible)).body.code).toBe('nsfw_rejected');
  });

  it('should still answer 415 nsfw_rejected and log an error with the request id when the audit write fails', async () => {
    // A real database fault: the audit table refuses this one action.
    await sql(
      t,
      `create function refuse_rejected_audit() returns trigger language plpgsql as $$
         begin raise exception 'audit_entries is read-only for this test'; end $$`,
    );
    await sql(
      t,
      `create trigger refuse_rejected_audit before insert on audit_entries for each row
         when (new.action = 'upload.rejected') execute function refuse_rejected_audit()`,
    );
    const errors = jest.spyOn(Logger.prototype, 'error');
    try {
      const res = await upload(await solid({ r: 231, g: 21, b: 19 })).set('X-Request-Id', 'audit-fault-1');
      expect(res.status).toBe(415);
      expect(res.body.code).toBe('nsfw_rejected');
      const call = await waitFor('the error log line', () =>
        errors.mock.calls.find(
          ([fields]) => (fields as { requestId?: string })?.requestId === 'audit-fault-1',
        ),
      );
      expect(call[1]).toBe('Could not record upload.rejected (request audit-fault-1)');
      expect((call[0] as { err: Error }).err.message).toContain('read-only for this test');
    } finally {
      errors.mockRestore();
      await sql(t, 'drop trigger refuse_rejected_audit on audit_entries');
      await sql(t, 'drop function refuse_rejected_audit');
    }
  });
});

describe('NSFW moderation with the real converted nsfwjs model (e2e)', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp({ env: { MODERATION_ENABLED: 'true' } });
    await t.app.get(ModerationService).whenReady();
  }, 120000);
  afterAll(() => t.close());

  it('should reject the adversarial noise fixture and accept the plain seeded noise', async () => {
    const { token } = await makeKey(t);
    const fixtures = join(__dirname, '..', 'fixtures', 'moderation');
    const bad = await t.http
      .post('/api/v1/upload')
      .set(...bearer(token))
      .attach('file', await readFile(join(fixtures, 'adversarial-noise.png')), 'noise.png');
    expect(bad.status).toBe(415);
    expect(bad.body.code).toBe('nsfw_rejected');
    await t.http
      .post('/api/v1/upload')
      .set(...bearer(token))
      .attach('file', await readFile(join(fixtures, 'seeded-noise.png')), 'noise.png')
      .expect(200);
    const ready = await t.http.get('/readyz').expect(200);
    expect(ready.body.checks.moderation).toBe(true);
  });
});

describe('NSFW moderation when the model cannot load (e2e)', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp({
      env: { MODERATION_ENABLED: 'true', MODERATION_MODEL_PATH: '/nonexistent/model.onnx' },
    });
    await t.app
      .get(ModerationService)
      .whenReady()
      .catch(() => undefined);
  });
  afterAll(() => t.close());

  it('should refuse uploads with 503 unavailable and report not ready', async () => {
    const { token } = await makeKey(t);
    const res = await t.http
      .post('/api/v1/upload')
      .set(...bearer(token))
      .attach('file', await solid(BLUE), 'a.png');
    expect(res.status).toBe(503);
    expect(res.body.code).toBe('unavailable');
    const ready = await t.http.get('/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body.code).toBe('unavailable');
  });
});

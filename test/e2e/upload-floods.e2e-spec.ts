import { animatedNoise } from '../fixtures/images/image-fixtures';
import { png } from '../fixtures/sample-images';
import { bearer, makeKey, type TestKey } from '../setup/factories';
import { listen, type Listening, multipartFile, openRequest } from '../setup/raw-http';
import { createTestApp, type TestApp } from '../setup/test-app';
import { waitFor } from '../setup/wait';
import { RedisService } from '../../src/common/redis/redis.module';
import { SLOT_TTL_MS } from '../../src/modules/uploads/upload-slots.service';
import { ImagePool } from '../../src/modules/uploads/image-pool.service';
import { processImage } from '../../src/modules/media/image-processor';
import { getPriority } from 'node:os';
import sharp from 'sharp';

/** Issue 9 item 6: what one client can make the image pipeline spend. */
describe('Animation floods and uploads in flight (e2e)', () => {
  let t: TestApp;
  let other: TestApp;
  let server: Listening;

  beforeAll(async () => {
    const env = { MAX_FRAMES: '5', UPLOADS_IN_FLIGHT_PER_KEY: '2' };
    t = await createTestApp({ env });
    // A second instance of the same deployment: the in-flight count is shared through Redis.
    other = await createTestApp({ env, shareWith: t });
    server = await listen(t.app);
  });
  afterAll(async () => {
    await server.close();
    await other.close();
    await t.close();
  });

  const slotKey = (key: TestKey) => `uploads-in-flight:key:${key.keyId}`;
  const slotsHeld = (key: TestKey) => t.app.get(RedisService).client.zcard(slotKey(key));

  /** An upload whose body stops after the multipart head: it holds its slot until the socket closes. */
  async function stalledUpload(key: TestKey): Promise<{ abort: () => void; done: Promise<unknown> }> {
    const body = multipartFile(await png(7));
    const { req, response } = openRequest(server.port, '/api/v1/upload', {
      Authorization: `Bearer ${key.token}`,
      'Content-Type': body.contentType,
      'Content-Length': body.length,
    });
    req.write(body.head);
    return { abort: () => req.destroy(), done: response.catch(() => undefined) };
  }

  it('should refuse a GIF with more frames than MAX_FRAMES with 415 processing_failed, naming the cap', async () => {
    const { token } = await makeKey(t);
    const gif = await (await animatedNoise(8, 8, 6)).gif().toBuffer();
    const res = await t.http
      .post('/api/v1/upload')
      .set(...bearer(token))
      .attach('file', gif, 'flood.gif');
    expect(res.status).toBe(415);
    expect(res.body).toEqual({
      ok: false,
      code: 'processing_failed',
      error: 'The animation has 6 frames; at most 5 frames are accepted.',
    });

    const allowed = await (await animatedNoise(8, 8, 5)).gif().toBuffer();
    const ok = await t.http
      .post('/api/v1/upload')
      .set(...bearer(token))
      .attach('file', allowed, 'ok.gif');
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ ok: true, mime: 'image/gif' });
  });

  it('should answer 429 rate_limit with Retry-After while the key has UPLOADS_IN_FLIGHT_PER_KEY uploads in progress, on any instance', async () => {
    const key = await makeKey(t);
    const held = [await stalledUpload(key), await stalledUpload(key)];
    await waitFor('two slots held', async () => (await slotsHeld(key)) === 2);

    for (const instance of [t, other]) {
      const res = await instance.http
        .post('/api/v1/upload')
        .set(...bearer(key.token))
        .attach('file', await png(8), 'third.png');
      expect(res.status).toBe(429);
      expect(res.body).toMatchObject({ ok: false, code: 'rate_limit' });
      expect(res.body.error).toContain('2 uploads in progress');
      expect(res.headers['retry-after']).toBe('1');
    }

    // Another key is not affected.
    const stranger = await makeKey(t);
    await t.http
      .post('/api/v1/upload')
      .set(...bearer(stranger.token))
      .attach('file', await png(9), 'b.png')
      .expect(200);

    // A client that gives up frees its slot; the key can upload again.
    for (const h of held) {
      h.abort();
      await h.done;
    }
    await waitFor('slots released', async () => (await slotsHeld(key)) === 0);
    await t.http
      .post('/api/v1/upload')
      .set(...bearer(key.token))
      .attach('file', await png(10), 'c.png')
      .expect(200);
    expect(await slotsHeld(key)).toBe(0);
  });

  describe('on an instance with one upload in flight per key and MAX_FRAMES 2', () => {
    let strict: TestApp;
    beforeAll(async () => {
      strict = await createTestApp({
        env: { MAX_FRAMES: '2', UPLOADS_IN_FLIGHT_PER_KEY: '1' },
        shareWith: t,
      });
    });
    afterAll(() => strict.close());

    it('should find the slot free as soon as an answer arrives, on either instance', async () => {
      const key = await makeKey(t);
      // The release is not awaited before the answer: the next upload, here or on the other instance, must still
      // find it done (this instance admits one upload of the key at a time).
      for (let i = 0; i < 8; i++) {
        const res = await [t, strict][i % 2].http
          .post('/api/v1/upload')
          .set(...bearer(key.token))
          .attach('file', await png(200 + i), `${i}.png`);
        expect(res.status).toBe(200);
      }
      expect(await slotsHeld(key)).toBe(0);
    });

    it('should answer a dedupe hit before the decode: the same small animation over this MAX_FRAMES is the hit', async () => {
      const key = await makeKey(t);
      const gif = await (await animatedNoise(8, 8, 4)).gif().toBuffer();
      const first = await t.http
        .post('/api/v1/upload')
        .set(...bearer(key.token))
        .attach('file', gif, 'four.gif')
        .expect(200);
      // The lookup runs beside the decode for a body this small; its hit still comes first.
      const again = await strict.http
        .post('/api/v1/upload')
        .set(...bearer(key.token))
        .attach('file', gif, 'four.gif')
        .expect(200);
      expect(again.body).toMatchObject({ deduplicated: true, filename: first.body.filename });
      // Other bytes over the cap are refused there.
      const other = await (await animatedNoise(9, 8, 4)).gif().toBuffer();
      const refused = await strict.http
        .post('/api/v1/upload')
        .set(...bearer(key.token))
        .attach('file', other, 'other.gif');
      expect(refused.status).toBe(415);
      expect(refused.body).toMatchObject({ ok: false, code: 'processing_failed' });
    });
  });

  it('should not count a slot left by a dead instance once its TTL passed without a heartbeat', async () => {
    const key = await makeKey(t);
    const redis = t.app.get(RedisService).client;
    const stale = Date.now() - SLOT_TTL_MS - 1000;
    await redis.zadd(slotKey(key), stale, 'killed-instance-1', stale, 'killed-instance-2');
    await t.http
      .post('/api/v1/upload')
      .set(...bearer(key.token))
      .attach('file', await png(11), 'd.png')
      .expect(200);
    expect(await slotsHeld(key)).toBe(0);
  });

  it('should decode a heavy still (over 16 MP) here, without starting the heavy-image process', async () => {
    const { token } = await makeKey(t);
    const still = await sharp({ create: { width: 4200, height: 4100, channels: 3, background: '#3a6' } })
      .png()
      .toBuffer();
    const res = await t.http
      .post('/api/v1/upload')
      .set(...bearer(token))
      .attach('file', still, 'big.png')
      .expect(200);
    expect(res.body).toMatchObject({ ok: true, width: 4200, height: 4100 });
    expect(t.app.get(ImagePool).heavyPid).toBeUndefined();
  });

  it('should decode a heavy animation (over 16 MP decoded) in the low-priority heavy-image process and store what a local decode stores', async () => {
    const { token } = await makeKey(t);
    // 5 frames of 2000×1700: 17 MP decoded, over HEAVY_PIXELS, within MAX_FRAMES.
    const gif = await (await animatedNoise(2000, 1700, 5)).gif({ effort: 1 }).toBuffer();
    const pool = t.app.get(ImagePool);
    const res = await t.http
      .post('/api/v1/upload')
      .set(...bearer(token))
      .attach('file', gif, 'heavy.gif')
      .expect(200);
    expect(res.body).toMatchObject({ ok: true, mime: 'image/gif', width: 2000, height: 1700 });
    const pid = pool.heavyPid;
    expect(pid).toBeDefined();
    expect(pid).not.toBe(process.pid);
    expect(getPriority(pid)).toBe(19);

    const served = await t.http.get(`/images/${res.body.filename}`).buffer(true).expect(200);
    const local = await processImage(gif, { ext: 'gif', mime: 'image/gif' });
    expect(Buffer.compare(served.body as Buffer, local.data)).toBe(0);
  });

  it('should run a full collection after a heavy still decoded here, and none after a heavy animation decoded in the heavy-image process (review off)', async () => {
    const { token } = await makeKey(t);
    const pool = t.app.get(ImagePool);
    // The stage's collections, counted (they still run).
    const own = Object.getOwnPropertyDescriptor(pool, 'collect');
    const collect = (pool as unknown as { collect: () => void }).collect;
    let collections = 0;
    Object.defineProperty(pool, 'collect', { value: () => (collections++, collect()) });
    const send = (bytes: Buffer, name: string) =>
      t.http
        .post('/api/v1/upload')
        .set(...bearer(token))
        .attach('file', bytes, name);
    try {
      // The review is off in this app: no frames come back to say where the animation was decoded.
      const gif = await (await animatedNoise(2000, 1700, 5)).gif({ effort: 1 }).toBuffer();
      expect((await send(gif, 'heavy.gif')).body).toMatchObject({ ok: true, width: 2000, height: 1700 });
      expect(pool.heavyPid).toBeDefined();
      // Made after that answer (a collection would have run as it went out), and taking a while.
      const still = await sharp({ create: { width: 4200, height: 4100, channels: 3, background: '#6a3' } })
        .png()
        .toBuffer();
      expect(collections).toBe(0);
      expect((await send(still, 'big.png')).body).toMatchObject({ ok: true, width: 4200, height: 4100 });
      await waitFor('the collection after the still', () => collections > 0, 5000);
      expect(collections).toBe(1);
    } finally {
      if (own) {
        Object.defineProperty(pool, 'collect', own);
      }
    }
  });

  it('should answer 415 processing_failed for a damaged heavy image, from the heavy-image process', async () => {
    const { token } = await makeKey(t);
    const gif = await (await animatedNoise(2000, 1700, 5)).gif({ effort: 1 }).toBuffer();
    const res = await t.http
      .post('/api/v1/upload')
      .set(...bearer(token))
      .attach('file', gif.subarray(0, Math.floor(gif.length * 0.6)), 'cut.gif');
    expect(res.status).toBe(415);
    expect(res.body).toMatchObject({ ok: false, code: 'processing_failed' });
  });
});

import type { Server } from 'node:http';
import sharp from 'sharp';
import { createColourModelApp } from '../fixtures/moderation/make-colour-model';
import { bearer, makeKey } from '../setup/factories';
import type { TestApp } from '../setup/test-app';
import { ModerationService } from '../../src/modules/moderation/moderation.service';
import type { ReviewFrame } from '../../src/modules/media/decode';
import { ImagePool } from '../../src/modules/uploads/image-pool.service';

/** A JPEG of one colour, small as a file and over 16 MP decoded (a heavy image). */
function heavyJpeg(blue: number): Promise<Buffer> {
  return sharp({ create: { width: 4200, height: 4000, channels: 3, background: { r: 20, g: 40, b: blue } } })
    .jpeg()
    .toBuffer();
}

/**
 * Issue 14, goal 4: a heavy image holds a slot of the heavy stage (IMAGE_HEAVY_CONCURRENCY, default 1) from before
 * its decode until its decoded frame is freed, so two heavy uploads at once never hold two frames. The collection
 * that frees it runs once the upload is answered, so the answer does not wait for it. The real stage, the real review
 * and the real answers, each noted when it acts.
 */
describe('The heavy stage in the upload pipeline (e2e)', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createColourModelApp();
  });
  afterAll(async () => {
    await t.close();
  });

  it('should hold one heavy upload’s slot from its decode until it is answered; light uploads take none', async () => {
    const events: string[] = [];
    // Attached as each upload arrives, so before anything the pipeline attaches to its answer.
    const noteAnswers = (
      req: { method?: string; url?: string },
      res: { once: (e: 'finish', f: () => void) => void },
    ) => {
      if (req.method === 'POST' && req.url === '/api/v1/upload') {
        res.once('finish', () => events.push('answered'));
      }
    };
    const server = t.app.getHttpServer() as Server;
    server.prependListener('request', noteAnswers);
    const stage = t.app.get(ImagePool).heavyStage;
    const acquire = stage.acquire.bind(stage);
    stage.acquire = async () => {
      events.push('ask');
      const release = await acquire();
      events.push('slot');
      return () => {
        events.push('give back');
        release();
      };
    };
    const moderation = t.app.get(ModerationService);
    const review = moderation.review.bind(moderation);
    moderation.review = async (frames: readonly ReviewFrame[]) => {
      events.push(`review ${frames.map((f) => ('data' in f ? `${f.width}×${f.height}` : 'inputs')).join()}`);
      const verdict = await review(frames);
      events.push('reviewed');
      return verdict;
    };
    try {
      const { token } = await makeKey(t);
      const send = (bytes: Buffer, name: string) =>
        t.http
          .post('/api/v1/upload')
          .set(...bearer(token))
          .attach('file', bytes, name);
      const answers = await Promise.all([
        send(await heavyJpeg(200), 'a.jpg'),
        send(await heavyJpeg(210), 'b.jpg'),
      ]);
      expect(answers.map((r) => [r.status, r.body.width, r.body.height])).toEqual([
        [200, 4200, 4000],
        [200, 4200, 4000],
      ]);
      // Both asked at once; the second got its slot only once the first was answered and its slot back.
      expect(events.filter((e) => e !== 'ask')).toEqual([
        'slot',
        'review 4200×4000',
        'reviewed',
        'answered',
        'give back',
        'slot',
        'review 4200×4000',
        'reviewed',
        'answered',
        'give back',
      ]);
      expect(events.lastIndexOf('ask')).toBeLessThan(events.indexOf('give back'));

      events.length = 0;
      const light = await send(
        await sharp({ create: { width: 640, height: 480, channels: 3, background: '#3050c0' } })
          .jpeg()
          .toBuffer(),
        'c.jpg',
      );
      expect(light.status).toBe(200);
      expect(events).toEqual(['review 640×480', 'reviewed', 'answered']);
    } finally {
      server.off('request', noteAnswers);
      stage.acquire = acquire;
      moderation.review = review;
    }
  });
});

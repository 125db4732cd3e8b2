import { DeliveryCache } from '../../src/modules/delivery/delivery-cache';
import { ImagesController } from '../../src/modules/delivery/images.controller';
import { MAX_QUERY_PARAMETERS } from '../../src/modules/delivery/query-limit';
import { png } from '../fixtures/sample-images';
import { bearer, makeKey } from '../setup/factories';
import { createTestApp, type TestApp } from '../setup/test-app';
import { waitFor } from '../setup/wait';

/** `a1=1&…&a<n>=1`: n parameters a direct link ignores. */
const filler = (n: number): string => Array.from({ length: n }, (_, i) => `a${i + 1}=1`).join('&');

/**
 * Express's query parser (node:querystring) reads at most 1000 parameters and drops the rest, so a variant
 * parameter after 1000 others went unchecked and the original was served. /images answers 400 `bad_request`
 * naming the limit past MAX_QUERY_PARAMETERS (100) instead, on the fast path and the controller, before the
 * lookup; unknown parameters within it are still ignored.
 */
describe('The direct link’s query parameter limit (e2e)', () => {
  let t: TestApp;
  let filename: string;
  let serve: jest.SpyInstance;

  beforeAll(async () => {
    t = await createTestApp();
    const { token } = await makeKey(t);
    await waitFor('the delivery cache', () => t.app.get(DeliveryCache).enabled);
    const up = await t.http
      .post('/api/v1/upload')
      .set(...bearer(token))
      .attach('file', await png(61, 200, 150), 'a.png')
      .expect(200);
    filename = up.body.filename as string;
    serve = jest.spyOn(ImagesController.prototype as unknown as { serve: () => Promise<void> }, 'serve');
  });
  afterAll(async () => {
    serve.mockRestore();
    await t.close();
  });

  const expectTooMany = (res: { status: number; body: unknown; headers: Record<string, string> }): void => {
    expect({ status: res.status, body: res.body }).toEqual({
      status: 400,
      body: {
        ok: false,
        code: 'bad_request',
        error: `Too many query parameters: a direct link takes at most ${MAX_QUERY_PARAMETERS}.`,
      },
    });
    expect(res.headers['content-type']).toMatch(/^application\/json/);
  };

  it.each([
    ['1000 others, then w=7 (the audit’s URL)', `${filler(1000)}&w=7`],
    ['1000 others, then a valid variant', `${filler(1000)}&w=64&format=webp`],
    ['1000 empty parameters, then w=7', `${'&'.repeat(1000)}w=7`],
    ['101 parameters', filler(101)],
    ['100 others and w=64', `${filler(100)}&w=64`],
  ])('should answer 400 bad_request naming the limit for %s, on either path', async (_name, query) => {
    for (const round of ['a miss (controller)', 'a hit (the fast path holds the row)']) {
      // The first round warms the delivery cache with the original, so the second one reaches the fast path.
      if (round.startsWith('a miss')) {
        t.app.get(DeliveryCache).invalidate(`upload:${filename}`);
      } else {
        await t.http.get(`/images/${filename}`).expect(200);
      }
      expectTooMany(await t.http.get(`/images/${filename}?${query}`));
      const head = await t.http.head(`/images/${filename}?${query}`);
      expect([round, head.status]).toEqual([round, 400]);
    }
  });

  it('should refuse too many before the lookup: an unknown image gets the same 400', async () => {
    expectTooMany(await t.http.get(`/images/FIXITFY-doesnotexist.png?${filler(1000)}&w=7`));
  });

  it('should still ignore unknown parameters within the limit: a cache buster, or 100 of them', async () => {
    const original = await t.http.get(`/images/${filename}`).expect(200);
    for (const query of ['v=2', filler(MAX_QUERY_PARAMETERS), `${filler(MAX_QUERY_PARAMETERS - 1)}&v=2`]) {
      for (let round = 0; round < 2; round++) {
        serve.mockClear();
        const res = await t.http.get(`/images/${filename}?${query}`).expect(200);
        // The fast path (it holds the row) still answers them itself.
        expect(serve).not.toHaveBeenCalled();
        expect(res.headers.etag).toBe(original.headers.etag);
        expect((res.body as Buffer).equals(original.body as Buffer)).toBe(true);
      }
    }
    // …and still read the variant parameters among them.
    const variant = await t.http.get(`/images/${filename}?${filler(98)}&w=64&format=webp`).expect(200);
    expect(variant.headers['content-type']).toBe('image/webp');
    const bad = await t.http.get(`/images/${filename}?${filler(99)}&w=7`);
    expect({ status: bad.status, code: (bad.body as { code: string }).code }).toEqual({
      status: 400,
      code: 'bad_request',
    });
  });
});

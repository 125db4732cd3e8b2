import type { ServableUpload } from '../uploads/uploads.service';
import { MAX_RESOLUTIONS, originalOf, variantResolver } from './fast-path';

const row = (storedSha256: string): ServableUpload => ({
  id: 'u1',
  ownerId: 'o1',
  filename: 'FIXITFY-aaaaaaaaaaaa.png',
  storedSha256,
  size: 10,
  mime: 'image/png',
  createdAt: new Date('2026-12-03T13:00:00Z'),
  pages: 1,
  expiresAt: null,
});

/** originalOf describes a row once and reuses that for the row (the fast path's 304s), never for another row. */
describe('originalOf', () => {
  it('should describe the original as the direct link answers it', () => {
    expect(originalOf(row('abc'))).toEqual({
      key: 'FIXITFY-aaaaaaaaaaaa.png',
      etag: '"abc"',
      size: 10,
      mime: 'image/png',
      lastModified: new Date('2026-12-03T13:00:00Z'),
      lastModifiedText: 'Thu, 03 Dec 2026 13:00:00 GMT',
      expiresAt: null,
    });
  });

  it('should reuse the description of one row, and describe a row read again afresh', () => {
    const first = row('abc');
    expect(originalOf(first)).toBe(originalOf(first));
    // The same file re-read (a new row object) after its bytes changed: its own ETag, not the first row's.
    expect(originalOf(row('def')).etag).toBe('"def"');
  });
});

/** The fast path's resolutions are kept per query and per everything else they depend on, never shared wrongly. */
describe('variantResolver', () => {
  const sizes = [320, 640];
  const gif: ServableUpload = { ...row('abc'), mime: 'image/gif', pages: 12 };
  const AVIF_AND_WEBP = 'image/avif,image/webp,image/*,*/*;q=0.8';

  it('should resolve a query as the slow path does, and keep the answer for the same request', () => {
    const resolve = variantResolver(sizes);
    const first = resolve('w=320&format=webp', row('abc'), undefined);
    expect(first).toEqual({
      kind: 'variant',
      varyAccept: false,
      spec: { width: 320, height: null, fit: 'inside', format: 'webp' },
      key: 'w320_h0_inside_webp',
      mime: 'image/webp',
    });
    expect(resolve('w=320&format=webp', row('def'), undefined)).toBe(first);
    expect(Object.isFrozen(first) && first?.kind === 'variant' && Object.isFrozen(first.spec)).toBe(true);
    expect(resolve('format=png', row('abc'), undefined)).toEqual({ kind: 'original', varyAccept: false });
  });

  it('should keep answers apart by Accept, by the original type and by whether it is animated', () => {
    const resolve = variantResolver(sizes);
    const key = (upload: ServableUpload, accept?: string) => {
      const resolved = resolve('w=320&format=auto', upload, accept);
      return resolved?.kind === 'variant' ? resolved.key : resolved?.kind;
    };
    expect(key(row('abc'), AVIF_AND_WEBP)).toBe('w320_h0_inside_avif');
    expect(key(row('abc'), 'image/webp')).toBe('w320_h0_inside_webp');
    expect(key(row('abc'))).toBe('w320_h0_inside_png');
    // sharp writes no AVIF sequence: an animated GIF never becomes AVIF, a still one may.
    expect(key(gif, AVIF_AND_WEBP)).toBe('w320_h0_inside_webp');
    expect(key({ ...gif, pages: 1 }, AVIF_AND_WEBP)).toBe('w320_h0_inside_avif');
    // Not read yet (no frame count): counted as animated.
    expect(key({ ...gif, pages: null }, AVIF_AND_WEBP)).toBe('w320_h0_inside_webp');
    expect(key({ ...row('abc'), mime: 'image/jpeg' })).toBe('w320_h0_inside_jpeg');
  });

  it('should leave to the slow path a bad parameter, a query it does not read and one of too many parameters', () => {
    const resolve = variantResolver(sizes);
    for (const query of [
      'w=321',
      'w=320&w=640',
      'fit=cover&w=320',
      'w=%33%32%30',
      'w[a]=1',
      'v=1&'.repeat(1100),
    ]) {
      expect(resolve(query, row('abc'), undefined)).toBeNull();
      expect(resolve(query, row('abc'), undefined)).toBeNull();
    }
  });

  it('should answer as before once it has kept as many answers as it may', () => {
    const resolve = variantResolver(sizes);
    const first = resolve('w=640&format=auto', row('abc'), 'image/webp');
    for (let i = 0; i <= MAX_RESOLUTIONS; i++) {
      expect(resolve('w=640&format=auto', row('abc'), `image/webp;q=0.${i}`)).not.toBeNull();
    }
    // Started again on the way (no more than MAX_RESOLUTIONS kept): resolved afresh, the same answer.
    const again = resolve('w=640&format=auto', row('abc'), 'image/webp');
    expect(again).not.toBe(first);
    expect(again).toEqual(first);
    expect(resolve('w=640&format=auto', row('abc'), 'image/avif')).toMatchObject({
      key: 'w640_h0_inside_avif',
    });
  });

  it('should resolve a long query or Accept every time, keeping nothing of it', () => {
    const resolve = variantResolver(sizes);
    const long = `v=${'1'.repeat(600)}&w=320&format=webp`;
    const first = resolve(long, row('abc'), undefined);
    expect(first).toMatchObject({ key: 'w320_h0_inside_webp' });
    expect(resolve(long, row('abc'), undefined)).not.toBe(first);
    expect(resolve(long, row('abc'), undefined)).toEqual(first);
    const accept = `image/webp,${'x/y;q=0.1,'.repeat(60)}`;
    expect(resolve('w=320&format=auto', row('abc'), accept)).not.toBe(
      resolve('w=320&format=auto', row('abc'), accept),
    );
  });
});

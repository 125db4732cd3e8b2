import { parse } from 'node:querystring';
import { MediaError } from './media-error';
import {
  DEFAULT_VARIANT_SIZES,
  negotiateFormat,
  parseVariantQuery,
  resolveVariant,
  variantKey,
  type ParsedVariantQuery,
  type ResolvedVariant,
  type SourceMime,
} from './variant-params';

/** Express 5's default ("simple") query parser is node:querystring. */
function query(search: string): Record<string, unknown> {
  return { ...parse(search) };
}

function badRequest(fn: () => unknown): MediaError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(MediaError);
  const error = caught as MediaError;
  expect(error.code).toBe('bad_request');
  return error;
}

function resolve(search: string, sourceMime: SourceMime = 'image/jpeg', accept?: string): ResolvedVariant {
  return resolveVariant(parseVariantQuery(query(search)), { sourceMime, accept });
}

function keyOf(search: string, sourceMime: SourceMime = 'image/jpeg', accept?: string): string | null {
  const resolved = resolve(search, sourceMime, accept);
  return resolved.kind === 'variant' ? resolved.key : null;
}

const CHROME = 'image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8';
const FIREFOX = 'image/avif,image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5';
const SAFARI_17 =
  'image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5';
const SAFARI_13 = 'image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5';

describe(parseVariantQuery.name, () => {
  it('should answer the original when no parameter is given', () => {
    expect(parseVariantQuery(query(''))).toEqual({ kind: 'original' });
  });

  it('should ignore unknown parameters such as cache busters', () => {
    expect(parseVariantQuery(query('v=3&utm_source=x&W=999'))).toEqual({ kind: 'original' });
    expect(parseVariantQuery(query('v=3&w=320'))).toEqual({
      kind: 'variant',
      width: 320,
      height: null,
      fit: 'inside',
      format: null,
    });
  });

  it('should answer the original for fit=inside alone, the default spelled out', () => {
    expect(parseVariantQuery(query('fit=inside'))).toEqual({ kind: 'original' });
  });

  it('should read all four parameters', () => {
    expect(parseVariantQuery(query('format=avif&h=256&fit=cover&w=128'))).toEqual({
      kind: 'variant',
      width: 128,
      height: 256,
      fit: 'cover',
      format: 'avif',
    });
  });

  it('should accept a height alone and a format alone', () => {
    expect(parseVariantQuery(query('h=64'))).toMatchObject({ kind: 'variant', width: null, height: 64 });
    expect(parseVariantQuery(query('format=auto'))).toMatchObject({
      kind: 'variant',
      width: null,
      height: null,
      format: 'auto',
    });
  });

  it('should accept every default size for w and h', () => {
    for (const size of DEFAULT_VARIANT_SIZES) {
      expect(parseVariantQuery(query(`w=${size}&h=${size}`))).toMatchObject({ width: size, height: size });
    }
  });

  it.each([
    '',
    '0',
    '321',
    '0320',
    '320.0',
    ' 320',
    '+320',
    '-64',
    '3e2',
    'abc',
    '99999999999999999999',
    '2560px',
  ])('should refuse w=%j naming the allowed sizes', (value) => {
    const error = badRequest(() => parseVariantQuery({ w: value }));
    expect(error.message).toBe(
      'w must be one of 64, 128, 256, 320, 480, 640, 960, 1280, 1920, 2560 (pixels).',
    );
  });

  it('should refuse a bad h naming the allowed sizes', () => {
    const error = badRequest(() => parseVariantQuery(query('w=320&h=100')));
    expect(error.message).toMatch(/^h must be one of 64, 128, .*, 2560 \(pixels\)\.$/);
  });

  it('should refuse a repeated parameter', () => {
    const error = badRequest(() => parseVariantQuery(query('w=320&w=640')));
    expect(error.message).toMatch(/^w must be given once, as one of 64, .*2560 \(pixels\)\.$/);
    expect(badRequest(() => parseVariantQuery(query('format=webp&format=webp'))).message).toBe(
      'format must be given once, as one of webp, avif, jpeg, png, auto.',
    );
  });

  it('should refuse an object from the extended query parser', () => {
    badRequest(() => parseVariantQuery({ w: { a: '1' } }));
    badRequest(() => parseVariantQuery({ fit: ['cover'] }));
    badRequest(() => parseVariantQuery({ h: 320 }));
  });

  it.each(['', 'fill', 'contain', 'Cover', 'INSIDE'])(
    'should refuse fit=%j naming inside and cover',
    (value) => {
      const error = badRequest(() => parseVariantQuery({ w: '320', fit: value }));
      expect(error.message).toBe('fit must be one of inside, cover.');
    },
  );

  it.each(['', 'jpg', 'JPEG', 'gif', 'tiff', 'heic', 'webp '])(
    'should refuse format=%j naming the formats',
    (value) => {
      const error = badRequest(() => parseVariantQuery({ format: value }));
      expect(error.message).toBe('format must be one of webp, avif, jpeg, png, auto.');
    },
  );

  it('should refuse fit=cover without both sides', () => {
    for (const search of ['fit=cover', 'fit=cover&w=320', 'fit=cover&h=320', 'fit=cover&format=webp']) {
      expect(badRequest(() => parseVariantQuery(query(search))).message).toBe(
        'fit=cover needs both w and h.',
      );
    }
  });

  it('should use a configured allow-list instead of the default', () => {
    expect(parseVariantQuery(query('w=100'), [100, 200])).toMatchObject({ width: 100 });
    const error = badRequest(() => parseVariantQuery(query('w=320'), [100, 200]));
    expect(error.message).toBe('w must be one of 100, 200 (pixels).');
  });

  it('should read own properties only, never the prototype', () => {
    const inherited = Object.create({ w: '320', format: 'webp' }) as Record<string, unknown>;
    expect(parseVariantQuery(inherited)).toEqual({ kind: 'original' });
    expect(parseVariantQuery(query('__proto__=x&constructor=y'))).toEqual({ kind: 'original' });
  });
});

describe(resolveVariant.name, () => {
  it('should give one key for every spelling of the same variant', () => {
    const spellings = [
      'w=320&format=webp',
      'format=webp&w=320',
      'w=320&fit=inside&format=webp',
      'fit=inside&format=webp&w=320&v=7',
    ];
    expect(new Set(spellings.map((search) => keyOf(search)))).toEqual(new Set(['w320_h0_inside_webp']));
  });

  it('should spell the original format out: no format and its own format share a key', () => {
    expect(keyOf('w=320')).toBe('w320_h0_inside_jpeg');
    expect(keyOf('w=320&format=jpeg')).toBe('w320_h0_inside_jpeg');
    expect(keyOf('w=320', 'image/gif')).toBe('w320_h0_inside_gif');
  });

  it('should store format=auto under the format it chose', () => {
    expect(keyOf('w=320&format=auto', 'image/jpeg', 'image/webp')).toBe(keyOf('w=320&format=webp'));
    expect(keyOf('w=320&format=auto', 'image/png', 'image/*')).toBe('w320_h0_inside_png');
  });

  it('should tell the variants apart by every parameter', () => {
    const keys = ['w=320', 'h=320', 'w=320&h=320', 'w=320&h=320&fit=cover', 'w=320&format=png', 'w=640'].map(
      (search) => keyOf(search),
    );
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('should describe the variant to render with its MIME type', () => {
    expect(resolve('h=128&w=256&fit=cover&format=avif')).toEqual({
      kind: 'variant',
      varyAccept: false,
      spec: { width: 256, height: 128, fit: 'cover', format: 'avif' },
      key: 'w256_h128_cover_avif',
      mime: 'image/avif',
    });
  });

  it('should answer the original for its own format at its own size', () => {
    expect(resolve('format=png', 'image/png')).toEqual({ kind: 'original', varyAccept: false });
    expect(resolve('format=webp', 'image/webp')).toEqual({ kind: 'original', varyAccept: false });
    expect(resolve('format=webp', 'image/png')).toMatchObject({ kind: 'variant', key: 'w0_h0_inside_webp' });
  });

  it('should vary on Accept whenever format=auto is asked, even for the original', () => {
    expect(resolve('format=auto', 'image/jpeg', 'image/*')).toEqual({ kind: 'original', varyAccept: true });
    expect(resolve('format=auto', 'image/jpeg', CHROME)).toMatchObject({ kind: 'variant', varyAccept: true });
    expect(resolve('w=64&format=webp', 'image/jpeg', CHROME)).toMatchObject({ varyAccept: false });
    expect(resolve('', 'image/jpeg', CHROME)).toEqual({ kind: 'original', varyAccept: false });
  });

  it('should not pick AVIF for an animation', () => {
    const parsed: ParsedVariantQuery = parseVariantQuery(query('w=128&format=auto'));
    expect(resolveVariant(parsed, { sourceMime: 'image/gif', accept: CHROME, animated: true })).toMatchObject(
      {
        key: 'w128_h0_inside_webp',
        mime: 'image/webp',
      },
    );
    expect(
      resolveVariant(parsed, { sourceMime: 'image/gif', accept: CHROME, animated: false }),
    ).toMatchObject({
      key: 'w128_h0_inside_avif',
    });
  });

  it('should treat a GIF or WebP original of unknown frame count as animated', () => {
    const parsed = parseVariantQuery(query('w=128&format=auto'));
    expect(resolveVariant(parsed, { sourceMime: 'image/gif', accept: CHROME })).toMatchObject({
      key: 'w128_h0_inside_webp',
    });
    expect(resolveVariant(parsed, { sourceMime: 'image/webp', accept: CHROME })).toMatchObject({
      key: 'w128_h0_inside_webp',
    });
    expect(resolveVariant(parsed, { sourceMime: 'image/png', accept: CHROME })).toMatchObject({
      key: 'w128_h0_inside_avif',
    });
  });
});

describe(variantKey.name, () => {
  it('should use only characters safe in a storage key', () => {
    expect(variantKey({ width: 2560, height: null, fit: 'inside', format: 'png' })).toMatch(/^[a-z0-9_]+$/);
  });
});

describe(negotiateFormat.name, () => {
  it.each([
    ['Chrome', CHROME, 'avif'],
    ['Firefox', FIREFOX, 'avif'],
    ['Safari 17, which lists WebP first', SAFARI_17, 'avif'],
    ['Safari 13, which names neither', SAFARI_13, 'jpeg'],
    ['image/* alone', 'image/*', 'jpeg'],
    ['*/* alone', '*/*', 'jpeg'],
    ['WebP only', 'image/webp,*/*;q=0.8', 'webp'],
    ['AVIF refused with q=0', 'image/avif;q=0,image/webp,image/*', 'webp'],
    ['AVIF refused, only the wildcard left', 'image/*,image/avif;q=0', 'jpeg'],
    ['both refused', 'image/avif;q=0, image/webp;q=0.0, */*', 'jpeg'],
    ['a low but positive q', 'image/jpeg, image/avif;q=0.1', 'avif'],
    ['upper case and spaces', ' IMAGE/AVIF ; Q=0.5 , image/png', 'avif'],
    ['garbage', ';;;,,=q,/,image', 'jpeg'],
    ['an empty header', '', 'jpeg'],
  ])('should pick for %s', (_name, accept, expected) => {
    expect(negotiateFormat(accept, 'image/jpeg')).toBe(expected);
  });

  it("should fall back to the original's own format", () => {
    expect(negotiateFormat(undefined, 'image/png')).toBe('png');
    expect(negotiateFormat('image/*', 'image/gif', { animated: false })).toBe('gif');
    expect(negotiateFormat('text/html', 'image/avif')).toBe('avif');
  });

  it('should skip AVIF for an animation and take WebP', () => {
    expect(negotiateFormat(CHROME, 'image/gif', { animated: true })).toBe('webp');
    expect(negotiateFormat('image/avif', 'image/gif', { animated: true })).toBe('gif');
    expect(negotiateFormat('image/avif', 'image/gif', { animated: false })).toBe('avif');
    expect(negotiateFormat('image/avif', 'image/webp')).toBe('webp');
  });
});

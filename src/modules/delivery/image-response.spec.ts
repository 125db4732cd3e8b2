import { capCacheControl, IMAGE_HEADERS } from './image-response';

describe('capCacheControl', () => {
  const now = Date.parse('2026-06-01T12:00:00.000Z');
  const at = (seconds: number): Date => new Date(now + seconds * 1000);

  it('should leave the header as it is without an expiry, or with more time left than its max-age', () => {
    expect(capCacheControl(IMAGE_HEADERS['Cache-Control'], null, now)).toBe('public, max-age=86400');
    expect(capCacheControl('public, max-age=86400', at(86400.5), now)).toBe('public, max-age=86400');
    expect(capCacheControl('public, max-age=300', at(3600), now)).toBe('public, max-age=300');
  });

  it('should cap max-age at the whole seconds left, 0 once it is due', () => {
    expect(capCacheControl('public, max-age=86400', at(59.9), now)).toBe('public, max-age=59');
    expect(capCacheControl('public, max-age=300', at(0.4), now)).toBe('public, max-age=0');
    expect(capCacheControl('public, max-age=300', at(-5), now)).toBe('public, max-age=0');
  });

  it('should cap s-maxage too and drop immutable once it caps', () => {
    expect(capCacheControl('public, max-age=31536000, s-maxage=600, immutable', at(120), now)).toBe(
      'public, max-age=120, s-maxage=120',
    );
    expect(capCacheControl('public, max-age=31536000, s-maxage=60, immutable', at(120), now)).toBe(
      'public, max-age=120, s-maxage=60',
    );
    expect(capCacheControl('public, max-age=60, immutable', at(120), now)).toBe(
      'public, max-age=60, immutable',
    );
  });
});

import { normaliseTags, parseTags } from './tags';

describe('tags', () => {
  it('should lower-case, trim and de-duplicate', () => {
    expect(parseTags(' Logo,redm , LOGO')).toEqual(['logo', 'redm']);
    expect(normaliseTags(['A_b-1'])).toEqual(['a_b-1']);
  });

  it('should treat a missing or blank field as no tags', () => {
    expect(parseTags(undefined)).toEqual([]);
    expect(parseTags('  ')).toEqual([]);
  });

  it.each([
    ['a b'],
    ['x'.repeat(33)],
    ['a,,b'],
    ['é'],
    // The Kelvin sign lower-cases to an ASCII "k": still not a tag as sent.
    ['\u212A'],
    ['ok,\u212Aelvin'],
    [Array.from({ length: 11 }, (_, i) => `t${i}`).join(',')],
  ])('should refuse %s with bad_request', (raw) => {
    expect(() => parseTags(raw)).toThrow(expect.objectContaining({ code: 'bad_request' }));
  });
});

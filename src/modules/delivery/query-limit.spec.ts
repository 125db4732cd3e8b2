import { checkParameterCount, MAX_QUERY_PARAMETERS, tooManyParameters } from './query-limit';

describe('tooManyParameters', () => {
  const params = (n: number): string => Array.from({ length: n }, (_, i) => `a${i}=1`).join('&');

  it('should allow up to MAX_QUERY_PARAMETERS parameters', () => {
    expect(tooManyParameters('')).toBe(false);
    expect(tooManyParameters('w=320&format=webp&v=2')).toBe(false);
    expect(tooManyParameters(params(MAX_QUERY_PARAMETERS))).toBe(false);
  });

  it('should refuse one more, empty parameters counted as the query parser counts them', () => {
    expect(tooManyParameters(params(MAX_QUERY_PARAMETERS + 1))).toBe(true);
    expect(tooManyParameters('&'.repeat(MAX_QUERY_PARAMETERS))).toBe(true);
    expect(tooManyParameters(`${'&'.repeat(1000)}w=7`)).toBe(true);
  });

  it('should throw bad_request naming the limit for a URL past it, and only then', () => {
    expect(() => checkParameterCount(`/images/x.png?${params(MAX_QUERY_PARAMETERS)}`)).not.toThrow();
    expect(() => checkParameterCount('/images/x.png')).not.toThrow();
    expect(() => checkParameterCount(`/images/x.png?${params(1001)}`)).toThrow(
      expect.objectContaining({ code: 'bad_request', message: expect.stringContaining('100') }),
    );
  });
});

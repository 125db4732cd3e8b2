import { jsonDepth, MAX_JSON_DEPTH, refuseDeepJson } from './json-depth';

describe('jsonDepth', () => {
  it('should count bracket nesting and ignore brackets inside strings', () => {
    expect(jsonDepth(Buffer.from('{"a":1}'))).toBe(1);
    expect(jsonDepth(Buffer.from('{"tags":["a","b"]}'))).toBe(2);
    expect(jsonDepth(Buffer.from('{"s":"[[[[{{{{\\\\\\"[[["}'))).toBe(1);
    expect(jsonDepth(Buffer.from('42'))).toBe(0);
  });

  it('should find 1500 levels in a 3 KB body without recursion', () => {
    const body = Buffer.from('['.repeat(1500) + ']'.repeat(1500));
    expect(jsonDepth(body)).toBe(1500);
    expect(() => refuseDeepJson(null, null, body)).toThrow(/nested more than/);
  });

  it('should let a body at the limit through', () => {
    const body = Buffer.from('['.repeat(MAX_JSON_DEPTH) + ']'.repeat(MAX_JSON_DEPTH));
    expect(() => refuseDeepJson(null, null, body)).not.toThrow();
  });
});

import { createHash } from 'node:crypto';
import { API_KEY_PATTERN, hashToken, mintApiKey } from './api-key-token';

describe('API key tokens', () => {
  it('should mint fxf_ + 64 lowercase hex, keeping only the SHA-256 and an 8-character prefix', () => {
    const { token, hash, prefix } = mintApiKey();
    expect(token).toMatch(API_KEY_PATTERN);
    expect(hash).toBe(createHash('sha256').update(token).digest('hex'));
    expect(prefix).toBe(token.slice(0, 8));
    expect(hash).not.toContain(token.slice(4));
  });

  it('should never mint the same token twice', () => {
    const tokens = new Set(Array.from({ length: 1000 }, () => mintApiKey().token));
    expect(tokens.size).toBe(1000);
  });

  it('should hash deterministically', () => {
    expect(hashToken('fxf_a')).toBe(hashToken('fxf_a'));
    expect(hashToken('fxf_a')).not.toBe(hashToken('fxf_b'));
  });
});

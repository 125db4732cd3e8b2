import { createHmac, randomUUID } from 'node:crypto';
import {
  signUploadToken,
  UPLOAD_TOKEN_PATTERN,
  type UploadTokenClaims,
  uploadTokenSigningKey,
  verifyUploadToken,
} from './upload-token';

const NOW = Date.UTC(2026, 5, 1, 12, 0, 0);
const current = uploadTokenSigningKey('c'.repeat(64));
const previous = uploadTokenSigningKey('p'.repeat(64));
const claims = (over: Partial<UploadTokenClaims> = {}): UploadTokenClaims => ({
  userId: randomUUID(),
  keyId: randomUUID(),
  expiresAt: NOW + 60_000,
  ...over,
});

/** Swaps one character for another of the base64url alphabet. */
const flip = (s: string, i: number): string => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);

describe('upload tokens', () => {
  it('should look like ut_<base64url JSON beginning {"u":">.<base64url HMAC>', () => {
    const c = claims();
    const token = signUploadToken(c, current);
    expect(token).toMatch(/^ut_[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    expect(token).toMatch(UPLOAD_TOKEN_PATTERN);
    const payload = Buffer.from(token.slice(3, token.indexOf('.')), 'base64url').toString('utf8');
    expect(payload.startsWith('{"u":"')).toBe(true);
    expect(JSON.parse(payload)).toEqual({ u: c.userId, k: c.keyId, e: c.expiresAt });
  });

  it('should sign with HMAC-SHA256 under a key derived from the secret, never the raw secret', () => {
    const token = signUploadToken(claims(), current);
    const [payload, sig] = token.slice(3).split('.');
    const raw = createHmac('sha256', 'c'.repeat(64)).update(payload).digest('base64url');
    expect(sig).not.toBe(raw);
    expect(sig).toBe(createHmac('sha256', current).update(payload).digest('base64url'));
    expect(Buffer.from(sig, 'base64url')).toHaveLength(32);
  });

  it('should verify its own token and return the claims', () => {
    const c = claims();
    expect(verifyUploadToken(signUploadToken(c, current), [current], NOW)).toEqual({ ok: true, claims: c });
  });

  it('should refuse the token from its expiry instant on', () => {
    const token = signUploadToken(claims({ expiresAt: NOW + 60_000 }), current);
    expect(verifyUploadToken(token, [current], NOW + 59_999).ok).toBe(true);
    expect(verifyUploadToken(token, [current], NOW + 60_000)).toEqual({ ok: false, reason: 'expired' });
  });

  it('should refuse a tampered payload', () => {
    const token = signUploadToken(claims(), current);
    const [payload, sig] = token.slice(3).split('.');
    const other = Buffer.from(
      JSON.stringify({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), e: NOW + 10 ** 9 }),
    ).toString('base64url');
    expect(verifyUploadToken(`ut_${other}.${sig}`, [current], NOW)).toEqual({
      ok: false,
      reason: 'bad_signature',
    });
    expect(verifyUploadToken(`ut_${flip(payload, 10)}.${sig}`, [current], NOW).ok).toBe(false);
  });

  it('should refuse a tampered, truncated or extended signature', () => {
    const token = signUploadToken(claims(), current);
    const dot = token.indexOf('.');
    for (const bad of [
      flip(token, dot + 5),
      token.slice(0, -1),
      `${token}A`,
      token.slice(0, dot + 1) + 'A'.repeat(43),
    ]) {
      expect(verifyUploadToken(bad, [current], NOW)).toEqual({ ok: false, reason: 'bad_signature' });
    }
  });

  it('should refuse a token signed with another secret', () => {
    const token = signUploadToken(claims(), uploadTokenSigningKey('x'.repeat(64)));
    expect(verifyUploadToken(token, [current], NOW)).toEqual({ ok: false, reason: 'bad_signature' });
  });

  it('should accept a token signed with the previous secret until it expires', () => {
    const token = signUploadToken(claims({ expiresAt: NOW + 60_000 }), previous);
    expect(verifyUploadToken(token, [current], NOW).ok).toBe(false);
    expect(verifyUploadToken(token, [current, previous], NOW).ok).toBe(true);
    expect(verifyUploadToken(token, [current, previous], NOW + 60_000)).toEqual({
      ok: false,
      reason: 'expired',
    });
  });

  it('should refuse malformed tokens', () => {
    const good = signUploadToken(claims(), current);
    for (const bad of [
      '',
      'ut_',
      'ut_.',
      'ut_abc',
      'ut_a.b.c',
      `fxf_${good.slice(3)}`,
      `${good} `,
      good.replace('.', '..'),
    ]) {
      expect(verifyUploadToken(bad, [current], NOW)).toEqual({ ok: false, reason: expect.any(String) });
    }
  });

  it('should refuse a well-signed payload that is not the claims it should be', () => {
    const sign = (json: string): string => {
      const payload = Buffer.from(json).toString('base64url');
      return `ut_${payload}.${createHmac('sha256', current).update(payload).digest('base64url')}`;
    };
    const u = randomUUID();
    const k = randomUUID();
    for (const json of [
      'not json',
      'null',
      '[]',
      JSON.stringify({ u, k }),
      JSON.stringify({ u, k, e: 'soon' }),
      JSON.stringify({ u, k, e: 1.5 }),
      JSON.stringify({ u: 'x', k, e: NOW + 1000 }),
      JSON.stringify({ u, k: 7, e: NOW + 1000 }),
    ]) {
      expect(verifyUploadToken(sign(json), [current], NOW)).toEqual({ ok: false, reason: 'malformed' });
    }
    expect(verifyUploadToken(sign(JSON.stringify({ u, k, e: NOW + 1000 })), [current], NOW).ok).toBe(true);
  });
});

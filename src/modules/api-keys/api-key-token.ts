import { randomBytes } from 'node:crypto';
import { sha256Hex } from '../../common/crypto/sha256';

export const API_KEY_PATTERN = /^fxf_[0-9a-f]{64}$/;

/** `fxf_` + 64 lowercase hex from 32 CSPRNG bytes (API.md, Keys and tokens). */
export function mintApiKey(): { token: string; hash: string; prefix: string } {
  const token = `fxf_${randomBytes(32).toString('hex')}`;
  return { token, hash: hashToken(token), prefix: token.slice(0, 8) };
}

/** Keys are 256-bit random, so a plain SHA-256 (no salt, no stretching) is enough and allows an indexed lookup. */
export function hashToken(token: string): string {
  return sha256Hex(token);
}

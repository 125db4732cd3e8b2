import { createHmac, timingSafeEqual } from 'node:crypto';
import { isUuid } from '../../common/validation/uuid';
import { asciiLowerCase } from '../uploads/tags';

export const UPLOAD_TOKEN_PREFIX = 'ut_';
export const UPLOAD_TOKEN_PATTERN = /^ut_([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)$/;
export const UPLOAD_TOKEN_TTL = { min: 60, max: 604_800, default: 3600 } as const;

export const UPLOAD_TOKEN_TYPES = ['png', 'jpeg', 'gif', 'webp', 'avif'] as const;
export type UploadTokenType = (typeof UPLOAD_TOKEN_TYPES)[number];

/** Optional limits signed into a token (API.md Part 3); a token minted without them carries none. */
export interface UploadTokenConstraints {
  maxBytes?: number;
  allowedTypes?: UploadTokenType[];
  /** Forced onto every upload made with the token (added to the form's own tags). */
  tags?: string[];
  maxUploads?: number;
  /** Random id the max_uploads counter is kept under; present exactly when maxUploads is. */
  tokenId?: string;
}

/**
 * What a `ut_` token carries. On the wire: `{"u":userId,"k":keyId,"e":expiry in epoch ms}`, plus, only when set,
 * `"mb"` max_bytes, `"t"` allowed types, `"g"` tags, `"n"` max_uploads and `"j"` the token id. Tokens minted
 * before the constraints existed have none of these and still verify.
 */
export interface UploadTokenClaims extends UploadTokenConstraints {
  userId: string;
  keyId: string;
  /** Epoch milliseconds; the token is refused from this instant on. */
  expiresAt: number;
}

export type UploadTokenVerdict =
  | { ok: true; claims: UploadTokenClaims }
  | { ok: false; reason: 'malformed' | 'bad_signature' | 'expired' };

/**
 * The HMAC key for upload tokens, derived from a server secret: SECRET_KEY also keys CSRF tokens and delete links,
 * so each use gets its own key and a signature made for one purpose never verifies for another.
 */
export function uploadTokenSigningKey(secret: string): Buffer {
  return createHmac('sha256', secret).update('fixitfy:upload-token:v1').digest();
}

const mac = (key: Buffer, payload: string): string =>
  createHmac('sha256', key).update(payload).digest('base64url');

/** `ut_` + base64url(JSON payload beginning `{"u":"`) + `.` + base64url(HMAC-SHA256) (API.md, upload-token). */
export function signUploadToken(claims: UploadTokenClaims, key: Buffer): string {
  const payload = Buffer.from(
    JSON.stringify({
      u: claims.userId,
      k: claims.keyId,
      e: claims.expiresAt,
      mb: claims.maxBytes,
      t: claims.allowedTypes,
      g: claims.tags,
      n: claims.maxUploads,
      j: claims.tokenId,
    }),
  ).toString('base64url');
  return `${UPLOAD_TOKEN_PREFIX}${payload}.${mac(key, payload)}`;
}

/**
 * Checks the signature against each key in turn (the current secret, then the previous one during a rotation) with
 * a constant-time compare, then the expiry. The payload is parsed only once the signature holds.
 */
export function verifyUploadToken(token: string, keys: Buffer[], nowMs: number): UploadTokenVerdict {
  const match = UPLOAD_TOKEN_PATTERN.exec(token);
  if (!match) {
    return { ok: false, reason: 'malformed' };
  }
  const [, payload, signature] = match;
  const given = Buffer.from(signature);
  const signed = keys.some((key) => {
    const expected = Buffer.from(mac(key, payload));
    return expected.length === given.length && timingSafeEqual(expected, given);
  });
  if (!signed) {
    return { ok: false, reason: 'bad_signature' };
  }
  const claims = parseClaims(Buffer.from(payload, 'base64url').toString('utf8'));
  if (!claims) {
    return { ok: false, reason: 'malformed' };
  }
  if (nowMs >= claims.expiresAt) {
    return { ok: false, reason: 'expired' };
  }
  return { ok: true, claims };
}

function parseClaims(json: string): UploadTokenClaims | null {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    return null;
  }
  const { u, k, e, mb, t, g, n, j } = (raw ?? {}) as Record<string, unknown>;
  if (
    typeof u !== 'string' ||
    !isUuid(u) ||
    typeof k !== 'string' ||
    !isUuid(k) ||
    !Number.isSafeInteger(e)
  ) {
    return null;
  }
  const claims: UploadTokenClaims = { userId: u, keyId: k, expiresAt: e as number };
  const positive = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 1;
  const strings = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');
  if (mb !== undefined) {
    if (!positive(mb)) {
      return null;
    }
    claims.maxBytes = mb;
  }
  if (t !== undefined) {
    if (!strings(t) || !t.every((x) => (UPLOAD_TOKEN_TYPES as readonly string[]).includes(x))) {
      return null;
    }
    claims.allowedTypes = t as UploadTokenType[];
  }
  if (g !== undefined) {
    if (!strings(g)) {
      return null;
    }
    claims.tags = g;
  }
  if (n !== undefined || j !== undefined) {
    if (!positive(n) || typeof j !== 'string' || !isUuid(j)) {
      return null;
    }
    claims.maxUploads = n;
    claims.tokenId = j;
  }
  return claims;
}

/** Token tags as upload tags are: lower-cased, without repeats (the DTO checked their shape). */
export function normaliseTokenTags(tags: readonly string[]): string[] {
  return [...new Set(tags.map((t) => asciiLowerCase(t)))];
}

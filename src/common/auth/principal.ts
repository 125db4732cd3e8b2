import type { Scope } from './scopes';
import type { UserRole } from './user-role';

interface PrincipalBase {
  userId: string;
  email: string;
  role: UserRole;
}

/** An `fxf_` API key. */
export interface KeyPrincipal extends PrincipalBase {
  kind: 'key';
  keyId: string;
  keyPrefix: string;
  /** The key's label and creation time, read with it (GET /api/v1/me answers them without another query). */
  keyLabel: string;
  keyCreatedAt: Date;
  /** The key's request_count as last flushed to the database; seeds the Redis counter if Redis lost it. */
  storedRequestCount: number;
  scopes: Scope[];
  /** The key's default upload lifetime in seconds (null: never). */
  defaultExpiresIn: number | null;
}

/** A `ut_` upload token; it acts as (and counts against) its minting key. */
export interface UploadTokenPrincipal extends PrincipalBase {
  kind: 'upload_token';
  keyId: string;
  keyPrefix: string;
  keyLabel: string;
  keyCreatedAt: Date;
  storedRequestCount: number;
  /** The minting key's scopes. */
  scopes: Scope[];
  defaultExpiresIn: number | null;
  expiresAt: Date;
  /** The constraints signed into the token (API.md Part 3); empty for a token minted without any. */
  limits: UploadLimits;
}

/** What a constrained `ut_` token allows; every field optional. */
export interface UploadLimits {
  maxBytes?: number;
  /** Subset of png, jpeg, gif, webp, avif. */
  allowedTypes?: string[];
  /** Forced onto every upload. */
  tags?: string[];
  maxUploads?: number;
  /** The id its uses are counted under (with maxUploads). */
  tokenId?: string;
}

/** A dashboard session (cookie). */
export interface SessionPrincipal extends PrincipalBase {
  kind: 'session';
  sessionId: string;
  csrfToken: string;
}

/** Who is calling: produced by the auth guard from a bearer credential or a session cookie. */
export type Principal = KeyPrincipal | UploadTokenPrincipal | SessionPrincipal;

export type PrincipalKind = Principal['kind'];

/** The id rate limits and request counts are kept under: the key (a ut_ token counts as its minting key) or the user. */
export function limitSubject(p: Principal): string {
  return p.kind === 'session' ? `user:${p.userId}` : `key:${p.keyId}`;
}

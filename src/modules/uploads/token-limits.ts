import type { IncomingMessage } from 'node:http';
import type { Principal } from '../../common/auth/principal';
import { AppError } from '../../common/errors/app-error';
import { normaliseTags } from './tags';

/**
 * What a multipart body may carry besides the file and still be accepted: busboy's limits (10 fields of 4 KiB,
 * 20 parts of at most 50 header pairs) stay well under it. A body larger than the file limit plus this can only
 * hold a file over the limit (or be refused as malformed anyway), so it is refused before it is read.
 */
export const MULTIPART_OVERHEAD_BYTES = 1024 * 1024;

/** The largest file this upload may carry: the server's limit, lowered by a constrained ut_ token's max_bytes. */
export function maxFileBytes(principal: Principal, serverMax: number): number {
  const tokenMax = principal.kind === 'upload_token' ? principal.limits.maxBytes : undefined;
  return tokenMax === undefined ? serverMax : Math.min(tokenMax, serverMax);
}

/** The 413 for a file over a token's max_bytes (the server's own limit keeps the contract's sentence). */
export function tooLargeFor(principal: Principal, serverMax: number): AppError {
  const max = maxFileBytes(principal, serverMax);
  return max < serverMax
    ? new AppError('too_large', `The file is over this upload token's limit of ${max} bytes.`)
    : new AppError('too_large');
}

/** 413 before reading a byte when the declared Content-Length can't fit a file the token accepts. */
export function refuseByContentLength(req: IncomingMessage, principal: Principal, serverMax: number): void {
  const max = maxFileBytes(principal, serverMax);
  const declared = Number(req.headers['content-length']);
  if (max < serverMax && Number.isFinite(declared) && declared > max + MULTIPART_OVERHEAD_BYTES) {
    // The rest of the body is never read: the connection can't be reused.
    const err = tooLargeFor(principal, serverMax);
    throw new AppError('too_large', err.message, { headers: { Connection: 'close' } });
  }
}

/** 415 `unsupported_type` when a constrained token does not accept this type (`mime`: image/png, …). */
export function assertTypeAllowed(principal: Principal, mime: string): void {
  const allowed = principal.kind === 'upload_token' ? principal.limits.allowedTypes : undefined;
  if (allowed && !allowed.includes(mime.replace(/^image\//, ''))) {
    throw new AppError('unsupported_type', `This upload token accepts only ${allowed.join(', ')} images.`);
  }
}

/** The upload's tags plus the ones a constrained token forces onto it (at most 10 together, else 400). */
export function withTokenTags(principal: Principal, tags: string[]): string[] {
  const forced = principal.kind === 'upload_token' ? (principal.limits.tags ?? []) : [];
  return forced.length === 0 ? tags : normaliseTags([...tags, ...forced]);
}

import { asSentence, formatBytes } from '../lib/format';
import { ApiError } from './client';

/** The server's quota sentence names raw byte counts ("12345 bytes", "a 1048576-byte quota"): shown as "12 KB". */
function readableBytes(sentence: string): string {
  return sentence
    .replace(/(\d+)-byte quota/g, (_, n: string) => `${formatBytes(Number(n))} quota`)
    .replace(/(\d+) bytes/g, (_, n: string) => formatBytes(Number(n)));
}

/** Seconds as a person reads a wait: "45 seconds", "3 minutes", "2 hours". */
export function formatWait(seconds: number): string {
  const s = Math.max(1, Math.ceil(seconds));
  if (s < 90) {
    return `${s} second${s === 1 ? '' : 's'}`;
  }
  const m = Math.ceil(s / 60);
  if (m < 90) {
    return `${m} minutes`;
  }
  return `${Math.ceil(m / 60)} hours`;
}

export interface ErrorDetail {
  /** Retry-After of a 429 or 503, in seconds. */
  retryAfterSeconds?: number | null;
  /** The envelope's own sentence: used where it says more than the code (validation, conflicts, bans). */
  message?: string;
}

/**
 * An API error code (API.md's table) as the sentence a person reads. One table for the whole website, like
 * common/errors on the server.
 */
export function errorSentence(code: string, detail: ErrorDetail = {}): string {
  // The server's own sentence (validation messages start lower-case: "tag must be …").
  const message = detail.message ? asSentence(detail.message) : undefined;
  const wait = detail.retryAfterSeconds ? formatWait(detail.retryAfterSeconds) : null;
  switch (code) {
    case 'too_large':
      return 'This file is over 20 MB, the largest upload allowed.';
    case 'unsupported_type':
      return 'This file is not an image we accept: use PNG, JPEG, GIF, WebP or AVIF.';
    case 'nsfw_rejected':
      return 'This image was rejected by the automated content review.';
    case 'processing_failed':
      return 'This image could not be read: it is damaged, or larger than 16384 px on a side or 100 megapixels.';
    case 'missing_file':
    case 'empty_file':
      return 'This file is empty.';
    case 'quota_exceeded':
      // The envelope names the numbers (files or bytes used, the quota): keep them, readable.
      return detail.message
        ? `Storage quota reached: ${readableBytes(detail.message)}`
        : 'This upload would take your account past its storage quota. Delete some uploads first.';
    case 'rate_limit':
      return wait
        ? `Too many requests this minute. Try again in ${wait}.`
        : 'Too many requests this minute. Try again in a moment.';
    case 'rate_limit_day':
      return wait
        ? `The daily limit is used up. Try again in ${wait}.`
        : 'The daily limit is used up. Try again tomorrow.';
    case 'unauthorized':
      return 'You are signed out, or the key is not valid any more. Sign in again.';
    case 'banned':
      return message && message !== 'This account is banned.'
        ? message
        : 'This account is banned. Ask the administrator of this server why.';
    case 'forbidden':
      return message ?? 'You may not do this.';
    case 'not_found':
      return 'It is not there any more: it was deleted, or it is not yours.';
    case 'conflict':
    case 'bad_request':
      return message ?? 'The server could not accept this request.';
    case 'method_not_allowed':
      return 'This action is not allowed here.';
    case 'header_too_large':
      return 'The request was too large for the server.';
    case 'storage_failed':
    case 'db_failed':
    case 'internal':
      return 'The server failed to do this. Nothing was saved; try again in a moment.';
    case 'unavailable':
      return wait
        ? `The server is busy. Try again in ${wait}.`
        : 'The server is busy or a part of it is down. Try again in a moment.';
    case 'network':
      return 'The server could not be reached. Check your connection and try again.';
    default:
      return message ?? 'Something went wrong. Try again.';
  }
}

/** The sentence for anything a call threw. */
export function sentenceFor(err: unknown): string {
  if (err instanceof ApiError) {
    return errorSentence(err.code, { retryAfterSeconds: err.retryAfterSeconds, message: err.message });
  }
  return errorSentence('internal');
}

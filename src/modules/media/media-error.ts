/**
 * The API.md codes a media failure can end in. The HTTP layer maps a MediaError one to one onto
 * `AppError(code, message, { cause })`; media/ stays free of common/ and Nest.
 */
export type MediaErrorCode = 'bad_request' | 'processing_failed' | 'unavailable';

/** A failure of the pure media functions: a contract code and a sentence a client may read. */
export class MediaError extends Error {
  constructor(
    readonly code: MediaErrorCode,
    message: string,
    options: { cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = 'MediaError';
  }
}

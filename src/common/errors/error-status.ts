/** The error codes of API.md, "Error codes", with their HTTP status. The one place that maps code → status. */
export const ERROR_STATUS = {
  unauthorized: 401,
  banned: 403,
  forbidden: 403,
  missing_file: 400,
  empty_file: 400,
  bad_request: 400,
  not_found: 404,
  method_not_allowed: 405,
  too_large: 413,
  range_not_satisfiable: 416,
  unsupported_type: 415,
  nsfw_rejected: 415,
  processing_failed: 415,
  rate_limit: 429,
  rate_limit_day: 429,
  conflict: 409,
  quota_exceeded: 413,
  header_too_large: 431,
  storage_failed: 500,
  db_failed: 500,
  unavailable: 503,
  internal: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export const ERROR_CODES = Object.keys(ERROR_STATUS) as ErrorCode[];

/** The default human sentence per code, used when a throw site has nothing more specific to say. */
export const DEFAULT_MESSAGES: Record<ErrorCode, string> = {
  unauthorized: 'Missing or invalid credentials.',
  banned: 'This account is banned.',
  forbidden: 'This credential may not do this.',
  missing_file: 'The multipart request has no "file" part.',
  empty_file: 'The "file" part is empty.',
  bad_request: 'The request is malformed.',
  not_found: 'Not found.',
  method_not_allowed: 'This method is not allowed on this resource.',
  too_large: 'The file is over the 20 MB limit.',
  range_not_satisfiable: 'The requested range is not satisfiable.',
  unsupported_type: 'The file is not a PNG, JPEG, GIF, WebP or AVIF image.',
  nsfw_rejected: 'Explicit content detected. This image cannot be hosted.',
  processing_failed: 'The image is corrupt, could not be decoded, or exceeds the pixel limits.',
  rate_limit: 'Too many requests this minute for this key. Retry after the time in Retry-After.',
  rate_limit_day: 'Too many uploads today for this key. Retry after the time in Retry-After.',
  conflict: 'The request conflicts with the current state.',
  quota_exceeded: 'The upload would take you past your storage quota.',
  header_too_large: 'The request headers or URL are too large.',
  storage_failed: 'The file could not be stored; nothing was recorded. Retry with backoff.',
  db_failed: 'The database failed; nothing was recorded. Retry with backoff.',
  unavailable: 'A dependency is unavailable. Retry with backoff.',
  internal: 'An unexpected error occurred.',
};

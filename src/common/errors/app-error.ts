import { DEFAULT_MESSAGES, ERROR_STATUS, type ErrorCode } from './error-status';

export interface AppErrorOptions {
  /** Validation details, rendered as `details`. */
  details?: unknown[];
  /** Headers to send with the error (Retry-After, Allow, …). */
  headers?: Record<string, string>;
  /** The underlying failure, for the log only; never sent to the client. */
  cause?: unknown;
}

/** The only error services throw: a contract code, a human sentence, optional details and headers. */
export class AppError extends Error {
  readonly status: number;
  readonly details?: unknown[];
  readonly headers?: Record<string, string>;

  constructor(
    readonly code: ErrorCode,
    message?: string,
    options: AppErrorOptions = {},
  ) {
    super(message ?? DEFAULT_MESSAGES[code], { cause: options.cause });
    this.name = 'AppError';
    this.status = ERROR_STATUS[code];
    this.details = options.details;
    this.headers = options.headers;
  }
}

export type { ErrorCode };

import {
  type ArgumentsHost,
  Catch,
  type ExceptionFilter,
  HttpException,
  HttpStatus,
  Logger,
} from '@nestjs/common';
import { DriverException, UniqueConstraintViolationException } from '@mikro-orm/core';
import type { Request, Response } from 'express';
import { ERROR_CODE_LOCAL } from '../logging/logger-options';
import { AppError } from './app-error';
import { DEFAULT_MESSAGES, ERROR_STATUS, type ErrorCode } from './error-status';

interface BodyParserError {
  type?: string;
  status?: number;
  expose?: boolean;
}

const HTTP_STATUS_CODES: Partial<Record<number, ErrorCode>> = {
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  409: 'conflict',
  413: 'too_large',
  415: 'unsupported_type',
  429: 'rate_limit',
  503: 'unavailable',
};

/** Turns any thrown value into an AppError with the contract's code; never leaks a message that wasn't ours. */
export function toAppError(exception: unknown): { error: AppError; unexpected: boolean } {
  if (exception instanceof AppError) {
    return { error: exception, unexpected: false };
  }
  if (exception instanceof UniqueConstraintViolationException) {
    return { error: new AppError('conflict'), unexpected: false };
  }
  if (exception instanceof DriverException) {
    return { error: new AppError('db_failed'), unexpected: true };
  }
  if (exception instanceof HttpException) {
    const status = exception.getStatus();
    const code = HTTP_STATUS_CODES[status];
    if (code) {
      return {
        error: new AppError(code, status === 404 ? 'No such resource.' : DEFAULT_MESSAGES[code]),
        unexpected: false,
      };
    }
    return { error: new AppError(status >= 500 ? 'internal' : 'bad_request'), unexpected: status >= 500 };
  }
  // body-parser errors carry a `type` (nestjs/nest#5191: Nest would render them as 500).
  const bp = exception as BodyParserError | null;
  if (bp && typeof bp === 'object' && typeof bp.type === 'string' && typeof bp.status === 'number') {
    if (bp.type === 'entity.too.large') {
      return { error: new AppError('too_large', 'The request body is too large.'), unexpected: false };
    }
    if (bp.status < 500) {
      return { error: new AppError('bad_request'), unexpected: false };
    }
  }
  return { error: new AppError('internal'), unexpected: true };
}

/** The one filter: every failure leaves as `{ ok: false, code, error }` with the status API.md gives the code. */
@Catch()
export class AllExceptionsFilter implements ExceptionFilter {
  private readonly logger = new Logger('Errors');

  catch(exception: unknown, host: ArgumentsHost): void {
    const ctx = host.switchToHttp();
    const res = ctx.getResponse<Response>();
    const req = ctx.getRequest<Request>();
    const mapped = toAppError(exception);
    const unexpected = mapped.unexpected;
    let error = mapped.error;
    if (!(exception instanceof AppError) && error.code === 'bad_request' && req.is('application/json')) {
      // Nest turns body-parser's SyntaxError into a bare BadRequestException (routes-resolver mapExternalException).
      error = new AppError('bad_request', 'The request body is not valid JSON.');
    }
    if (unexpected) {
      const requestId = res.getHeader('x-request-id');
      this.logger.error({ err: exception, requestId, path: req.path }, `Unexpected error (${error.code})`);
    }
    if (res.headersSent) {
      // The answer already started (a streamed image): all we can do is cut it.
      res.destroy();
      return;
    }
    for (const [name, value] of Object.entries(error.headers ?? {})) {
      res.setHeader(name, value);
    }
    res.locals[ERROR_CODE_LOCAL] = error.code; // the request's log line carries it
    const body: Record<string, unknown> = { ok: false, code: error.code, error: error.message };
    if (error.details && error.details.length > 0) {
      body.details = error.details;
    }
    res.status(ERROR_STATUS[error.code] ?? HttpStatus.INTERNAL_SERVER_ERROR).json(body);
  }
}

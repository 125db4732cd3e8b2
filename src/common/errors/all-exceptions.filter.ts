import {
  type ArgumentsHost,
  Catch,
  type ExceptionFilter,
  HttpException,
  HttpStatus,
  Logger,
  NotFoundException,
} from '@nestjs/common';
import { UniqueConstraintViolationException } from '@mikro-orm/core';
import type { Request, Response } from 'express';
import type { ServerResponse } from 'node:http';
import { allowedMethods } from '../http/allowed-methods';
import { JSON_TOO_DEEP_MESSAGE } from '../http/json-depth';
import { ERROR_CODE_LOCAL } from '../logging/logger-options';
import { AppError } from './app-error';
import {
  DEPENDENCY_RETRY_AFTER_SECONDS,
  isDatabaseFailure,
  isPostgresError,
  isRedisFailure,
} from './dependency-failure';
import { DEFAULT_MESSAGES, ERROR_STATUS, type ErrorCode } from './error-status';

interface BodyParserError {
  type?: string;
  status?: number;
  expose?: boolean;
  /** zlib's, on a body that does not decompress as its Content-Encoding says (Z_DATA_ERROR, a brotli ERR_…). */
  code?: string;
  errno?: number;
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
  if (
    exception instanceof UniqueConstraintViolationException ||
    (isPostgresError(exception) && exception.code === '23505')
  ) {
    return { error: new AppError('conflict'), unexpected: false };
  }
  // Redis first: a bare socket error that reaches us comes from pg, while ioredis reports its own failures.
  if (isRedisFailure(exception)) {
    return { error: new AppError('unavailable'), unexpected: true };
  }
  // PostgreSQL down or cut is `db_failed` (500, Retry-After) like any other database failure, never `internal`.
  if (isDatabaseFailure(exception)) {
    return { error: new AppError('db_failed'), unexpected: true };
  }
  if (exception instanceof HttpException) {
    const status = exception.getStatus();
    if (status === 400 && exception.message === JSON_TOO_DEEP_MESSAGE) {
      // refuseDeepJson's error, which Nest re-wraps as an HttpException with its (our) message.
      return { error: new AppError('bad_request', JSON_TOO_DEEP_MESSAGE), unexpected: false };
    }
    const code = HTTP_STATUS_CODES[status];
    if (code) {
      return {
        error: new AppError(code, status === 404 ? 'No such resource.' : DEFAULT_MESSAGES[code]),
        unexpected: false,
      };
    }
    return { error: new AppError(status >= 500 ? 'internal' : 'bad_request'), unexpected: status >= 500 };
  }
  // body-parser's errors (nestjs/nest#5191: Nest would render them as 500) are http-errors: a `status`, and mostly a
  // `type`; a body that does not decompress as its Content-Encoding says is zlib's own error with only a status.
  const bp = exception as BodyParserError | null;
  if (bp && typeof bp === 'object' && typeof bp.status === 'number' && bp.status >= 400 && bp.status < 500) {
    if (bp.type === 'entity.too.large') {
      return { error: new AppError('too_large', 'The request body is too large.'), unexpected: false };
    }
    if (bp.type === 'entity.too.deep') {
      return { error: new AppError('bad_request', JSON_TOO_DEEP_MESSAGE), unexpected: false };
    }
    if (bp.type === 'encoding.unsupported') {
      const message =
        'The request body has a Content-Encoding this server does not read (gzip, deflate or br).';
      return { error: new AppError('bad_request', message), unexpected: false };
    }
    if (typeof bp.code === 'string' && typeof bp.errno === 'number') {
      const message = 'The request body does not decompress as its Content-Encoding says.';
      return { error: new AppError('bad_request', message), unexpected: false };
    }
    if (typeof bp.type === 'string' || bp.expose === true) {
      return { error: new AppError('bad_request'), unexpected: false };
    }
  }
  return { error: new AppError('internal'), unexpected: true };
}

/** Where an error answer goes: Express's response, or a bare one (the read fast path, in front of Express). */
type AnswerTarget = ServerResponse & { locals?: Record<string, unknown> };

/**
 * The contract's error envelope for `exception`, written on `res`: `{ ok: false, code, error }` with the status
 * API.md gives the code, Cache-Control: no-store, and Retry-After on a dependency failure. An unexpected failure is
 * logged (with the request's id), never told. `bodyIsJson` says the request carried a JSON body (Nest reports
 * body-parser's SyntaxError as a bare 400).
 */
export function writeErrorAnswer(
  res: AnswerTarget,
  exception: unknown,
  context: { path: string; bodyIsJson: boolean; logger: Logger },
): void {
  const mapped = toAppError(exception);
  let error = mapped.error;
  if (
    !(exception instanceof AppError) &&
    error.code === 'bad_request' &&
    error.message === DEFAULT_MESSAGES.bad_request &&
    context.bodyIsJson
  ) {
    // Nest turns body-parser's SyntaxError into a bare BadRequestException (routes-resolver mapExternalException).
    error = new AppError('bad_request', 'The request body is not valid JSON.');
  }
  if (mapped.unexpected) {
    const requestId = res.getHeader('x-request-id');
    context.logger.error(
      { err: exception, requestId, path: context.path },
      `Unexpected error (${error.code})`,
    );
  }
  if (res.headersSent) {
    // The answer already started (a streamed image): all we can do is cut it.
    res.destroy();
    return;
  }
  // Whatever a handler set for the representation it meant to send does not describe this error.
  for (const name of ['ETag', 'Last-Modified', 'Content-Length', 'Content-Range', 'Content-Disposition']) {
    res.removeHeader(name);
  }
  for (const [name, value] of Object.entries(error.headers ?? {})) {
    res.setHeader(name, value);
  }
  if ((error.code === 'db_failed' || error.code === 'unavailable') && !res.hasHeader('Retry-After')) {
    // A dependency failed: tell the client it is worth retrying, and when.
    res.setHeader('Retry-After', String(DEPENDENCY_RETRY_AFTER_SECONDS));
  }
  // An error is never a cacheable representation (a CDN must not keep a 404 or 503 in place of an image).
  res.setHeader('Cache-Control', 'no-store');
  (res.locals ??= {})[ERROR_CODE_LOCAL] = error.code; // the request's log line carries it
  const body: Record<string, unknown> = { ok: false, code: error.code, error: error.message };
  if (error.details && error.details.length > 0) {
    body.details = error.details;
  }
  // Written with end(), not json(): Express would add a (weak) ETag, and an error has no validator to revalidate.
  const payload = JSON.stringify(body);
  res.statusCode = ERROR_STATUS[error.code] ?? HttpStatus.INTERNAL_SERVER_ERROR;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', String(Buffer.byteLength(payload)));
  res.end(payload);
}

/**
 * A request no route took, to a path that routes do take with other methods: 405 `method_not_allowed` with `Allow`
 * (API.md: "a method the resource does not take"), not the router's 404. Null for any other failure.
 */
function wrongMethod(exception: unknown, req: Request): AppError | null {
  // The router's own 404 (Nest's not-found handler), not a handler's NotFoundException.
  if (!(exception instanceof NotFoundException) || !exception.message.startsWith(`Cannot ${req.method} `)) {
    return null;
  }
  const allow = allowedMethods(req.app as unknown as Parameters<typeof allowedMethods>[0], req.path);
  if (allow.length === 0) {
    return null;
  }
  return new AppError('method_not_allowed', `This resource takes ${allow.join(', ')}.`, {
    headers: { Allow: allow.join(', ') },
  });
}

/** The one filter: every failure leaves as `{ ok: false, code, error }` with the status API.md gives the code. */
@Catch()
export class AllExceptionsFilter implements ExceptionFilter {
  private readonly logger = new Logger('Errors');

  catch(exception: unknown, host: ArgumentsHost): void {
    const ctx = host.switchToHttp();
    const req = ctx.getRequest<Request>();
    writeErrorAnswer(ctx.getResponse<Response>(), wrongMethod(exception, req) ?? exception, {
      path: req.path,
      bodyIsJson: !!req.is('application/json'),
      logger: this.logger,
    });
  }
}

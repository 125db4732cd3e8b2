import { applyDecorators } from '@nestjs/common';
import { ApiExtraModels, ApiProperty, ApiResponse, getSchemaPath } from '@nestjs/swagger';
import type { HeaderObject, ResponseObject } from '@nestjs/swagger/dist/interfaces/open-api-spec.interface';
import { JSON_BODY_LIMIT_KB } from '../http/request-body';
import { SAFE_ID } from '../http/request-id';
import { MAX_DETAILS } from '../validation/validation.pipe';
import { ERROR_CODES, ERROR_STATUS, type ErrorCode } from './error-status';

/** One entry of a 400's `details` (common/validation/validation.pipe.ts). */
export class ValidationDetail {
  @ApiProperty({ description: 'The field, a dotted path for a nested one.', example: 'scopes.0' })
  field!: string;

  @ApiProperty({ description: 'What is wrong with it.', example: 'each value in scopes must be one of …' })
  message!: string;
}

/** The error envelope, for the OpenAPI document. */
export class ErrorResponse {
  @ApiProperty({ type: Boolean, example: false, description: 'Always false on an error.' })
  ok!: false;

  @ApiProperty({ enum: ERROR_CODES, example: 'bad_request' })
  code!: ErrorCode;

  @ApiProperty({
    description: 'A human sentence; never a stack trace, SQL or path.',
    example: 'The request is malformed.',
  })
  error!: string;

  @ApiProperty({
    required: false,
    type: [ValidationDetail],
    maxItems: MAX_DETAILS,
    description: `Validation details (a 400 for a request field): one entry per problem, at most ${MAX_DETAILS}.`,
  })
  details?: ValidationDetail[];
}

/** The envelope as a response for these codes: what ApiErrorResponses documents per status. */
export function errorEnvelopeResponse(codes: readonly ErrorCode[]): ResponseObject {
  return {
    // JSON whatever the route's own answer is (@ApiProduces: the curl snippet is a shell script).
    content: { 'application/json': { schema: { $ref: getSchemaPath(ErrorResponse) } } },
    description: `Error envelope with code ${codes.map((c) => '`' + c + '`').join(' or ')}.`,
  };
}

/**
 * Documents the envelope for each listed code, grouped by status; with `internal` and `db_failed` (500), which every
 * route that reads or writes PostgreSQL can answer (an API key or a session is looked up there).
 */
export function ApiErrorResponses(...codes: ErrorCode[]): MethodDecorator & ClassDecorator {
  return errorResponses([...codes, 'internal', 'db_failed']);
}

/** ApiErrorResponses for a route that never touches PostgreSQL (its 500 is `internal` only). */
export function ApiErrorResponsesWithoutDatabase(...codes: ErrorCode[]): MethodDecorator & ClassDecorator {
  return errorResponses([...codes, 'internal']);
}

function errorResponses(codes: readonly ErrorCode[]): MethodDecorator & ClassDecorator {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of new Set<ErrorCode>(codes)) {
    const status = ERROR_STATUS[code];
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  return applyDecorators(
    ApiExtraModels(ErrorResponse),
    ...[...byStatus.entries()].map(([status, list]) =>
      ApiResponse({ status, ...errorEnvelopeResponse(list) }),
    ),
  );
}

/** The X-Request-Id every answer carries (common/http/request-id.ts), for components.headers. */
export const REQUEST_ID_HEADER: HeaderObject = {
  description:
    "The request's id in the service's log: the caller's own X-Request-Id when it is 1–64 characters of " +
    'A–Z a–z 0–9 . _ -, else a new UUID. Quote it when reporting a fault.',
  required: true,
  schema: { type: 'string', pattern: SAFE_ID.source },
};

/** The Retry-After of a dependency failure (`db_failed`, `unavailable`), for components.headers. */
export const RETRY_AFTER_HEADER: HeaderObject = {
  description: 'With `db_failed` or `unavailable` (a dependency failed): seconds to wait before retrying.',
  schema: { type: 'integer', minimum: 1 },
};

/** The codes whose answers carry Retry-After (AllExceptionsFilter). */
export const RETRY_AFTER_CODES: readonly ErrorCode[] = ['db_failed', 'unavailable'];

/** An error answer shared by many operations (components.responses), and the codes it carries (one status). */
export interface SharedErrorResponse {
  codes: readonly ErrorCode[];
  /** Said after the envelope's own sentence. */
  detail: string;
  /** Documented on every operation: any request can get it, whatever its route. */
  anyRoute: boolean;
  headers?: Record<string, HeaderObject>;
}

/**
 * The one-code error answers, by their components.responses name. An operation's own answer for one of these codes
 * becomes a reference; the `anyRoute` ones are added to every operation (the body is read, and headers parsed, before
 * any route is chosen). 404 and 405 are not: a documented operation answers 404 only for a resource its path names,
 * and a method its path does not take is no operation of the document (the info description says what it gets).
 */
export const SHARED_ERROR_RESPONSES: Record<string, SharedErrorResponse> = {
  BadRequest: {
    codes: ['bad_request'],
    detail:
      'A malformed request: a body that is not JSON (or not valid JSON, too deeply nested, or in a Content-Encoding ' +
      'the service does not read), invalid HTTP framing, or a query, path or body field the operation refuses.',
    anyRoute: true,
  },
  Unauthorized: {
    codes: ['unauthorized'],
    detail:
      'Credentials missing or not accepted: a malformed, unknown, revoked or expired key, upload token or session, ' +
      "or a sign-in's wrong email or password.",
    anyRoute: false,
  },
  NotFound: { codes: ['not_found'], detail: 'No such resource, or not yours, or deleted.', anyRoute: false },
  MethodNotAllowed: {
    codes: ['method_not_allowed'],
    detail: 'A method the resource does not take; `Allow` lists those it does.',
    anyRoute: false,
    headers: {
      Allow: { description: 'The methods the path takes, e.g. `DELETE, POST`.', schema: { type: 'string' } },
    },
  },
  TooLarge: {
    codes: ['too_large'],
    detail: `A JSON request body over ${JSON_BODY_LIMIT_KB} KB.`,
    anyRoute: true,
  },
  HeaderTooLarge: {
    codes: ['header_too_large'],
    detail: "Request headers or URL too large, answered by the HTTP layer before any route (Node's limit).",
    anyRoute: true,
  },
  Internal: {
    codes: ['internal', 'db_failed'],
    detail:
      '`internal`: an unexpected fault, logged with the request id (`X-Request-Id`). `db_failed`: the database ' +
      'failed; nothing half-written remains; retry after `Retry-After` seconds.',
    anyRoute: true,
  },
};

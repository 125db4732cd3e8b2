import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, type OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import type {
  OperationObject,
  ParameterObject,
  ReferenceObject,
  ResponseObject,
  ResponsesObject,
  SchemaObject,
} from '@nestjs/swagger/dist/interfaces/open-api-spec.interface';
import { isDeepStrictEqual } from 'node:util';
import { SESSION_COOKIE } from './common/auth/authenticators';
import {
  ErrorResponse,
  errorEnvelopeResponse,
  REQUEST_ID_HEADER,
  RETRY_AFTER_CODES,
  RETRY_AFTER_HEADER,
  SHARED_ERROR_RESPONSES,
} from './common/errors/error-response';
import { ERROR_STATUS } from './common/errors/error-status';
import { AppConfig } from './config/app-config';

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;
/** The session cookie needs X-CSRF-Token on every other method (the AuthGuard's SAFE_METHODS). */
const SAFE_METHODS = new Set<string>(['get', 'head', 'options']);

const CSRF_HEADER: ParameterObject = {
  name: 'X-CSRF-Token',
  in: 'header',
  required: false,
  description:
    'Required with the session cookie (the `csrf_token` of GET /api/v1/auth/session); not with a bearer.',
  schema: { type: 'string' },
};

const REQUEST_ID_REF: ReferenceObject = { $ref: '#/components/headers/X-Request-Id' };
const RETRY_AFTER_REF: ReferenceObject = { $ref: '#/components/headers/Retry-After' };
const ETAG_REF: ReferenceObject = { $ref: '#/components/headers/ETag' };

/** The OpenAPI document, generated from the controllers and DTOs. */
export function buildOpenApi(
  app: INestApplication,
  publicUrl: string = app.get(AppConfig).publicUrl,
): OpenAPIObject {
  const config = new DocumentBuilder()
    .setTitle('Fixitfy Upload')
    .setDescription(
      'Self-hosted image host. Every error is `{ ok: false, code, error }` with the status of its code; ' +
        'every response carries `X-Request-Id`. Besides what each operation lists, a path no operation has ' +
        'answers 404 `not_found`, and a method a path does not take 405 `method_not_allowed` with `Allow` ' +
        '(components.responses NotFound and MethodNotAllowed).',
    )
    .setVersion('1')
    .setLicense('MIT', 'https://opensource.org/license/mit')
    .addServer(publicUrl)
    // Opaque tokens, not JWTs (DocumentBuilder would say "JWT").
    .addBearerAuth(
      {
        type: 'http',
        scheme: 'bearer',
        bearerFormat: 'fxf_ API key',
        description: 'An API key: `fxf_` + 64 hex.',
      },
      'apiKey',
    )
    .addBearerAuth(
      {
        type: 'http',
        scheme: 'bearer',
        bearerFormat: 'ut_ upload token',
        description: 'A temporary upload token `ut_…` (POST /api/v1/upload only).',
      },
      'uploadToken',
    )
    .addCookieAuth(
      SESSION_COOKIE,
      {
        type: 'apiKey',
        in: 'cookie',
        name: SESSION_COOKIE,
        // A page cannot set a Cookie header: pasting a value into Authorize sends nothing.
        description:
          'The browser session. In this page: run POST /api/v1/auth/login (the browser keeps the httpOnly cookie), ' +
          'then GET /api/v1/auth/session and copy its `csrf_token` into the X-CSRF-Token field of each ' +
          'state-changing call. A value pasted here is not sent (browsers do not let a page set cookies).',
      },
      'session',
    )
    .build();
  const document = SwaggerModule.createDocument(app, config, { extraModels: [ErrorResponse] });
  for (const schema of Object.values(document.components?.schemas ?? {})) {
    nullableProperties(schema);
  }
  for (const [path, item] of Object.entries(document.paths)) {
    for (const method of METHODS) {
      const operation = item[method];
      if (operation) {
        completeOperation(method, operation);
        if (method === 'get') {
          documentConditionalGet(path, operation);
        }
        operation.responses = shareResponses(operation.responses);
      }
    }
  }
  document.components = {
    ...document.components,
    responses: sharedResponses(document),
    headers: {
      'X-Request-Id': REQUEST_ID_HEADER,
      'Retry-After': RETRY_AFTER_HEADER,
      ETag: {
        description:
          "A weak validator of the answer's body: send it as `If-None-Match` to get 304 while it is unchanged.",
        schema: { type: 'string' },
      },
    },
  };
  return document;
}

/**
 * Every answer's X-Request-Id, by reference to components.headers; the one-code error answers many operations give
 * (404, 500, …) by reference to components.responses, which declare the header once; and the error answers any
 * route can give (400, 413, 431, 500) added where an operation does not list them. No `default` response: every
 * status an operation answers is listed, and a `default` envelope would also claim the bodiless answers left out
 * (a 304 to a conditional GET).
 */
function shareResponses(responses: ResponsesObject): ResponsesObject {
  const out: ResponsesObject = {};
  for (const [status, response] of Object.entries(responses)) {
    const shared = Object.entries(SHARED_ERROR_RESPONSES).find(
      ([, { codes }]) =>
        String(ERROR_STATUS[codes[0]]) === status &&
        isDeepStrictEqual(response, errorEnvelopeResponse(codes)),
    );
    out[status] = shared
      ? { $ref: `#/components/responses/${shared[0]}` }
      : withRequestId(response as ResponseObject);
  }
  for (const [name, { codes, anyRoute }] of Object.entries(SHARED_ERROR_RESPONSES)) {
    if (anyRoute) {
      out[ERROR_STATUS[codes[0]]] ??= { $ref: `#/components/responses/${name}` };
    }
  }
  return out;
}

/** Its X-Request-Id, and Retry-After when it names a code that carries one (`db_failed`, `unavailable`). */
function withRequestId(response: ResponseObject): ResponseObject {
  const retry = RETRY_AFTER_CODES.some((code) => response.description.includes(`\`${code}\``));
  return {
    ...response,
    headers: {
      ...response.headers,
      ...(retry ? { 'Retry-After': RETRY_AFTER_REF } : {}),
      'X-Request-Id': REQUEST_ID_REF,
    },
  };
}

/** components.responses: the shared error answers some operation refers to (an unused component is a lint warning). */
function sharedResponses(document: OpenAPIObject): Record<string, ResponseObject> {
  const text = JSON.stringify(document.paths);
  const out: Record<string, ResponseObject> = {};
  for (const [name, { codes, detail, headers }] of Object.entries(SHARED_ERROR_RESPONSES)) {
    if (text.includes(`"#/components/responses/${name}"`)) {
      const envelope = errorEnvelopeResponse(codes);
      out[name] = withRequestId({ ...envelope, description: `${envelope.description} ${detail}`, headers });
    }
  }
  return out;
}

/**
 * What OpenAPI 3.0 validators (Ajv's `nullable` mode, response validators, strict generators) need to accept a
 * property's null. `@ApiProperty({ type: Dto, nullable: true })` comes out as `$ref` or `allOf: [$ref]` beside
 * `nullable`, which 3.0.3 ignores (`nullable` applies to its own schema's `type`, and the referenced object refuses
 * null): it becomes `anyOf: [$ref, null]`. A nullable `enum` must list null among its values.
 */
function nullableProperties(schema: SchemaObject | ReferenceObject): void {
  if ('$ref' in schema || !schema.properties) {
    return;
  }
  for (const [name, property] of Object.entries(schema.properties)) {
    const { $ref, allOf, ...rest } = property as ReferenceObject & SchemaObject;
    if (!rest.nullable) {
      continue;
    }
    const target = $ref ?? (allOf?.length === 1 && '$ref' in allOf[0] ? allOf[0].$ref : undefined);
    if (target !== undefined) {
      const { nullable, type, ...described } = rest;
      void nullable;
      void type;
      schema.properties[name] = {
        ...described,
        // 3.0's way to say "null" alone: a nullable type whose only value is null (the type is required beside
        // `nullable`; `string` rather than `object`, which openapi-typescript renders as `never | null`).
        anyOf: [{ $ref: target }, { type: 'string', nullable: true, enum: [null] }],
      };
    } else if (rest.enum && !rest.enum.includes(null)) {
      const values: unknown[] = rest.enum;
      schema.properties[name] = { ...property, enum: [...values, null] };
    } else if ((rest.oneOf ?? rest.anyOf) && rest.type === undefined) {
      schema.properties[name] = { ...property, type: 'object' };
    }
  }
}

/**
 * What the decorators can't say per operation: @Public routes (no security requirement) say `security: []`
 * explicitly, and X-CSRF-Token is declared only where the session needs it (state-changing methods).
 */
/** The paths whose GET documents its own conditional answers (direct links), or never repeats one (ShareX: a new key). */
const OWN_CONDITIONALS = new Set(['/images/{filename}', '/api/v1/clients/sharex']);

/**
 * A GET's answer with a body carries Express's ETag (a weak validator of the body; the read fast path sets the same),
 * and the same request with it as `If-None-Match` answers 304 while the answer is unchanged: a client that polls
 * (a listing, /me) can save the body.
 */
function documentConditionalGet(path: string, operation: OperationObject): void {
  const ok = operation.responses['200'] as ResponseObject | undefined;
  if (OWN_CONDITIONALS.has(path) || !ok?.content || operation.responses['304']) {
    return;
  }
  ok.headers = { ...ok.headers, ETag: ETAG_REF };
  operation.responses['304'] = {
    description:
      "Not Modified: the answer is the one the request's `If-None-Match` names (its `ETag`); no body.",
    headers: { ETag: ETAG_REF },
  };
}

function completeOperation(method: string, operation: OperationObject): void {
  operation.security ??= [];
  const session = operation.security.some((requirement) => 'session' in requirement);
  if (session && !SAFE_METHODS.has(method)) {
    operation.parameters = [...(operation.parameters ?? []), CSRF_HEADER];
  }
}

export function setupSwagger(app: INestApplication): void {
  // A factory: the document is built on the first /docs request, not during start-up (issue 14, goal 6).
  SwaggerModule.setup('docs', app, () => buildOpenApi(app), {
    jsonDocumentUrl: 'docs/openapi.json',
    yamlDocumentUrl: 'docs/openapi.yaml',
    customSiteTitle: 'Fixitfy Upload API',
  });
}

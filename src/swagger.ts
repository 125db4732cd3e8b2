import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, type OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import type {
  OperationObject,
  ParameterObject,
  ReferenceObject,
  SchemaObject,
} from '@nestjs/swagger/dist/interfaces/open-api-spec.interface';
import { SESSION_COOKIE } from './common/auth/authenticators';
import { ErrorResponse } from './common/errors/error-response';
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

/** The OpenAPI document, generated from the controllers and DTOs. */
export function buildOpenApi(
  app: INestApplication,
  publicUrl: string = app.get(AppConfig).publicUrl,
): OpenAPIObject {
  const config = new DocumentBuilder()
    .setTitle('Fixitfy Upload')
    .setDescription(
      'Self-hosted image host. Every error is `{ ok: false, code, error }` with the status of its code; ' +
        'every response carries `X-Request-Id`.',
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
    .addCookieAuth(SESSION_COOKIE, { type: 'apiKey', in: 'cookie', name: SESSION_COOKIE }, 'session')
    .build();
  const document = SwaggerModule.createDocument(app, config, { extraModels: [ErrorResponse] });
  for (const schema of Object.values(document.components?.schemas ?? {})) {
    nullableRefsToAllOf(schema);
  }
  for (const item of Object.values(document.paths)) {
    for (const method of METHODS) {
      const operation = item[method];
      if (operation) {
        completeOperation(method, operation);
      }
    }
  }
  return document;
}

/**
 * `@ApiProperty({ type: Dto, nullable: true })` comes out as `{ allOf: [$ref], nullable: true }` (or a bare
 * `$ref` beside `nullable`): in OpenAPI 3.0 `nullable` needs a `type` beside it, which Nest drops next to
 * `allOf`, so it is added here rather than in the DTOs.
 */
function nullableRefsToAllOf(schema: SchemaObject | ReferenceObject): void {
  if ('$ref' in schema || !schema.properties) {
    return;
  }
  for (const [name, property] of Object.entries(schema.properties)) {
    const { $ref, ...rest } = property as ReferenceObject & SchemaObject;
    if (!rest.nullable || rest.type !== undefined) {
      continue;
    }
    if ($ref !== undefined) {
      schema.properties[name] = { ...rest, type: 'object', allOf: [{ $ref }] };
    } else if (rest.allOf ?? rest.oneOf ?? rest.anyOf) {
      schema.properties[name] = { ...rest, type: 'object' };
    }
  }
}

/**
 * What the decorators can't say per operation: @Public routes (no security requirement) say `security: []`
 * explicitly, and X-CSRF-Token is declared only where the session needs it (state-changing methods).
 */
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

import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, type OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import { SESSION_COOKIE } from './common/auth/authenticators';
import { ErrorResponse } from './common/errors/error-response';

/** The OpenAPI document, generated from the controllers and DTOs. */
export function buildOpenApi(app: INestApplication): OpenAPIObject {
  const config = new DocumentBuilder()
    .setTitle('Fixitfy Upload')
    .setDescription(
      'Self-hosted image host. Every error is `{ ok: false, code, error }` with the status of its code; ' +
        'every response carries `X-Request-Id`.',
    )
    .setVersion('1')
    .addBearerAuth({ type: 'http', scheme: 'bearer', description: 'An API key: `fxf_` + 64 hex.' }, 'apiKey')
    .addBearerAuth(
      {
        type: 'http',
        scheme: 'bearer',
        description: 'A temporary upload token `ut_…` (POST /api/v1/upload only).',
      },
      'uploadToken',
    )
    .addCookieAuth(SESSION_COOKIE, { type: 'apiKey', in: 'cookie', name: SESSION_COOKIE }, 'session')
    .build();
  return SwaggerModule.createDocument(app, config, { extraModels: [ErrorResponse] });
}

export function setupSwagger(app: INestApplication): void {
  const document = buildOpenApi(app);
  SwaggerModule.setup('docs', app, document, {
    jsonDocumentUrl: 'docs/openapi.json',
    yamlDocumentUrl: 'docs/openapi.yaml',
    customSiteTitle: 'Fixitfy Upload API',
  });
}

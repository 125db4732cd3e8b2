import { NestFactory } from '@nestjs/core';
import type { OpenAPIObject } from '@nestjs/swagger';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppModule } from './app.module';
import { loadConfig } from './config/app-config';
import { buildOpenApi } from './swagger';

/** The `servers` URL of the committed openapi.json; a running instance serves its own PUBLIC_URL at /docs. */
export const OPENAPI_FILE_SERVER = 'http://localhost:3000';

/**
 * The OpenAPI document from the code alone: the module graph in Nest's preview mode (no provider is instantiated:
 * no database, Redis or model), the fixed server URL, every object's keys sorted. What `npm run openapi:write`
 * commits as openapi.json and what the test compares it with.
 */
export async function openApiDocumentFromCode(): Promise<OpenAPIObject> {
  const dataDir = mkdtempSync(join(tmpdir(), 'fxf-openapi-'));
  try {
    const config = loadConfig({
      DATA_DIR: dataDir,
      SECRET_KEY: 'x'.repeat(32),
      PUBLIC_URL: OPENAPI_FILE_SERVER,
    });
    const app = await NestFactory.create(AppModule.forRoot(config), { preview: true, logger: false });
    try {
      return sortKeys(buildOpenApi(app, config.publicUrl));
    } finally {
      await app.close();
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** openapi.json's text: two-space JSON with a final newline. */
export function openApiJson(document: OpenAPIObject): string {
  return `${JSON.stringify(document, null, 2)}\n`;
}

/** Object keys in code-point order at every depth (arrays keep their order: it is meaningful in OpenAPI). */
function sortKeys<T>(value: T): T {
  if (Array.isArray(value)) {
    return value.map((v: unknown) => sortKeys(v)) as T;
  }
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]),
    ) as T;
  }
  return value;
}

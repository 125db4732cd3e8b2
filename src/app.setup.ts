import type { INestApplication } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import cookieParser from 'cookie-parser';
import { Logger } from 'nestjs-pino';
import { configureHttpServer } from './common/http/http-server';
import { refuseDeepJson } from './common/http/json-depth';
import { QuietStartupLogger } from './common/logging/logger-options';
import { AppConfig } from './config/app-config';
import { DeliveryCache } from './modules/delivery/delivery-cache';
import { installFastPath } from './modules/delivery/fast-path';
import { VariantsService } from './modules/delivery/variants.service';
import { StorageDriver } from './modules/storage/storage-driver';
import { setupSwagger } from './swagger';

/** Everything main.ts and the tests both need on the HTTP app. */
export function configureApp(app: INestApplication): void {
  const express = app as NestExpressApplication;
  const config = app.get(AppConfig);
  express.useLogger(new QuietStartupLogger(app.get(Logger)));
  express.set('trust proxy', config.trustProxy);
  express.disable('x-powered-by');
  // JSON bodies are small; uploads are multipart and streamed by busboy, never through this parser.
  express.useBodyParser('json', { limit: '64kb', strict: true, verify: refuseDeepJson });
  express.useBodyParser('urlencoded', { limit: '16kb', extended: false });
  express.use(cookieParser());
  configureHttpServer(express.getHttpServer(), {
    headersTimeoutMs: config.httpHeadersTimeoutMs,
    requestTimeoutMs: config.httpRequestTimeoutMs,
  });
  setupSwagger(app);
  // Direct-link hits skip Express altogether (issue 14); everything else reaches it as before.
  installFastPath(express.getHttpServer(), {
    cache: app.get(DeliveryCache),
    storage: app.get(StorageDriver),
    config,
    variants: app.get(VariantsService),
  });
}

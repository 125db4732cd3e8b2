import type { INestApplication, INestApplicationContext } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { Logger, PARAMS_PROVIDER_TOKEN, type Params, PinoLogger } from 'nestjs-pino';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type HttpLogger, pinoHttp } from 'pino-http';
import { configureHttpServer } from './common/http/http-server';
import { logCrashes } from './common/logging/crash-log';
import { QuietStartupLogger } from './common/logging/logger-options';
import { AppConfig } from './config/app-config';
import { DeliveryCache } from './modules/delivery/delivery-cache';
import { installFastPath } from './modules/delivery/fast-path';
import { VariantsService } from './modules/delivery/variants.service';
import { StorageDriver } from './modules/storage/storage-driver';
import { RequestCounter } from './common/auth/authenticators';
import { ApiKeysService } from './modules/api-keys/api-keys.service';
import { Metrics } from './common/metrics/metrics.service';
import { RateLimiter } from './common/rate-limit/rate-limiter';
import { InvalidationBus } from './common/redis/invalidation-bus';
import { createValidationPipe } from './common/validation/validation.pipe';
import { deferContinue } from './common/http/expect-continue';
import { KeyHints } from './modules/uploads/key-hints';
import { installReadFastPath, type ReadFastPathDeps } from './modules/uploads/read-fast-path';
import { UploadsService } from './modules/uploads/uploads.service';
import { installUploadFastPath, type UploadFastPathDeps } from './modules/uploads/upload-fast-path';
import type { FrontDeps } from './modules/uploads/front-answer';
import { UploadPipelineService } from './modules/uploads/upload-pipeline.service';
import { BearerAuthenticator } from './common/auth/authenticators';
import { setupSwagger } from './swagger';

/**
 * How every HTTP app is created (main.ts, the tests): without Nest's own body parsers, which it would put on the
 * Express app in front of every middleware (and with them `x-www-form-urlencoded` bodies); AppModule reads bodies.
 */
export const HTTP_APP_OPTIONS = { bodyParser: false } as const;

/** Nest's own lines go to the app's logger (JSON lines, LOG_LEVEL), Nest's start-up chatter at debug. */
export function useAppLogger(app: INestApplicationContext): void {
  app.useLogger(new QuietStartupLogger(app.get(Logger)));
}

/**
 * The service's own process (src/start.ts; not the tests' apps, which share a jest worker): a crash is written to the
 * app's JSON log as well as to stderr (common/logging/crash-log.ts). Its logger is PinoLogger's, so a crash inside a
 * request's work carries that request's binding, as the app's other lines do.
 */
export async function logProcessCrashes(app: INestApplicationContext): Promise<void> {
  const logger = await app.resolve(PinoLogger);
  logger.setContext('Process');
  logCrashes(logger);
}

/** Everything main.ts and the tests both need on the HTTP app. */
export function configureApp(app: INestApplication): void {
  const express = app as NestExpressApplication;
  const config = app.get(AppConfig);
  useAppLogger(app);
  express.set('trust proxy', config.trustProxy);
  express.disable('x-powered-by');
  // Bodies and cookies: AppModule's middleware (common/http/request-body.ts), after the request log's.
  configureHttpServer(express.getHttpServer(), {
    headersTimeoutMs: config.httpHeadersTimeoutMs,
    requestTimeoutMs: config.httpRequestTimeoutMs,
  });
  // Swagger's routes come before Nest's middleware, the request log's included: /docs gets its own.
  express.use('/docs', requestLogMiddleware(app));
  setupSwagger(app);
  // Direct-link hits skip Express altogether (issue 14); everything else reaches it as before.
  installFastPath(express.getHttpServer(), {
    cache: app.get(DeliveryCache),
    storage: app.get(StorageDriver),
    config,
    variants: app.get(VariantsService),
  });
  // So do the management API's hot reads with an API key (issue 14): in front of the above, for /api/v1/ paths only.
  installReadFastPath(express.getHttpServer(), readFastPathDeps(app));
  // And uploads with an API key (issue 14): POST /api/v1/upload with a multipart body, in front of both.
  installUploadFastPath(express.getHttpServer(), uploadFastPathDeps(app));
  // An upload's 100 Continue waits until its key, limits and declared size have passed (the multipart reader sends it).
  deferContinue(express.getHttpServer(), (req) => req.method === 'POST' && UPLOAD_PATH.test(req.url ?? ''));
}

/** POST /api/v1/upload as Express routes it (any case, an optional trailing slash, a query). */
const UPLOAD_PATH = /^\/api\/v1\/upload\/?(?:\?|$)/i;

/** The request log (pino-http, as nestjs-pino's middleware has it: X-Request-Id and one line per answer). */
function requestLogMiddleware(app: INestApplication): HttpLogger<IncomingMessage, ServerResponse> {
  const logParams = app.get<Params>(PARAMS_PROVIDER_TOKEN).pinoHttp;
  return Array.isArray(logParams)
    ? pinoHttp(...logParams)
    : pinoHttp(logParams as Parameters<typeof pinoHttp>[0]);
}

/** What both paths in front of Express answer with: Express's and the request log's settings, the metrics. */
function frontDeps(app: INestApplication): FrontDeps {
  const settings = (app as NestExpressApplication).getHttpAdapter().getInstance() as {
    get(name: string): unknown;
  };
  return {
    etag: settings.get('etag fn') as FrontDeps['etag'],
    trustProxy: settings.get('trust proxy fn') as FrontDeps['trustProxy'],
    log: requestLogMiddleware(app).logger,
    metrics: app.get(Metrics),
  };
}

/** What the read fast path works with, from the app: its services, and Express's and the request log's settings. */
export function readFastPathDeps(app: INestApplication): ReadFastPathDeps {
  return {
    keys: app.get(ApiKeysService),
    counter: app.get(RequestCounter),
    limiter: app.get(RateLimiter),
    uploads: app.get(UploadsService),
    hints: new KeyHints(app.get(InvalidationBus)),
    validation: createValidationPipe(),
    ...frontDeps(app),
  };
}

/** What the upload fast path works with, from the app. */
export function uploadFastPathDeps(app: INestApplication): UploadFastPathDeps {
  return {
    keys: app.get(BearerAuthenticator),
    counter: app.get(RequestCounter),
    limiter: app.get(RateLimiter),
    pipeline: app.get(UploadPipelineService),
    ...frontDeps(app),
  };
}

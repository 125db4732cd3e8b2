import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Redis from 'ioredis';
import request from 'supertest';
import type TestAgent from 'supertest/lib/agent';
import { AppModule } from '../../src/app.module';
import { configureApp, HTTP_APP_OPTIONS } from '../../src/app.setup';
import { type AppConfig, loadConfig } from '../../src/config/app-config';
import { databaseUrl, readInfra, withAdminClient } from './infra';

export interface TestApp {
  app: INestApplication;
  config: AppConfig;
  http: TestAgent;
  databaseUrl: string;
  close: () => Promise<void>;
}

export interface TestAppOptions {
  /** Environment variables as an operator would set them (validated like production). */
  env?: Record<string, string>;
  /** Reuse another instance's database and Redis prefix (two instances of one deployment). */
  shareWith?: TestApp;
  /** The URL the app connects to for its database (e.g. through a TcpProxy); tests' own SQL still goes direct. */
  appDatabaseUrl?: (url: string) => string;
  /** Providers replaced in the TestingModule, e.g. `{ provide: Clock, useValue: clock }`. */
  overrides?: { provide: unknown; useValue: unknown }[];
  /** Listen on this port (e.g. a browser test whose PUBLIC_URL must name it); default: any free port. */
  port?: number;
}

/**
 * Settings every test app of this jest file starts with (before its own `env`), e.g. the S3 driver on a test S3
 * server (`runOnS3()` in s3-server.ts). Called once per app, so each gets its own S3 prefix; an app that
 * `shareWith`s another uses that one's storage.
 */
export const testAppDefaults: { env: (() => Record<string, string>) | null } = { env: null };

/** The storage settings of a running app, for a second instance of the same deployment. */
function storageEnvOf(config: AppConfig): Record<string, string> {
  if (config.storageDriver !== 's3') {
    return {};
  }
  const { s3 } = config;
  return {
    STORAGE_DRIVER: 's3',
    S3_ENDPOINT: s3.endpoint ?? '',
    S3_REGION: s3.region,
    S3_BUCKET: s3.bucket,
    S3_PREFIX: s3.prefix,
    S3_ACCESS_KEY_ID: s3.accessKeyId ?? '',
    S3_SECRET_ACCESS_KEY: s3.secretAccessKey ?? '',
    S3_FORCE_PATH_STYLE: String(s3.forcePathStyle),
    S3_TIMEOUT_MS: String(s3.timeoutMs),
  };
}

/** A fresh database copied from the migrated template. Retries: PostgreSQL refuses concurrent template copies. */
export async function createTestDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const infra = readInfra();
  const name = `fxf_t_${randomBytes(6).toString('hex')}`;
  for (let attempt = 0; ; attempt++) {
    try {
      await withAdminClient(infra.adminUrl, (c) =>
        c.query(`create database ${name} template ${infra.templateDb}`),
      );
      break;
    } catch (err) {
      if (attempt > 20) {
        throw err;
      }
      await new Promise((r) => setTimeout(r, 100 + Math.random() * 200));
    }
  }
  return {
    url: databaseUrl(infra.adminUrl, name),
    drop: () =>
      withAdminClient(infra.adminUrl, (c) => c.query(`drop database if exists ${name} with (force)`)).then(
        () => undefined,
      ),
  };
}

/** The real AppModule on a fresh database and its own Redis prefix, configured as src/start.ts does. */
export async function createTestApp(options: TestAppOptions = {}): Promise<TestApp> {
  const infra = readInfra();
  const shared = options.shareWith;
  const db = shared ? { url: shared.databaseUrl, drop: () => Promise.resolve() } : await createTestDatabase();
  const dataDir = shared ? shared.config.dataDir : mkdtempSync(join(tmpdir(), 'fxf-test-'));
  const config = loadConfig({
    DATA_DIR: dataDir,
    DATABASE_URL: options.appDatabaseUrl ? options.appDatabaseUrl(db.url) : db.url,
    REDIS_URL: infra.redisUrl,
    REDIS_PREFIX: shared ? shared.config.redisPrefix : `fxf-test:${randomBytes(6).toString('hex')}:`,
    SECRET_KEY: shared ? shared.config.secretKey : randomBytes(32).toString('hex'),
    PUBLIC_URL: 'http://upload.test',
    MODERATION_ENABLED: 'false',
    LOG_LEVEL: process.env.FXF_TEST_LOG_LEVEL ?? 'silent',
    MIGRATE_ON_START: 'false',
    ...(shared ? storageEnvOf(shared.config) : (testAppDefaults.env?.() ?? {})),
    ...options.env,
  });
  const builder = Test.createTestingModule({ imports: [AppModule.forRoot(config)] });
  for (const { provide, useValue } of options.overrides ?? []) {
    builder.overrideProvider(provide).useValue(useValue);
  }
  const moduleRef = await builder.compile();
  const app = moduleRef.createNestApplication({ logger: false, ...HTTP_APP_OPTIONS });
  configureApp(app);
  // Listening (not just init) so parallel supertest requests share one server instead of each starting one.
  await app.listen(options.port ?? 0, '127.0.0.1');
  return {
    app,
    config,
    http: request(app.getHttpServer()),
    databaseUrl: db.url,
    close: async () => {
      await app.close();
      await db.drop();
      if (!shared) {
        rmSync(dataDir, { recursive: true, force: true });
        await dropRedisKeys(infra.redisUrl, config.redisPrefix);
      }
    },
  };
}

/** Removes every Redis key of one test app (its prefix), so a developer's Redis doesn't fill up run after run. */
export async function dropRedisKeys(url: string, prefix: string): Promise<void> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      if (keys.length > 0) {
        await redis.unlink(...keys);
      }
      cursor = next;
    } while (cursor !== '0');
  } catch {
    // A test that stopped Redis on purpose: nothing to clean.
  } finally {
    redis.disconnect();
  }
}

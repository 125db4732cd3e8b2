import type { DynamicModule, INestApplicationContext, Type } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CommonModule } from '../../../src/common/common.module';
import { JobsModule } from '../../../src/common/jobs/jobs.module';
import { Clock } from '../../../src/common/time/clock';
import { type AppConfig, loadConfig } from '../../../src/config/app-config';
import { ConfigModule } from '../../../src/config/config.module';
import { DatabaseModule } from '../../../src/database/database.module';
import { readInfra } from '../../setup/infra';
import { FakeClock } from '../../setup/fake-clock';
import { createTestDatabase, dropRedisKeys } from '../../setup/test-app';

export interface Medium {
  app: INestApplicationContext;
  config: AppConfig;
  clock: FakeClock;
  databaseUrl: string;
  get<T>(type: Type<T> | (abstract new (...args: never[]) => T)): T;
  close: () => Promise<void>;
}

export interface MediumOptions {
  /** Environment variables as an operator would set them. */
  env?: Record<string, string>;
  /** Providers replaced with fakes: storage only (the clock is always a FakeClock). */
  overrides?: { provide: unknown; useValue: unknown }[];
}

/**
 * One feature module on real PostgreSQL (a copy of the migrated template database) and its real repositories and
 * services, with the infrastructure every module needs (config, database, Redis, the clock) and nothing in the
 * background (the 'cli' process role: no relay, workers, periodic jobs or model). Fakes: the clock and storage.
 */
export async function createMedium(
  feature: Type | DynamicModule,
  options: MediumOptions = {},
): Promise<Medium> {
  const infra = readInfra();
  const db = await createTestDatabase();
  const dataDir = mkdtempSync(join(tmpdir(), 'fxf-medium-'));
  const config = loadConfig({
    DATA_DIR: dataDir,
    DATABASE_URL: db.url,
    REDIS_URL: infra.redisUrl,
    REDIS_PREFIX: `fxf-test:${randomBytes(6).toString('hex')}:`,
    SECRET_KEY: randomBytes(32).toString('hex'),
    PUBLIC_URL: 'http://upload.test',
    MODERATION_ENABLED: 'false',
    LOG_LEVEL: 'silent',
    MIGRATE_ON_START: 'false',
    ...options.env,
  });
  const clock = new FakeClock();
  const builder = Test.createTestingModule({
    imports: [
      ConfigModule.forRoot(config),
      JobsModule.forRoot('cli'),
      CommonModule,
      DatabaseModule.forRoot(),
      feature,
    ],
  })
    .overrideProvider(Clock)
    .useValue(clock);
  for (const { provide, useValue } of options.overrides ?? []) {
    builder.overrideProvider(provide).useValue(useValue);
  }
  const moduleRef = await builder.compile();
  const app = moduleRef.createNestApplication({ logger: false });
  await app.init();
  return {
    app,
    config,
    clock,
    databaseUrl: db.url,
    get: (type) => app.get(type as Type),
    close: async () => {
      await app.close();
      await db.drop();
      rmSync(dataDir, { recursive: true, force: true });
      await dropRedisKeys(infra.redisUrl, config.redisPrefix);
    },
  };
}

import { GenericContainer, getContainerRuntimeClient, type StartedTestContainer, Wait } from 'testcontainers';
import { keepOrtTelemetryOff } from '../../src/config/ort-telemetry';
import { runMigrations } from '../../src/database/migrate';
import { databaseUrl, INFRA_ENV, type TestInfra, withAdminClient } from './infra';

declare global {
  var __FXF_CONTAINERS__: StartedTestContainer[] | undefined;
  var __FXF_INFRA__: TestInfra | undefined;
}

async function dockerAvailable(): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      getContainerRuntimeClient(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('timeout')), 5000);
      }),
    ]);
    return true;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Real PostgreSQL and Redis for every test: testcontainers when a Docker engine answers, else the servers named by
 * DATABASE_URL / REDIS_URL, else the CI machine's loopback ones. Migrations run once into a template database that
 * each test file copies.
 */
export default async function globalSetup(): Promise<void> {
  let adminUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  let redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  if (!process.env.DATABASE_URL && !process.env.REDIS_URL && (await dockerAvailable())) {
    const pg = await new GenericContainer('postgres:16-alpine')
      .withEnvironment({ POSTGRES_PASSWORD: 'postgres', POSTGRES_HOST_AUTH_METHOD: 'trust' })
      .withExposedPorts(5432)
      .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept connections/, 2))
      .start();
    const redis = await new GenericContainer('redis:7-alpine').withExposedPorts(6379).start();
    globalThis.__FXF_CONTAINERS__ = [pg, redis];
    adminUrl = `postgres://postgres:postgres@${pg.getHost()}:${pg.getMappedPort(5432)}/postgres`;
    redisUrl = `redis://${redis.getHost()}:${redis.getMappedPort(6379)}`;
  }
  const templateDb = `fxf_template_${process.pid}`;
  await withAdminClient(adminUrl, async (c) => {
    await c.query(`drop database if exists ${templateDb}`);
    await c.query(`create database ${templateDb}`);
  });
  await runMigrations(databaseUrl(adminUrl, templateDb));
  const infra: TestInfra = { adminUrl, templateDb, redisUrl };
  globalThis.__FXF_INFRA__ = infra;
  process.env[INFRA_ENV] = JSON.stringify(infra);
  // onnxruntime's telemetry off in the test workers too: Jest gives each test file a copy of process.env, so the
  // service's own call (InferenceWorker) does not reach a worker's real environment; set here, the workers inherit it.
  keepOrtTelemetryOff();
}

import Redis from 'ioredis';
import { AppConfig, loadConfig } from './config/app-config';
import { startEmbeddedPostgres } from './database/embedded-postgres';
import { runMigrations } from './database/migrate';

export interface Infrastructure {
  config: AppConfig;
  /** Stops what we started (the embedded PostgreSQL). */
  stop: () => Promise<void>;
}

export class StartupError extends Error {}

/**
 * Resolves the config and the things the app needs before Nest starts: the database URL (starting the embedded
 * PostgreSQL when DATABASE_URL is unset), a reachable Redis, and — when configured — the migrations.
 */
export async function prepareInfrastructure(opts: { migrate?: boolean } = {}): Promise<Infrastructure> {
  const config = loadConfig();
  let stop = (): Promise<void> => Promise.resolve();
  if (!config.databaseUrl) {
    const pg = await startEmbeddedPostgres(config.dataDir, config.embeddedPostgresPort).catch(
      (err: unknown) => {
        throw new StartupError(
          `Could not start the embedded PostgreSQL in ${config.dataDir}/postgres (${String(err)}); set DATABASE_URL to use your own.`,
        );
      },
    );
    config.databaseUrl = pg.url;
    stop = pg.stop;
  }
  await assertRedisReachable(config.redisUrl).catch(async (err: unknown) => {
    await stop();
    throw err;
  });
  if (opts.migrate ?? config.migrateOnStart) {
    await runMigrations(config.databaseUrl);
  }
  return { config, stop };
}

async function assertRedisReachable(url: string): Promise<void> {
  const client = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    connectTimeout: 3000,
    retryStrategy: () => null,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.ping();
  } catch {
    throw new StartupError(
      `No Redis answers at ${url.replace(/\/\/[^@]*@/, '//***@')}: start one (e.g. \`redis-server --daemonize yes\`, or \`docker run -p 6379:6379 redis:7\`) or set REDIS_URL.`,
    );
  } finally {
    client.disconnect();
  }
}

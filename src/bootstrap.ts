import Redis from 'ioredis';
import { AppConfig, ConfigError, loadConfig } from './config/app-config';
import { checkDatabase } from './database/database-check';
import { startEmbeddedPostgres } from './database/embedded-postgres';
import { runMigrations } from './database/migrate';
import { StartupError } from './startup-error';

export { StartupError };

export interface Infrastructure {
  config: AppConfig;
  /** Stops what we started (the embedded PostgreSQL). */
  stop: () => Promise<void>;
}

/**
 * Resolves the config and the things the app needs before Nest starts: the database URL (starting the embedded
 * PostgreSQL when DATABASE_URL is unset), a reachable Redis (unless `redis: false`: the CLI's commands that never
 * touch it), and — when configured — the migrations.
 */
export async function prepareInfrastructure(
  opts: { migrate?: boolean; inherited?: boolean; redis?: boolean } = {},
): Promise<Infrastructure> {
  const loaded = loadConfig();
  let stop = (): Promise<void> => Promise.resolve();
  if (opts.inherited && loaded.databaseUrl) {
    // A cluster worker (src/cluster.ts): its primary checked PostgreSQL and Redis, migrated, and owns the embedded
    // cluster if any — nothing to check again, nothing to stop.
    return { config: loaded, stop };
  }
  let databaseUrl: string;
  if (loaded.databaseUrl) {
    await checkDatabase(loaded.databaseUrl, { create: loaded.databaseCreate });
    databaseUrl = loaded.databaseUrl;
  } else {
    const pg = await startEmbeddedPostgres(loaded.dataDir, loaded.embeddedPostgresPort);
    databaseUrl = pg.url;
    stop = pg.stop;
  }
  // The embedded cluster's URL completes the config: a new object, never a change to the one loaded.
  const config: AppConfig = { ...loaded, databaseUrl };
  try {
    if (opts.redis ?? true) {
      await assertRedisReachable(config.redisUrl);
    }
    if (opts.migrate ?? config.migrateOnStart) {
      await runMigrations(databaseUrl).catch((err: Error) => {
        throw new StartupError(
          `A database migration failed (${err.message.split('\n')[0]}): the schema is unchanged (migrations run in one transaction); fix the cause, or roll back to the previous release.`,
        );
      });
    }
  } catch (err) {
    await stop();
    throw err;
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
  } catch (err) {
    if (/WRONGPASS|NOAUTH|invalid password|invalid username/i.test((err as Error).message)) {
      throw new StartupError(
        `Redis at ${url.replace(/\/\/[^@]*@/, '//***@')} refused us (${(err as Error).message.split('\n')[0]}): fix the user or password in REDIS_URL.`,
      );
    }
    throw new StartupError(
      `No Redis answers at ${url.replace(/\/\/[^@]*@/, '//***@')}: start one (e.g. \`redis-server --daemonize yes\`, or \`docker run -p 6379:6379 redis:7\`) or set REDIS_URL.`,
    );
  } finally {
    client.disconnect();
  }
}

/**
 * SIGINT/SIGTERM: close the app (HTTP, workers, ORM), then stop the embedded PostgreSQL, then exit. Nest's own
 * shutdown hooks would re-raise the signal after closing and leave the cluster orphaned; a second signal exits at once.
 * Returns a function that starts the same close (idempotent).
 */
export function closeOnSignals(close: () => Promise<void>): () => void {
  let closing = false;
  const begin = (): void => {
    if (closing) {
      return;
    }
    closing = true;
    close().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`Shutdown failed: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exit(1);
      },
    );
  };
  const onSignal = (): void => {
    if (closing) {
      process.exit(1);
    }
    begin();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // Also returned: a cluster worker closes the same way when its primary asks (never an escalation).
  return begin;
}

/** What a failed start prints: one line, never a stack (LOG_LEVEL=debug or trace adds the stack of an unexpected error). */
export function startupFailureMessage(err: unknown, debug: boolean): string {
  if (err instanceof StartupError || err instanceof ConfigError) {
    return err.message;
  }
  const e = err as NodeJS.ErrnoException & { port?: number };
  if (e?.code === 'EADDRINUSE') {
    return `PORT ${e.port ?? ''} is in use: stop what listens there or set PORT to a free port.`.replace(
      'PORT  ',
      'PORT ',
    );
  }
  if (e?.code === 'EACCES' && e.syscall === 'listen') {
    return `PORT ${e.port ?? ''} needs privileges this user lacks (ports below 1024): set PORT to 1024 or above.`;
  }
  const text = err instanceof Error ? err.message.split('\n')[0] : String(err);
  const detail = debug && err instanceof Error && err.stack ? `\n${err.stack}` : '';
  return `Fixitfy Upload failed to start: ${text} (set LOG_LEVEL=debug for the stack).${detail}`;
}

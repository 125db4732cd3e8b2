import { MikroOrmModule } from '@mikro-orm/nestjs';
import { PostgreSqlDriver } from '@mikro-orm/postgresql';
import { type DynamicModule, Logger, Module } from '@nestjs/common';
import type { Socket } from 'node:net';
import { inspect } from 'node:util';
import { AppConfig } from '../config/app-config';
import { ormOptions } from './orm-options';
import { watchSocketForStalls } from './socket-stall-watch';

/** MikroORM for the app: the URL comes from config (the embedded PostgreSQL's when DATABASE_URL is unset). */
@Module({})
export class DatabaseModule {
  static forRoot(): DynamicModule {
    return {
      module: DatabaseModule,
      imports: [
        MikroOrmModule.forRootAsync({
          inject: [AppConfig],
          useFactory: (config: AppConfig) => {
            if (!config.databaseUrl) {
              throw new Error('databaseUrl must be resolved before the app module starts');
            }
            const options = ormOptions(config.databaseUrl);
            const logger = new Logger('Database');
            return {
              ...options,
              // Each new connection of the pool is watched: one whose path went silent is closed in
              // DATABASE_STALL_TIMEOUT_MS (its query fails: 500 db_failed), not when TCP gives up.
              pool: { ...options.pool, afterCreate: closeWhenSilent(config.databaseStallTimeoutMs, logger) },
              autoLoadEntities: true,
              registerRequestContext: true,
              // knex writes its own warnings (a pooled connection the database dropped: "Connection Error: …")
              // with console.log, a plain line in the middle of the JSON log; they go to the app's logger instead.
              // A new connection into a dead path would wait on its handshake as long (pg has no limit of its own).
              driverOptions: {
                log: knexLog(logger),
                connection: { connectionTimeoutMillis: config.databaseStallTimeoutMs },
              },
            };
          },
          driver: PostgreSqlDriver,
        }),
      ],
    };
  }
}

/** knex's `log` option: each of its messages as one line of the app's logger, at its own level. */
export function knexLog(
  logger: Logger,
): Record<'debug' | 'warn' | 'error' | 'deprecate', (message: unknown) => void> {
  const text = (message: unknown): string =>
    typeof message === 'string' ? message : inspect(message, { depth: 3, breakLength: Infinity });
  return {
    debug: (message) => logger.debug(text(message)),
    warn: (message) => logger.warn(text(message)),
    error: (message) => logger.error(text(message)),
    deprecate: (message) => logger.warn(text(message)),
  };
}

/** A pg client as knex's pool hands it over: its socket is the driver's own (pg's Client.connection.stream). */
interface PooledPgClient {
  connection?: { stream?: Socket };
}

/** knex's pool `afterCreate`: watches the new connection's socket, and destroys it when it went silent. */
export function closeWhenSilent(
  stallMs: number,
  logger: Logger,
): (connection: PooledPgClient, done: (err: Error | null, connection: PooledPgClient) => void) => void {
  return (connection, done) => {
    const socket = connection.connection?.stream;
    if (socket) {
      watchSocketForStalls(socket, stallMs, (silentMs) => {
        logger.warn(`a database connection heard nothing for ${silentMs} ms after a query: closing it`);
        // ETIMEDOUT, as TCP would say after its retries: the query fails as any lost connection's (db_failed).
        socket.destroy(
          Object.assign(new Error(`no answer from the database within ${stallMs} ms`), { code: 'ETIMEDOUT' }),
        );
      });
    }
    done(null, connection);
  };
}

import { MikroOrmModule } from '@mikro-orm/nestjs';
import { PostgreSqlDriver } from '@mikro-orm/postgresql';
import { type DynamicModule, Logger, Module } from '@nestjs/common';
import { inspect } from 'node:util';
import { AppConfig } from '../config/app-config';
import { ormOptions } from './orm-options';

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
            return {
              ...ormOptions(config.databaseUrl),
              autoLoadEntities: true,
              registerRequestContext: true,
              // knex writes its own warnings (a pooled connection the database dropped: "Connection Error: …")
              // with console.log, a plain line in the middle of the JSON log; they go to the app's logger instead.
              driverOptions: { log: knexLog(new Logger('Database')) },
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

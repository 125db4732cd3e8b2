import { Migrator } from '@mikro-orm/migrations';
import { type Options, PostgreSqlDriver } from '@mikro-orm/postgresql';
import { join } from 'node:path';

/** MikroORM options shared by the app, the CLI and the tests. Migrations are the schema's only source. */
export function ormOptions(clientUrl: string): Options {
  return {
    driver: PostgreSqlDriver,
    clientUrl,
    extensions: [Migrator],
    forceUtcTimezone: true,
    // Never create a missing database behind the operator's back (a typo in DATABASE_URL would start an empty
    // instance): bootstrap checks it and creates it only with DATABASE_CREATE=true.
    ensureDatabase: false,
    debug: false,
    allowGlobalContext: false,
    pool: { min: 0, max: 10 },
    migrations: {
      tableName: 'mikro_orm_migrations',
      path: join(__dirname, '..', '..', 'migrations'),
      pathTs: join(__dirname, '..', '..', 'migrations'),
      glob: '!(*.d).{js,ts}',
      transactional: true,
      allOrNothing: true,
      snapshot: false,
      emit: 'ts',
      silent: true,
    },
  };
}

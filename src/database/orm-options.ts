import { type Options, PostgreSqlDriver } from '@mikro-orm/postgresql';
import { MIGRATIONS_DIR, MIGRATIONS_TABLE } from './migrations-location';

/**
 * MikroORM options shared by the app, the CLI and the tests. Migrations are the schema's only source; the Migrator
 * extension is added by database/migrate.ts alone, so the app never loads it.
 */
export function ormOptions(clientUrl: string): Options {
  return {
    driver: PostgreSqlDriver,
    clientUrl,
    forceUtcTimezone: true,
    // Never create a missing database behind the operator's back (a typo in DATABASE_URL would start an empty
    // instance): bootstrap checks it and creates it only with DATABASE_CREATE=true.
    ensureDatabase: false,
    debug: false,
    allowGlobalContext: false,
    pool: { min: 0, max: 10 },
    migrations: {
      tableName: MIGRATIONS_TABLE,
      path: MIGRATIONS_DIR,
      pathTs: MIGRATIONS_DIR,
      glob: '!(*.d).{js,ts}',
      transactional: true,
      allOrNothing: true,
      snapshot: false,
      emit: 'ts',
      silent: true,
    },
  };
}

import { MikroORM } from '@mikro-orm/postgresql';
import { ormOptions } from './orm-options';

/**
 * Applies pending migrations (the schema's only source); returns the names applied. Migrations are plain SQL, so no
 * entity metadata is loaded here (which also keeps jest's global setup from sharing MikroORM's global metadata
 * storage with the test realm: mikro-orm/mikro-orm#3783).
 */
export async function runMigrations(databaseUrl: string): Promise<string[]> {
  const orm = await MikroORM.init({
    ...ormOptions(databaseUrl),
    entities: [],
    discovery: { warnWhenNoEntities: false },
  });
  try {
    const applied = await orm.getMigrator().up();
    return applied.map((m) => m.name);
  } finally {
    await orm.close(true);
  }
}

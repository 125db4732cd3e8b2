import { readdirSync } from 'node:fs';
import { Client } from 'pg';
import { MIGRATIONS_DIR, MIGRATIONS_TABLE } from './migrations-location';

/**
 * Applies pending migrations (the schema's only source); returns the names applied. Migrations are plain SQL, so no
 * entity metadata is loaded here (which also keeps jest's global setup from sharing MikroORM's global metadata
 * storage with the test realm: mikro-orm/mikro-orm#3783). A start with nothing pending (the usual one) only reads the
 * migrations table with pg: MikroORM and its migrator are loaded when there is something to apply (issue 14, start-up).
 */
export async function runMigrations(databaseUrl: string): Promise<string[]> {
  if (await migrationsUpToDate(databaseUrl)) {
    return [];
  }
  const [{ MikroORM }, { Migrator }, { ormOptions }] = await Promise.all([
    import('@mikro-orm/postgresql'),
    import('@mikro-orm/migrations'),
    import('./orm-options'),
  ]);
  const orm = await MikroORM.init({
    ...ormOptions(databaseUrl),
    extensions: [Migrator],
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

/** Whether every migration file is recorded as applied (false when unsure: the migrator then decides). */
async function migrationsUpToDate(databaseUrl: string): Promise<boolean> {
  const files = readdirSync(MIGRATIONS_DIR)
    .filter((f) => /\.(js|ts)$/.test(f) && !f.endsWith('.d.ts'))
    .map((f) => f.replace(/\.(js|ts)$/, ''));
  const client = new Client({ connectionString: databaseUrl });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const { rows } = await client.query<{ name: string }>(`select name from ${MIGRATIONS_TABLE}`);
    const applied = new Set(rows.map((r) => r.name.replace(/\.(js|ts)$/, '')));
    return files.every((f) => applied.has(f));
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

import { join } from 'node:path';

/** Where the migrations are (dist/migrations when built, migrations/ from the sources) and their table. */
export const MIGRATIONS_DIR = join(__dirname, '..', '..', 'migrations');
export const MIGRATIONS_TABLE = 'mikro_orm_migrations';

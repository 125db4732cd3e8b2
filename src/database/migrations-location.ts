import { join } from 'node:path';
import { SRC_DIR } from '../app-paths';

/** Where the migrations are (dist/migrations when built, migrations/ from the sources) and their table. */
export const MIGRATIONS_DIR = join(SRC_DIR, '..', 'migrations');
export const MIGRATIONS_TABLE = 'mikro_orm_migrations';

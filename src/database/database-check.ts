import { Client } from 'pg';
import { StartupError } from '../startup-error';

/** The URL with its password masked, for messages. */
export function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) {
      u.password = '***';
    }
    return u.toString();
  } catch {
    return '(unparseable)';
  }
}

/**
 * Connects once before anything else does, so an unreachable server, a wrong user or password, or a database that
 * doesn't exist stops the start with one sentence instead of a stack from deep inside the ORM. A missing database is
 * created only when `create` is set (DATABASE_CREATE=true): otherwise a typo would start an empty instance.
 */
export async function checkDatabase(url: string, opts: { create: boolean }): Promise<void> {
  const u = new URL(url);
  const database = decodeURIComponent(u.pathname.replace(/^\//, '')) || decodeURIComponent(u.username);
  const user = decodeURIComponent(u.username) || '(default user)';
  const where = `${u.hostname}:${u.port || 5432}`;
  try {
    await probe(url);
  } catch (err) {
    const e = err as { code?: string; message?: string };
    if (e.code === '3D000' && opts.create) {
      await createDatabase(url, database).catch((createErr: Error) => {
        throw new StartupError(
          `Database "${database}" does not exist on ${where} and could not be created (${createErr.message}): create it yourself (createdb ${database}) or fix DATABASE_URL.`,
        );
      });
      return;
    }
    throw new StartupError(explain(e, safeUrl(url), where, user, database));
  }
}

function explain(
  e: { code?: string; message?: string },
  url: string,
  where: string,
  user: string,
  database: string,
): string {
  switch (e.code ?? '') {
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'ECONNRESET':
      return `No PostgreSQL answers at ${url} (${e.code}): start it, or fix the host and port in DATABASE_URL (unset DATABASE_URL to use the embedded PostgreSQL).`;
    case '28P01':
      return `PostgreSQL at ${where} refused the password of user "${user}": fix the password in DATABASE_URL.`;
    case '28000':
      return `PostgreSQL at ${where} refused user "${user}" (${e.message}): fix the user in DATABASE_URL, or create that role / allow it in pg_hba.conf.`;
    case '3D000':
      return `Database "${database}" does not exist on ${where}: create it (createdb ${database}), fix the name in DATABASE_URL, or set DATABASE_CREATE=true to let the service create it.`;
    default:
      if (/timeout/i.test(e.message ?? '')) {
        return `No PostgreSQL answers at ${url} within 5 s: start it, or fix the host and port in DATABASE_URL.`;
      }
      if (/password must be a string|SASL/i.test(e.message ?? '')) {
        return `PostgreSQL at ${where} asks user "${user}" for a password and DATABASE_URL has none: add it (postgres://user:password@host/db).`;
      }
      return `PostgreSQL at ${where} refused the connection (${e.code ? `${e.code}: ` : ''}${e.message}): fix DATABASE_URL.`;
  }
}

async function probe(url: string): Promise<void> {
  const client = new Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('select 1');
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function createDatabase(url: string, database: string): Promise<void> {
  const maintenance = new URL(url);
  maintenance.pathname = '/postgres';
  const client = new Client({ connectionString: maintenance.toString(), connectionTimeoutMillis: 5000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query(`create database ${client.escapeIdentifier(database)}`);
  } finally {
    await client.end().catch(() => undefined);
  }
}

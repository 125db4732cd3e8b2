import type { EntityManager } from '@mikro-orm/postgresql';
import { Logger } from '@nestjs/common';
import { createHash } from 'node:crypto';

/**
 * One read statement on a connection of the ORM's own pool, without the ORM's execute around it (issue 14: "raw SQL
 * through the ORM's connection is fine on hot paths"). `em.getConnection().execute()` formats the parameters into the
 * SQL text and runs it through knex's query runner: traced in the service, 0.3 ms passed between execute() and the
 * statement leaving. Here the statement goes to pg with its parameters bound ($1…$n) as soon as a pooled connection
 * is free. (Side by side the listing's p50 fell by about 0.2 ms; the lookup and /me moved within noise.)
 *
 * Rows are what the ORM's raw execute gives (the same connection, so the same type parsers: timestamps as text,
 * bigints as strings). Errors are pg's and the pool's own, which isDatabaseFailure already maps to `db_failed`.
 * Outside any transaction: it takes a connection of its own, so it is for reads on their own, or a write that is one
 * statement (the upload's record).
 *
 * Each statement is prepared once per connection (a named statement: pg sends Parse the first time and only
 * Bind/Execute after), so PostgreSQL neither parses nor plans it again. Measured here with the service's own
 * statements, one after another on one connection: the key lookup 0.232 → 0.124 ms p50, the key lookup with the
 * lookup route's data 0.405 → 0.168 ms. The texts are a handful of fixed shapes (the SQL is built from constants;
 * values go in as parameters); past PREPARED_TEXTS distinct texts, the rest go unnamed. A statement's name is a
 * hash of its text, so one name means one text in every process and version sharing the database.
 *
 * Behind a pooler in transaction mode, a server connection may not hold what this client prepared (PgBouncer before
 * 1.21, or without `max_prepared_statements`): the first such answer ("prepared statement … does not exist", or
 * "… already exists") turns preparing off for the process, with one warning, and the call runs unprepared. Session
 * mode, a pooler that tracks prepared statements, or a direct connection keep it on.
 */
export async function leanQuery<T>(em: EntityManager, sql: string, params: readonly unknown[]): Promise<T[]> {
  const client = em.getConnection().getKnex().client as KnexPool;
  const connection = await client.acquireConnection();
  try {
    const name = preparing ? statementName(sql) : undefined;
    try {
      return (await connection.query({ name, text: sql, values: params })).rows as T[];
    } catch (err) {
      const code = name === undefined ? undefined : (err as { code?: string }).code;
      if (code === LOST || code === DUPLICATE) {
        preparing = false;
        new Logger('Database').warn(
          { code },
          'the database connection does not keep prepared statements (a pooler in transaction mode?): ' +
            'statements run unprepared from now on',
        );
      } else if (code !== RESULT_CHANGED) {
        throw err;
      }
      // RESULT_CHANGED: a migration changed what a prepared statement returns ("cached plan must not change result
      // type"). This call runs unprepared; on a connection that prepared it before the migration, every call will
      // (new connections prepare it afresh).
      return (await connection.query({ text: sql, values: params })).rows as T[];
    }
  } finally {
    await client.releaseConnection(connection);
  }
}

/** invalid_sql_statement_name: the server connection does not hold the statement pg believes it prepared there. */
const LOST = '26000';
/** duplicate_prepared_statement: the server connection already holds that name (prepared by another client). */
const DUPLICATE = '42P05';
/** feature_not_supported: raised for "cached plan must not change result type". */
const RESULT_CHANGED = '0A000';

/** The most statement texts leanQuery prepares (a guard: today's callers have a few dozen shapes at most). */
export const PREPARED_TEXTS = 256;
const names = new Map<string, string>();
let preparing = true;

/** The name of the prepared statement for this text (a hash of it), or undefined past the bound. */
export function statementName(sql: string): string | undefined {
  let name = names.get(sql);
  if (name === undefined && names.size < PREPARED_TEXTS) {
    name = `fxf_${createHash('sha256').update(sql).digest('hex').slice(0, 40)}`;
    names.set(sql, name);
  }
  return name;
}

/** What leanQuery uses of the pooled connection (knex's pg dialect pools `pg.Client`s). */
interface PgConnection {
  query(query: { name?: string; text: string; values: readonly unknown[] }): Promise<{ rows: unknown[] }>;
}

/** knex's Client (typed `any` in knex's own types): its pool, as knex's query runner uses it. */
interface KnexPool {
  acquireConnection(): Promise<PgConnection>;
  releaseConnection(connection: PgConnection): Promise<void>;
}

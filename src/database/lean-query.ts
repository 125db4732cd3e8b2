import type { EntityManager } from '@mikro-orm/postgresql';

/**
 * One read statement on a connection of the ORM's own pool, without the ORM's execute around it (issue 14: "raw SQL
 * through the ORM's connection is fine on hot paths"). `em.getConnection().execute()` formats the parameters into the
 * SQL text and runs it through knex's query runner: traced in the service, 0.3 ms passed between execute() and the
 * statement leaving. Here the statement goes to pg with its parameters bound ($1…$n) as soon as a pooled connection
 * is free. (Side by side the listing's p50 fell by about 0.2 ms; the lookup and /me moved within noise.)
 *
 * Rows are what the ORM's raw execute gives (the same connection, so the same type parsers: timestamps as text,
 * bigints as strings). Errors are pg's and the pool's own, which isDatabaseFailure already maps to `db_failed`.
 * Outside any transaction: it takes a connection of its own, so it is for reads on their own.
 */
export async function leanQuery<T>(em: EntityManager, sql: string, params: readonly unknown[]): Promise<T[]> {
  const client = em.getConnection().getKnex().client as KnexPool;
  const connection = await client.acquireConnection();
  try {
    return (await connection.query(sql, params)).rows as T[];
  } finally {
    await client.releaseConnection(connection);
  }
}

/** What leanQuery uses of the pooled connection (knex's pg dialect pools `pg.Client`s). */
interface PgConnection {
  query(sql: string, params: readonly unknown[]): Promise<{ rows: unknown[] }>;
}

/** knex's Client (typed `any` in knex's own types): its pool, as knex's query runner uses it. */
interface KnexPool {
  acquireConnection(): Promise<PgConnection>;
  releaseConnection(connection: PgConnection): Promise<void>;
}

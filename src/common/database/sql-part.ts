/**
 * A piece of SQL and its `?` bindings in order. Modules hand these out so another module can compose one statement
 * (one round trip) from parts whose tables it never names itself: the owning module keeps the SQL of its tables.
 */
export interface SqlPart {
  sql: string;
  params: unknown[];
}

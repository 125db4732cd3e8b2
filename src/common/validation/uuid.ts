import { isUUID } from 'class-validator';

/**
 * The one UUID check outside DTOs: 8-4-4-4-12 hex digits, any version, any case (what PostgreSQL's `uuid` accepts in
 * that form). Route ids are checked at the edge by `IdParam`; this is for ids inside other values (cursors, tokens).
 */
export function isUuid(value: unknown): value is string {
  return typeof value === 'string' && isUUID(value, 'all');
}

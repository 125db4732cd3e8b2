import { AppError } from '../errors/app-error';
import { isUuid } from '../validation/uuid';

export interface Cursor {
  createdAt: Date;
  /** Set when the page boundary falls among rows sharing one timestamp. */
  id: string | null;
}

const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$/;

/**
 * `before` is an ISO timestamp (strictly older than it), or `<ISO>~<id>` that our `next_before` emits when the
 * page ends inside a run of equal timestamps: then the id breaks the tie, so paging never skips or repeats.
 */
export function parseCursor(raw: string | undefined): Cursor | null {
  if (raw === undefined || raw === '') {
    return null;
  }
  const [iso, id, ...rest] = raw.split('~');
  const date = new Date(iso);
  if (
    rest.length > 0 ||
    !ISO_MS.test(iso) ||
    Number.isNaN(date.getTime()) ||
    (id !== undefined && !isUuid(id))
  ) {
    throw new AppError('bad_request', '"before" must be an ISO-8601 UTC timestamp or a next_before value.');
  }
  return { createdAt: date, id: id ?? null };
}

/** The cursor after `last`: its plain timestamp when the next row is strictly older, else timestamp~id. */
export function encodeCursor(
  last: { createdAt: Date; id: string },
  next: { createdAt: Date } | undefined,
): string | null {
  if (!next) {
    return null;
  }
  const iso = last.createdAt.toISOString();
  return next.createdAt.getTime() < last.createdAt.getTime() ? iso : `${iso}~${last.id}`;
}

/** The MikroORM filter for "strictly after the cursor" in (created_at desc, id desc) order. */
export function keysetFilter(raw: string | undefined): { $or?: Record<string, unknown>[] } {
  const cursor = parseCursor(raw);
  if (!cursor) {
    return {};
  }
  return {
    $or: cursor.id
      ? [{ createdAt: { $lt: cursor.createdAt } }, { createdAt: cursor.createdAt, id: { $lt: cursor.id } }]
      : [{ createdAt: { $lt: cursor.createdAt } }],
  };
}

/** Cuts `limit + 1` rows fetched in keyset order into a page and the cursor of the next one. */
export function keysetPage<T extends { createdAt: Date; id: string }>(
  rows: T[],
  limit: number,
): { page: T[]; next_before: string | null } {
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  return { page, next_before: last ? encodeCursor(last, rows[limit]) : null };
}

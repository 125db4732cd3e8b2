/**
 * A date input's value (YYYY-MM-DD, the reader's own calendar day) as the API's `before` cursor: the first
 * instant of the next local day, so "up to 2026-06-01" includes all of that day. null for an empty or bad value.
 */
export function endOfDayCursor(day: string): string | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(day);
  if (!m) {
    return null;
  }
  const next = new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]) + 1);
  return Number.isNaN(next.getTime()) ? null : next.toISOString();
}

/** An audit entry's metadata as indented text (shown in a <pre>, never as HTML); "" when it has none. */
export function formatMetadata(metadata: Record<string, unknown> | null | undefined): string {
  if (!metadata || Object.keys(metadata).length === 0) {
    return '';
  }
  return JSON.stringify(metadata, null, 2);
}

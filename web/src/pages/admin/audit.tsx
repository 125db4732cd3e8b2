import { useInfiniteQuery } from '@tanstack/react-query';
import { type FormEvent, useEffect, useId, useState } from 'react';
import { Link, useLocation, useSearch } from 'wouter';
import { api, call } from '../../api/client';
import { sentenceFor } from '../../api/errors';
import { AdminNav } from '../../components/admin/admin-nav';
import { AuditEntryView, type FilterHref } from '../../components/admin/audit-entry';
import { Field, FormError } from '../../components/field';
import { afterMore, useRefocus } from '../../components/refocus';
import { endOfDayCursor } from '../../components/admin/format';
import '../../components/admin/admin.css';

/** The actions the server records (API.md Part 2, Admin); the filter also takes any other value from a link. */
const ACTIONS = [
  'user.registered',
  'user.login_failed',
  'user.banned',
  'user.unbanned',
  'api_key.created',
  'api_key.revoked',
  'upload.deleted',
  'upload.rejected',
  'webhook.created',
  'webhook.deleted',
  'webhook.disabled',
  'webhook.secret_rotated',
];
const PAGE_SIZES = [10, 25, 50, 100];
const DEFAULT_PAGE_SIZE = 50;
const MORE_ID = 'older-entries';
const LIST_ID = 'audit-list';
const CLEAR_ID = 'clear-filters';

interface Filters {
  action: string;
  actor: string;
  target: string;
  /** YYYY-MM-DD: entries up to the end of that day (local time). */
  date: string;
  limit: number;
}

function readFilters(search: string): Filters {
  const q = new URLSearchParams(search);
  const limit = Number(q.get('limit'));
  return {
    action: q.get('action') ?? '',
    actor: q.get('actor') ?? '',
    target: q.get('target') ?? '',
    date: q.get('date') ?? '',
    limit: PAGE_SIZES.includes(limit) ? limit : DEFAULT_PAGE_SIZE,
  };
}

function hrefFor(f: Filters): string {
  const q = new URLSearchParams();
  for (const key of ['action', 'actor', 'target', 'date'] as const) {
    if (f[key].trim()) {
      q.set(key, f[key].trim());
    }
  }
  if (f.limit !== DEFAULT_PAGE_SIZE) {
    q.set('limit', String(f.limit));
  }
  const qs = q.toString();
  return qs ? `/admin/audit?${qs}` : '/admin/audit';
}

/** /admin/audit: the append-only audit log, newest first, filtered (in the URL, so a filter is a link) and paged. */
export default function AdminAuditPage() {
  const search = useSearch();
  const [, navigate] = useLocation();
  const filters = readFilters(search);
  const [draft, setDraft] = useState<Filters>(filters);
  const [dateError, setDateError] = useState<string | null>(null);
  const actionId = useId();
  const limitId = useId();
  const refocus = useRefocus();

  // A filter link (an entry's action, actor or target) changes the URL: the form follows it.
  useEffect(() => setDraft(readFilters(search)), [search]);

  const before = filters.date ? endOfDayCursor(filters.date) : null;
  const entries = useInfiniteQuery({
    queryKey: ['admin-audit', filters.action, filters.actor, filters.target, before, filters.limit],
    queryFn: ({ pageParam }) =>
      call(
        api.GET('/api/v1/admin/audit', {
          params: {
            query: {
              action: filters.action || undefined,
              actor: filters.actor || undefined,
              target: filters.target || undefined,
              limit: filters.limit,
              before: pageParam,
            },
          },
        }),
      ),
    initialPageParam: before ?? undefined,
    getNextPageParam: (last) => last.next_before ?? undefined,
  });
  const rows = entries.data?.pages.flatMap((p) => p.entries) ?? [];
  const filtered = Boolean(filters.action || filters.actor || filters.target || filters.date);

  const apply = (e: FormEvent) => {
    e.preventDefault();
    if (draft.date && !endOfDayCursor(draft.date)) {
      setDateError('Enter a date like 2026-06-01, or leave it empty.');
      return;
    }
    setDateError(null);
    navigate(hrefFor(draft));
  };

  const filterHref: FilterHref = (field, value) => hrefFor({ ...filters, [field]: value });

  return (
    <section className="page page-wide" aria-labelledby="page-title">
      <h1 id="page-title" tabIndex={-1}>
        Audit log
      </h1>
      <AdminNav />
      <form className="form audit-filters" role="search" aria-label="Audit log" onSubmit={apply} noValidate>
        <div className="field">
          <label htmlFor={actionId}>Action</label>
          <select
            id={actionId}
            name="action"
            value={draft.action}
            onChange={(e) => setDraft({ ...draft, action: e.target.value })}
          >
            <option value="">Any action</option>
            {(ACTIONS.includes(draft.action) || !draft.action ? ACTIONS : [draft.action, ...ACTIONS]).map(
              (a) => (
                <option key={a} value={a}>
                  {a}
                </option>
              ),
            )}
          </select>
        </div>
        <Field
          label="Actor"
          name="actor"
          maxLength={254}
          value={draft.actor}
          onChange={(e) => setDraft({ ...draft, actor: e.target.value })}
          hint="An email address or a user id."
        />
        <Field
          label="Target"
          name="target"
          maxLength={254}
          value={draft.target}
          onChange={(e) => setDraft({ ...draft, target: e.target.value })}
          hint="A user id, key id, filename, webhook id or SHA-256."
        />
        <Field
          label="Up to (date)"
          name="date"
          type="date"
          value={draft.date}
          onChange={(e) => setDraft({ ...draft, date: e.target.value })}
          error={dateError}
          hint="Entries of that day and before."
        />
        <div className="field">
          <label htmlFor={limitId}>Per page</label>
          <select
            id={limitId}
            name="limit"
            value={draft.limit}
            onChange={(e) => setDraft({ ...draft, limit: Number(e.target.value) })}
          >
            {PAGE_SIZES.map((n) => (
              <option key={n} value={n}>
                {n}
              </option>
            ))}
          </select>
        </div>
        <div className="actions">
          <button type="submit" className="button button-primary">
            Apply filters
          </button>
          {filtered ? (
            <Link
              id={CLEAR_ID}
              href={hrefFor({ action: '', actor: '', target: '', date: '', limit: filters.limit })}
              className="button"
              // The link goes with the filters: focus goes to the first of them, now empty.
              onClick={() =>
                refocus(
                  () => !document.getElementById(CLEAR_ID),
                  () => document.getElementById(actionId),
                )
              }
            >
              Clear filters
            </Link>
          ) : null}
        </div>
      </form>
      {entries.isPending ? (
        <p className="status" role="status">
          Loading…
        </p>
      ) : entries.isError ? (
        <FormError message={sentenceFor(entries.error)} />
      ) : rows.length === 0 ? (
        <p className="muted" role="status">
          {filtered ? 'No entries match these filters.' : 'The audit log is empty.'}
        </p>
      ) : (
        <>
          <p className="status" role="status">
            Showing {rows.length} {rows.length === 1 ? 'entry' : 'entries'}
            {entries.hasNextPage ? ', newest first' : ', all there are'}.
          </p>
          <ol id={LIST_ID} className="audit-list" aria-label="Audit entries">
            {rows.map((entry) => (
              <AuditEntryView key={entry.id} entry={entry} filterHref={filterHref} />
            ))}
          </ol>
          {entries.hasNextPage ? (
            <button
              id={MORE_ID}
              type="button"
              className="button"
              onClick={() => {
                refocus(...afterMore(MORE_ID, () => document.getElementById(LIST_ID)?.children, rows.length));
                void entries.fetchNextPage();
              }}
              disabled={entries.isFetchingNextPage}
            >
              {entries.isFetchingNextPage ? 'Loading…' : 'Show older entries'}
            </button>
          ) : null}
        </>
      )}
    </section>
  );
}

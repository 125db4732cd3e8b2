import { useInfiniteQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useRef, useState } from 'react';
import { Link, useLocation, useSearch } from 'wouter';
import { api, call, type Schemas } from '../../api/client';
import { sentenceFor } from '../../api/errors';
import { AdminNav } from '../../components/admin/admin-nav';
import { ConfirmDialog } from '../../components/confirm-dialog';
import { Field, FormError } from '../../components/field';
import { afterMore, afterRemoval, useRefocus } from '../../components/refocus';
import { formatBytes, formatDate } from '../../lib/format';
import '../../components/admin/admin.css';

type AdminUpload = Schemas['AdminUpload'];

const PAGE_SIZE = 48;
const MORE_ID = 'more-uploads';
const GRID_ID = 'uploads-grid';
const EVERYONE_ID = 'show-everyones';
function tileId(filename: string): string {
  return `tile-${filename}`;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The 2x variant for sharp screens, from the direct link's own parameters (API.md Part 3, variants). */
function srcSetFor(upload: AdminUpload): string {
  return `${upload.thumbnail_url} 1x, ${upload.url}?w=640&format=auto 2x`;
}

/** /admin/uploads: the live uploads of every user (or of one), newest first, with delete. */
export default function AdminUploadsPage() {
  const queryClient = useQueryClient();
  const [, navigate] = useLocation();
  const user = new URLSearchParams(useSearch()).get('user') ?? '';
  const [draft, setDraft] = useState(user);
  const [fieldError, setFieldError] = useState<string | null>(null);
  const [deleting, setDeleting] = useState<AdminUpload | null>(null);
  const [notice, setNotice] = useState('');
  const validUser = UUID.test(user);
  const refocus = useRefocus();
  const userField = useRef<HTMLInputElement>(null);

  const uploads = useInfiniteQuery({
    queryKey: ['admin-uploads', user],
    queryFn: ({ pageParam }) =>
      call(
        api.GET('/api/v1/admin/uploads', {
          params: { query: { user: validUser ? user : undefined, limit: PAGE_SIZE, before: pageParam } },
        }),
      ),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.next_before ?? undefined,
  });
  const rows = uploads.data?.pages.flatMap((p) => p.uploads) ?? [];

  const filter = (e: FormEvent) => {
    e.preventDefault();
    const value = draft.trim();
    if (value && !UUID.test(value)) {
      setFieldError('A user id looks like 3f9a8c1e-…: copy it from the Users page, or leave this empty.');
      return;
    }
    setFieldError(null);
    navigate(value ? `/admin/uploads?user=${value}` : '/admin/uploads');
  };

  const remove = async (upload: AdminUpload) => {
    await call(
      api.DELETE('/api/v1/admin/uploads/{filename}', { params: { path: { filename: upload.filename } } }),
    );
    setNotice(`${upload.filename} is deleted; its direct link answers 404.`);
    // Its tile (and Delete button) goes: focus the next tile, or the page's heading.
    refocus(
      ...afterRemoval(
        rows.map((u) => u.filename),
        upload.filename,
        (filename) => document.getElementById(tileId(filename)),
        () => document.getElementById('page-title'),
      ),
    );
    await queryClient.invalidateQueries({ queryKey: ['admin-uploads'] });
  };

  return (
    <section className="page page-wide" aria-labelledby="page-title">
      <h1 id="page-title" tabIndex={-1}>
        Uploads of all users
      </h1>
      <AdminNav />
      <form className="form admin-search" role="search" aria-label="Uploads" onSubmit={filter} noValidate>
        <Field
          ref={userField}
          label="Only the uploads of user (id)"
          name="user"
          maxLength={36}
          value={draft}
          onChange={(e) => setDraft(e.target.value)}
          error={fieldError}
          hint={
            <>
              Or pick <strong>Uploads</strong> next to a user on the <Link href="/admin/users">Users</Link>{' '}
              page.
            </>
          }
        />
        <button type="submit" className="button button-primary">
          Filter
        </button>
        {user ? (
          <Link
            id={EVERYONE_ID}
            href="/admin/uploads"
            className="button"
            // The link goes once the filter is off: focus goes to the filter's field, emptied.
            onClick={() => {
              setDraft('');
              refocus(
                () => !document.getElementById(EVERYONE_ID),
                () => userField.current,
              );
            }}
          >
            Show everyone’s
          </Link>
        ) : null}
      </form>
      <p className="status" role="status">
        {notice}
      </p>
      {uploads.isPending ? (
        <p className="status" role="status">
          Loading…
        </p>
      ) : uploads.isError ? (
        <FormError message={sentenceFor(uploads.error)} />
      ) : rows.length === 0 ? (
        <p className="muted">No live uploads{user ? ' for this user' : ''}.</p>
      ) : (
        <>
          <ul id={GRID_ID} className="admin-grid" aria-label="Uploads">
            {rows.map((u) => (
              <li
                key={u.filename}
                id={tileId(u.filename)}
                className="admin-tile"
                aria-labelledby={`${tileId(u.filename)}-name`}
                tabIndex={-1}
              >
                <a href={u.url} target="_blank" rel="noreferrer" className="admin-thumb">
                  <img
                    src={u.thumbnail_url}
                    srcSet={srcSetFor(u)}
                    sizes="160px"
                    width={160}
                    height={Math.max(1, Math.round((160 * u.height) / Math.max(1, u.width)))}
                    loading="lazy"
                    decoding="async"
                    alt={`${u.filename} by ${u.owner.email}`}
                  />
                </a>
                <p id={`${tileId(u.filename)}-name`} className="tile-name">
                  {u.filename}
                </p>
                <p className="tile-meta">
                  <Link href={`/admin/uploads?user=${u.owner.id}`}>{u.owner.email}</Link>
                </p>
                <p className="tile-meta">
                  {formatBytes(u.size)} · {u.mime.replace('image/', '').toUpperCase()} · {u.width}×{u.height}
                </p>
                <p className="tile-meta">
                  <time dateTime={u.created_at}>{formatDate(u.created_at)}</time>
                </p>
                <button
                  type="button"
                  className="button button-small button-danger"
                  aria-label={`Delete ${u.filename}`}
                  onClick={() => setDeleting(u)}
                >
                  Delete
                </button>
              </li>
            ))}
          </ul>
          {uploads.hasNextPage ? (
            <button
              id={MORE_ID}
              type="button"
              className="button"
              onClick={() => {
                refocus(...afterMore(MORE_ID, () => document.getElementById(GRID_ID)?.children, rows.length));
                void uploads.fetchNextPage();
              }}
              disabled={uploads.isFetchingNextPage}
            >
              {uploads.isFetchingNextPage ? 'Loading…' : 'Show more uploads'}
            </button>
          ) : null}
        </>
      )}
      <ConfirmDialog
        open={deleting !== null}
        title={`Delete ${deleting?.filename ?? ''}?`}
        description={
          <p>
            The upload of {deleting?.owner.email ?? ''} is deleted for good: its direct link answers 404 at
            once and the owner gets no warning.
          </p>
        }
        confirmLabel="Delete upload"
        onConfirm={() => (deleting ? remove(deleting) : Promise.resolve())}
        onClose={() => setDeleting(null)}
      />
    </section>
  );
}

import { useInfiniteQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { Link, useLocation, useSearch } from 'wouter';
import { api, call, type Schemas } from '../../api/client';
import { sentenceFor } from '../../api/errors';
import { useUser } from '../../api/session';
import { AdminNav } from '../../components/admin/admin-nav';
import { BanDialog } from '../../components/admin/ban-dialog';
import { QuotaDialog, type QuotaValues } from '../../components/admin/quota-dialog';
import { ConfirmDialog } from '../../components/confirm-dialog';
import { Field, FormError } from '../../components/field';
import { afterMore, useRefocus } from '../../components/refocus';
import { formatBytes, formatDate } from '../../lib/format';
import '../../components/admin/admin.css';

type AdminUser = Schemas['AdminUser'];

const PAGE_SIZE = 50;
const MORE_ID = 'more-users';
const TABLE_ID = 'users-table';

/** The quota in force, e.g. "100 MB, 500 files" or "unlimited". */
function quotaText(u: Pick<AdminUser, 'quota_bytes' | 'quota_files'>): string {
  const bytes = u.quota_bytes === null ? 'unlimited storage' : formatBytes(u.quota_bytes);
  const files = u.quota_files === null ? 'unlimited files' : `${u.quota_files} files`;
  return u.quota_bytes === null && u.quota_files === null ? 'unlimited' : `${bytes}, ${files}`;
}

/** /admin/users: search by email; role, ban state and usage; ban (with a reason) and unban. */
export default function AdminUsersPage() {
  const me = useUser();
  const queryClient = useQueryClient();
  const [, navigate] = useLocation();
  const query = new URLSearchParams(useSearch()).get('query') ?? '';
  const [draft, setDraft] = useState(query);
  const [banning, setBanning] = useState<AdminUser | null>(null);
  const [unbanning, setUnbanning] = useState<AdminUser | null>(null);
  const [quotaOf, setQuotaOf] = useState<AdminUser | null>(null);
  const [notice, setNotice] = useState('');
  const refocus = useRefocus();

  const users = useInfiniteQuery({
    queryKey: ['admin-users', query],
    queryFn: ({ pageParam }) =>
      call(
        api.GET('/api/v1/admin/users', {
          params: { query: { query: query || undefined, limit: PAGE_SIZE, before: pageParam } },
        }),
      ),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.next_before ?? undefined,
  });
  const rows = users.data?.pages.flatMap((p) => p.users) ?? [];

  const search = (e: FormEvent) => {
    e.preventDefault();
    const value = draft.trim();
    navigate(value ? `/admin/users?query=${encodeURIComponent(value)}` : '/admin/users');
  };

  const ban = async (user: AdminUser, reason: string) => {
    await call(
      api.POST('/api/v1/admin/users/{id}/ban', { params: { path: { id: user.id } }, body: { reason } }),
    );
    setNotice(`${user.email} is banned.`);
    await queryClient.invalidateQueries({ queryKey: ['admin-users'] });
  };

  const setQuota = async (user: AdminUser, values: QuotaValues) => {
    const updated = await call(
      api.PATCH('/api/v1/admin/users/{id}', { params: { path: { id: user.id } }, body: values }),
    );
    setNotice(`${user.email}: quota now ${quotaText(updated.user)}.`);
    await queryClient.invalidateQueries({ queryKey: ['admin-users'] });
  };

  const unban = async (user: AdminUser) => {
    await call(api.POST('/api/v1/admin/users/{id}/unban', { params: { path: { id: user.id } } }));
    setNotice(`${user.email} is no longer banned.`);
    await queryClient.invalidateQueries({ queryKey: ['admin-users'] });
  };

  return (
    <section className="page page-wide" aria-labelledby="page-title">
      <h1 id="page-title" tabIndex={-1}>
        Users
      </h1>
      <AdminNav />
      <form className="form admin-search" role="search" aria-label="Users" onSubmit={search}>
        <Field
          label="Search by email"
          type="search"
          name="query"
          maxLength={254}
          value={draft}
          onChange={(e) => setDraft(e.target.value)}
          hint="Any part of an address, e.g. example.com."
        />
        <button type="submit" className="button button-primary">
          Search
        </button>
      </form>
      <p className="status" role="status">
        {notice}
      </p>
      {users.isPending ? (
        <p className="status" role="status">
          Loading…
        </p>
      ) : users.isError ? (
        <FormError message={sentenceFor(users.error)} />
      ) : rows.length === 0 ? (
        <p className="muted">{query ? `No user's email contains “${query}”.` : 'No users yet.'}</p>
      ) : (
        <>
          <div className="table-wrap">
            <table id={TABLE_ID}>
              <caption className="visually-hidden">Users{query ? ` matching ${query}` : ''}</caption>
              <thead>
                <tr>
                  <th scope="col">Email</th>
                  <th scope="col">Role</th>
                  <th scope="col">Status</th>
                  <th scope="col">Uploads</th>
                  <th scope="col">Storage</th>
                  <th scope="col">Quota</th>
                  <th scope="col">Joined</th>
                  <th scope="col">Actions</th>
                </tr>
              </thead>
              <tbody>
                {rows.map((u) => (
                  <tr key={u.id}>
                    <th scope="row" className="cell-wrap">
                      {u.email}
                    </th>
                    <td>{u.role}</td>
                    <td className="cell-wrap">
                      {u.banned ? (
                        <>
                          <span className="badge badge-danger">Banned</span> {formatDate(u.banned_at)}
                          {u.ban_reason ? <span className="ban-reason">Reason: {u.ban_reason}</span> : null}
                        </>
                      ) : (
                        <span className="badge badge-ok">Active</span>
                      )}
                    </td>
                    <td>{u.uploads_active}</td>
                    <td>{formatBytes(u.storage_used_bytes)}</td>
                    <td className="cell-wrap">{quotaText(u)}</td>
                    <td>{formatDate(u.created_at)}</td>
                    <td>
                      <div className="actions">
                        <Link href={`/admin/uploads?user=${u.id}`} aria-label={`Uploads of ${u.email}`}>
                          Uploads
                        </Link>
                        <Link
                          href={`/admin/audit?target=${u.id}`}
                          aria-label={`Audit entries about ${u.email}`}
                        >
                          Audit
                        </Link>
                        <button
                          type="button"
                          className="button button-small"
                          aria-label={`Set quota of ${u.email}`}
                          onClick={() => setQuotaOf(u)}
                        >
                          Quota
                        </button>
                        {u.banned ? (
                          <button
                            type="button"
                            className="button button-small"
                            aria-label={`Unban ${u.email}`}
                            onClick={() => setUnbanning(u)}
                          >
                            Unban
                          </button>
                        ) : u.id === me.id ? null : (
                          <button
                            type="button"
                            className="button button-small button-danger"
                            aria-label={`Ban ${u.email}`}
                            onClick={() => setBanning(u)}
                          >
                            Ban
                          </button>
                        )}
                      </div>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {users.hasNextPage ? (
            <button
              id={MORE_ID}
              type="button"
              className="button"
              onClick={() => {
                const body = () =>
                  (document.getElementById(TABLE_ID) as HTMLTableElement | null)?.tBodies[0]?.rows;
                refocus(...afterMore(MORE_ID, body, rows.length));
                void users.fetchNextPage();
              }}
              disabled={users.isFetchingNextPage}
            >
              {users.isFetchingNextPage ? 'Loading…' : 'Show more users'}
            </button>
          ) : null}
        </>
      )}
      <BanDialog
        email={banning?.email ?? null}
        onBan={(reason) => (banning ? ban(banning, reason) : Promise.resolve())}
        onClose={() => setBanning(null)}
      />
      <QuotaDialog
        email={quotaOf?.email ?? null}
        onSave={(values) => (quotaOf ? setQuota(quotaOf, values) : Promise.resolve())}
        onClose={() => setQuotaOf(null)}
      />
      <ConfirmDialog
        open={unbanning !== null}
        title={`Unban ${unbanning?.email ?? ''}?`}
        description={<p>Their keys and sign-in work again at once.</p>}
        confirmLabel="Unban user"
        danger={false}
        onConfirm={() => (unbanning ? unban(unbanning) : Promise.resolve())}
        onClose={() => setUnbanning(null)}
      />
    </section>
  );
}

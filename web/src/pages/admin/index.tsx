import { useQuery } from '@tanstack/react-query';
import { Link } from 'wouter';
import { api, call } from '../../api/client';
import { sentenceFor } from '../../api/errors';
import { AdminNav } from '../../components/admin/admin-nav';
import { FormError } from '../../components/field';
import { formatDate } from '../../lib/format';
import '../../components/admin/admin.css';

const SECTIONS = [
  {
    href: '/admin/users',
    title: 'Users',
    text: 'Search accounts, see their uploads and storage, ban with a reason or lift a ban.',
  },
  {
    href: '/admin/uploads',
    title: 'Uploads',
    text: 'The uploads of every user, newest first; delete any of them.',
  },
  {
    href: '/admin/audit',
    title: 'Audit log',
    text: 'Who did what and when: sign-ups, failed sign-ins, keys, bans, deletions, webhooks.',
  },
];

/** /admin: where the admin pages are, and the latest audit entries. */
export default function AdminPage() {
  const latest = useQuery({
    queryKey: ['admin-audit-latest'],
    queryFn: () => call(api.GET('/api/v1/admin/audit', { params: { query: { limit: 5 } } })),
  });
  return (
    <section className="page page-wide" aria-labelledby="page-title">
      <h1 id="page-title" tabIndex={-1}>
        Admin
      </h1>
      <AdminNav />
      <ul className="admin-cards">
        {SECTIONS.map((s) => (
          <li key={s.href}>
            <h2>
              <Link href={s.href}>{s.title}</Link>
            </h2>
            <p>{s.text}</p>
          </li>
        ))}
      </ul>
      <h2>Latest in the audit log</h2>
      {latest.isPending ? (
        <p className="status" role="status">
          Loading…
        </p>
      ) : latest.isError ? (
        <FormError message={sentenceFor(latest.error)} />
      ) : latest.data.entries.length === 0 ? (
        <p className="muted">Nothing yet.</p>
      ) : (
        <ul className="audit-latest">
          {latest.data.entries.map((e) => (
            <li key={e.id}>
              <code>{e.action}</code> by {e.actor?.email ?? e.actor?.id ?? 'nobody signed in'},{' '}
              <time dateTime={e.created_at}>{formatDate(e.created_at)}</time>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

import { Link, useLocation } from 'wouter';

const SECTIONS = [
  { href: '/admin', label: 'Overview' },
  { href: '/admin/users', label: 'Users' },
  { href: '/admin/uploads', label: 'Uploads' },
  { href: '/admin/audit', label: 'Audit log' },
];

/** The admin pages' own navigation, under the page title. */
export function AdminNav() {
  const [location] = useLocation();
  return (
    <nav aria-label="Admin" className="admin-nav">
      <ul>
        {SECTIONS.map((s) => (
          <li key={s.href}>
            <Link href={s.href} aria-current={location === s.href ? 'page' : undefined}>
              {s.label}
            </Link>
          </li>
        ))}
      </ul>
    </nav>
  );
}

import { type ReactNode } from 'react';
import { Link, useLocation } from 'wouter';
import { useSession } from '../api/session';
import { NAV } from '../routes';
import { usePageFocus } from './page-focus';

function isCurrent(location: string, href: string): boolean {
  // "Uploads" (/dashboard) is current only on itself; the others on their sub-pages too.
  return href === '/dashboard' ? location === href : location === href || location.startsWith(`${href}/`);
}

/** The shell of the signed-in pages: header with navigation and Sign out, then the page. */
export function Layout({ children }: { children: ReactNode }) {
  const { state, signOut } = useSession();
  const [location, navigate] = useLocation();
  const user = state.status === 'signed-in' ? state.user : null;
  // After every move to another page (sign-out's to sign-in too), the focus goes to its heading.
  usePageFocus('main');

  return (
    <>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="site-header">
        <Link href={user ? '/dashboard' : '/login'} className="brand">
          Fixitfy Upload
        </Link>
        {user ? (
          <>
            <nav aria-label="Main" className="site-nav">
              <ul>
                {NAV.filter((item) => !item.admin || user.role === 'admin').map((item) => (
                  <li key={item.href}>
                    <Link href={item.href} aria-current={isCurrent(location, item.href) ? 'page' : undefined}>
                      {item.label}
                    </Link>
                  </li>
                ))}
              </ul>
            </nav>
            <div className="account">
              <span className="account-email" title={user.email}>
                {user.email}
              </span>
              <button
                type="button"
                className="button"
                onClick={() => void signOut().then(() => navigate('/login', { replace: true }))}
              >
                Sign out
              </button>
            </div>
          </>
        ) : null}
      </header>
      <main id="main" tabIndex={-1}>
        {children}
      </main>
    </>
  );
}

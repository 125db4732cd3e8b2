import { type ReactNode, useEffect } from 'react';
import { useLocation, useSearch } from 'wouter';
import { useSession } from '../api/session';
import { loginUrlFor } from '../lib/next-path';

/**
 * Pages of signed-in people: a signed-out visit goes to /login?next=<this page>, and the login page comes back
 * here. `admin` pages show non-admins a page that says so (never a blank one).
 */
export function AuthGuard({ admin = false, children }: { admin?: boolean; children: ReactNode }) {
  const { state } = useSession();
  const [location, navigate] = useLocation();
  const search = useSearch();

  useEffect(() => {
    if (state.status === 'signed-out') {
      navigate(loginUrlFor(location + (search ? `?${search}` : '')), { replace: true });
    }
  }, [state.status, location, search, navigate]);

  if (state.status !== 'signed-in') {
    return (
      <p className="status" role="status">
        Loading…
      </p>
    );
  }
  if (admin && state.user.role !== 'admin') {
    return (
      <section className="page" aria-labelledby="admins-only">
        <h1 id="admins-only" tabIndex={-1}>
          Admins only
        </h1>
        <p>These pages are for the administrators of this server. Your account is not an admin account.</p>
      </section>
    );
  }
  return children;
}

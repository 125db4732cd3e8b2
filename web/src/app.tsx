import { Suspense, useLayoutEffect } from 'react';
import { Redirect, Route, Switch } from 'wouter';
import { useSession } from './api/session';
import { AuthGuard } from './components/auth-guard';
import { Layout } from './components/layout';
import NotFoundPage from './pages/not-found';
import { type PageRoute, ROUTES } from './routes';

/** The document title, set before the shell gives the new page's heading the focus (its layout effect runs after). */
function useTitle(title: string) {
  useLayoutEffect(() => {
    document.title = `${title} · Fixitfy Upload`;
  }, [title]);
}

function NotFoundView() {
  useTitle('Page not found');
  return <NotFoundPage />;
}

function PageView({ route }: { route: PageRoute }) {
  const { state } = useSession();
  // A non-admin on an admin page reads "Admins only" (AuthGuard's heading) in the tab and the history too.
  const refused = route.access === 'admin' && state.status === 'signed-in' && state.user.role !== 'admin';
  useTitle(refused ? 'Admins only' : route.title);
  const Page = route.page;
  const page = (
    <Suspense
      fallback={
        <p className="status" role="status">
          Loading…
        </p>
      }
    >
      <Page />
    </Suspense>
  );
  return route.access === 'public' ? page : <AuthGuard admin={route.access === 'admin'}>{page}</AuthGuard>;
}

/** The router: the route table, `/` → /dashboard, and a not-found page for the rest. */
export function App() {
  return (
    <Layout>
      <Switch>
        {ROUTES.map((route) => (
          <Route key={route.path} path={route.path}>
            <PageView route={route} />
          </Route>
        ))}
        <Route path="/">
          <Redirect to="/dashboard" replace />
        </Route>
        <Route>
          <NotFoundView />
        </Route>
      </Switch>
    </Layout>
  );
}

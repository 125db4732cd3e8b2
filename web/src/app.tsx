import { Suspense, useEffect } from 'react';
import { Redirect, Route, Switch } from 'wouter';
import { AuthGuard } from './components/auth-guard';
import { Layout } from './components/layout';
import NotFoundPage from './pages/not-found';
import { type PageRoute, ROUTES } from './routes';

function PageView({ route }: { route: PageRoute }) {
  useEffect(() => {
    document.title = `${route.title} · Fixitfy Upload`;
  }, [route.title]);
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
          <NotFoundPage />
        </Route>
      </Switch>
    </Layout>
  );
}

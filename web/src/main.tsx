import { MutationCache, QueryCache, QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { ApiError } from './api/client';
import { SessionProvider } from './api/session';
import { App } from './app';
import { notifySignedOut } from './api/signed-out';
import './styles.css';

function onError(err: unknown) {
  // The session ended elsewhere (logout in another tab, expiry): the guard sends the person to /login and back.
  if (err instanceof ApiError && err.code === 'unauthorized') {
    notifySignedOut();
  }
}

const queryClient = new QueryClient({
  queryCache: new QueryCache({ onError }),
  mutationCache: new MutationCache({ onError }),
  defaultOptions: {
    queries: {
      staleTime: 10_000,
      refetchOnWindowFocus: false,
      // Retry only what may pass on a second try: the network and 5xx, twice.
      retry: (count, err) =>
        err instanceof ApiError && (err.code === 'network' || err.status >= 500) && count < 2,
    },
  },
});

const root = document.getElementById('root');
if (!root) {
  throw new Error('index.html has no #root');
}
createRoot(root).render(
  <StrictMode>
    <QueryClientProvider client={queryClient}>
      <SessionProvider>
        <App />
      </SessionProvider>
    </QueryClientProvider>
  </StrictMode>,
);

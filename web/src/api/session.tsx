import { useQueryClient } from '@tanstack/react-query';
import { createContext, type ReactNode, useCallback, useContext, useEffect, useMemo, useState } from 'react';
import { api, ApiError, call, setCsrfToken, type Schemas } from './client';
import { sentenceFor } from './errors';
import { onSignedOut } from './signed-out';

export type SessionUser = Schemas['UserResponse'];

export type SessionState =
  | { status: 'loading'; user: null }
  /** `reason`: why the server ended the session (a ban), as the sentence the sign-in page shows. */
  | { status: 'signed-out'; user: null; reason?: string }
  | { status: 'signed-in'; user: SessionUser };

export interface SessionApi {
  state: SessionState;
  signIn: (email: string, password: string) => Promise<SessionUser>;
  register: (email: string, password: string) => Promise<SessionUser>;
  signOut: () => Promise<void>;
  /** The server said this session is gone (401 on a call): forget it here too. */
  forget: () => void;
  /** Asks the server again (after sign-in, or to pick up a role change). */
  refresh: () => Promise<SessionState>;
}

const SessionContext = createContext<SessionApi | null>(null);

/** Reads GET /api/v1/auth/session: the user and the CSRF token (kept in memory by the client module). */
async function loadSession(): Promise<SessionState> {
  try {
    const data = await call(api.GET('/api/v1/auth/session'));
    setCsrfToken(data.csrf_token);
    return { status: 'signed-in', user: data.user };
  } catch (err) {
    setCsrfToken(null);
    if (err instanceof ApiError && err.code === 'banned') {
      // The session is the banned account's: sign-in says so (and tells the reason when they try again).
      return { status: 'signed-out', user: null, reason: sentenceFor(err) };
    }
    if (err instanceof ApiError && err.code === 'unauthorized') {
      return { status: 'signed-out', user: null };
    }
    throw err;
  }
}

export function SessionProvider({ children }: { children: ReactNode }) {
  const [state, setState] = useState<SessionState>({ status: 'loading', user: null });
  const queryClient = useQueryClient();

  const refresh = useCallback(async () => {
    const next = await loadSession().catch((): SessionState => ({ status: 'signed-out', user: null }));
    setState(next);
    return next;
  }, []);

  useEffect(() => {
    void refresh();
  }, [refresh]);

  useEffect(
    () =>
      onSignedOut((cause) => {
        setCsrfToken(null);
        setState((current) =>
          current.status === 'signed-in'
            ? { status: 'signed-out', user: null, reason: cause ? sentenceFor(cause) : undefined }
            : current,
        );
      }),
    [],
  );

  const afterSignIn = useCallback(async (): Promise<SessionUser> => {
    queryClient.clear();
    const next = await loadSession();
    setState(next);
    if (next.status !== 'signed-in') {
      throw new ApiError(401, 'unauthorized', 'The session did not start.');
    }
    return next.user;
  }, [queryClient]);

  const value = useMemo<SessionApi>(
    () => ({
      state,
      refresh,
      signIn: async (email, password) => {
        await call(api.POST('/api/v1/auth/login', { body: { email, password } }));
        return afterSignIn();
      },
      register: async (email, password) => {
        await call(api.POST('/api/v1/auth/register', { body: { email, password } }));
        return afterSignIn();
      },
      signOut: async () => {
        await call(api.POST('/api/v1/auth/logout')).catch(() => undefined);
        setCsrfToken(null);
        queryClient.clear();
        setState({ status: 'signed-out', user: null });
      },
      forget: () => {
        setCsrfToken(null);
        queryClient.clear();
        setState({ status: 'signed-out', user: null });
      },
    }),
    [state, refresh, afterSignIn, queryClient],
  );

  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>;
}

export function useSession(): SessionApi {
  const session = useContext(SessionContext);
  if (!session) {
    throw new Error('useSession outside SessionProvider');
  }
  return session;
}

/** The signed-in user; only for pages behind the auth guard. */
export function useUser(): SessionUser {
  const { state } = useSession();
  if (state.status !== 'signed-in') {
    throw new Error('useUser on a signed-out page');
  }
  return state.user;
}

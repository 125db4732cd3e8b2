import type { ApiError } from './client';

/** The answer that ended the session: a 403 `banned` (its sentence is shown on sign-in), or null for a 401. */
type Listener = (cause: ApiError | null) => void;
const listeners = new Set<Listener>();

/** The server answered 401, or 403 `banned`, to a signed-in call: the session provider forgets the session. */
export function notifySignedOut(cause: ApiError | null = null): void {
  for (const listener of listeners) {
    listener(cause);
  }
}

export function onSignedOut(listener: Listener): () => void {
  listeners.add(listener);
  return () => {
    listeners.delete(listener);
  };
}

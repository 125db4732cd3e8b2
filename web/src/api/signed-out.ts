type Listener = () => void;
const listeners = new Set<Listener>();

/** The server answered 401 to a signed-in call: the session provider forgets the session. */
export function notifySignedOut(): void {
  for (const listener of listeners) {
    listener();
  }
}

export function onSignedOut(listener: Listener): () => void {
  listeners.add(listener);
  return () => {
    listeners.delete(listener);
  };
}

/** Where to go after sign-in: only a path on this site (never `//host` or `https://…`, no open redirect). */
export function safeNext(raw: string | null | undefined, fallback = '/dashboard'): string {
  if (!raw || !raw.startsWith('/') || raw.startsWith('//') || raw.startsWith('/\\')) {
    return fallback;
  }
  return raw;
}

/** The /login URL that comes back to `path` (with its query) after sign-in. */
export function loginUrlFor(path: string): string {
  return `/login?next=${encodeURIComponent(path)}`;
}

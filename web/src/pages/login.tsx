import { type FormEvent, useEffect, useState } from 'react';
import { Link, useLocation, useSearch } from 'wouter';
import { ApiError } from '../api/client';
import { sentenceFor } from '../api/errors';
import { useSession } from '../api/session';
import { Field, FormError } from '../components/field';
import { afterAction, useRefocus } from '../components/refocus';
import { safeNext } from '../lib/next-path';

/** The reason a sign-in failed, as a sentence (a ban says why when the server gives the reason). */
function signInError(err: unknown): string {
  if (err instanceof ApiError && err.code === 'unauthorized') {
    return 'Wrong email or password.';
  }
  return sentenceFor(err);
}

const SUBMIT_ID = 'sign-in';

export default function LoginPage() {
  const { state, signIn } = useSession();
  const [, navigate] = useLocation();
  const next = safeNext(new URLSearchParams(useSearch()).get('next'));
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  // Refused, the button (disabled while it waited, which took the focus off it) gets the focus back.
  const refocus = useRefocus();
  // Why the server ended the session (a ban), until the person tries again: then the sign-in's own answer speaks.
  const reason = state.status === 'signed-out' ? (state.reason ?? null) : null;
  const [tried, setTried] = useState(false);

  useEffect(() => {
    if (state.status === 'signed-in') {
      navigate(next, { replace: true });
    }
  }, [state.status, next, navigate]);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setTried(true);
    setError(null);
    try {
      await signIn(email.trim(), password);
      // The effect above navigates once the session is known.
    } catch (err) {
      setError(signInError(err));
      setBusy(false);
      // Asked for on the answer, not before: repeated failures are answered up to 10 s late.
      refocus(...afterAction(SUBMIT_ID, () => null));
    }
  };

  return (
    <section className="page page-narrow" aria-labelledby="login-title">
      <h1 id="login-title" tabIndex={-1}>
        Sign in
      </h1>
      <form className="form" onSubmit={(e) => void submit(e)} noValidate={false}>
        <Field
          label="Email"
          type="email"
          name="email"
          autoComplete="username"
          required
          value={email}
          onChange={(e) => setEmail(e.target.value)}
        />
        <Field
          label="Password"
          type="password"
          name="password"
          autoComplete="current-password"
          required
          value={password}
          onChange={(e) => setPassword(e.target.value)}
        />
        <FormError message={tried ? error : reason} />
        <button id={SUBMIT_ID} type="submit" className="button button-primary" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
      <p>
        No account yet?{' '}
        <Link href={`/register${next === '/dashboard' ? '' : `?next=${encodeURIComponent(next)}`}`}>
          Create one
        </Link>
        .
      </p>
    </section>
  );
}

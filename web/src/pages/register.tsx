import { type FormEvent, useEffect, useState } from 'react';
import { Link, useLocation, useSearch } from 'wouter';
import { ApiError } from '../api/client';
import { sentenceFor } from '../api/errors';
import { useSession } from '../api/session';
import { Field, FormError } from '../components/field';
import { afterAction, useRefocus } from '../components/refocus';
import { safeNext } from '../lib/next-path';

const MIN_PASSWORD = 10;

const SUBMIT_ID = 'create-account';

export default function RegisterPage() {
  const { state, register } = useSession();
  const [, navigate] = useLocation();
  const next = safeNext(new URLSearchParams(useSearch()).get('next'));
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [passwordError, setPasswordError] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [closed, setClosed] = useState(false);
  const [busy, setBusy] = useState(false);
  // Refused, the button (disabled while it waited, which took the focus off it) gets the focus back.
  const refocus = useRefocus();

  useEffect(() => {
    if (state.status === 'signed-in') {
      navigate(next, { replace: true });
    }
  }, [state.status, next, navigate]);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    if (password.length < MIN_PASSWORD) {
      setPasswordError(`The password must be at least ${MIN_PASSWORD} characters.`);
      return;
    }
    setPasswordError(null);
    setBusy(true);
    // Registration closed replaces the form: focus goes to the sentence that says so.
    refocus(...afterAction(SUBMIT_ID, () => document.getElementById('registration-closed')));
    try {
      await register(email.trim(), password);
    } catch (err) {
      if (err instanceof ApiError && err.code === 'forbidden') {
        setClosed(true);
      } else {
        setError(sentenceFor(err));
      }
      setBusy(false);
    }
  };

  if (closed) {
    return (
      <section className="page page-narrow" aria-labelledby="register-title">
        <h1 id="register-title" tabIndex={-1}>
          Create an account
        </h1>
        <p id="registration-closed" className="notice" role="alert" tabIndex={-1}>
          Registration is closed on this server. Ask its administrator for an account.
        </p>
        <p>
          Already have one? <Link href="/login">Sign in</Link>.
        </p>
      </section>
    );
  }

  return (
    <section className="page page-narrow" aria-labelledby="register-title">
      <h1 id="register-title" tabIndex={-1}>
        Create an account
      </h1>
      <form className="form" onSubmit={(e) => void submit(e)}>
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
          autoComplete="new-password"
          required
          hint={`At least ${MIN_PASSWORD} characters.`}
          error={passwordError}
          value={password}
          onChange={(e) => setPassword(e.target.value)}
        />
        <FormError message={error} />
        <button id={SUBMIT_ID} type="submit" className="button button-primary" disabled={busy}>
          {busy ? 'Creating…' : 'Create account'}
        </button>
      </form>
      <p>
        Already have an account? <Link href="/login">Sign in</Link>.
      </p>
    </section>
  );
}

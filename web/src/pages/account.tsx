import { useMutation } from '@tanstack/react-query';
import { type FormEvent, useRef, useState } from 'react';
import { api, ApiError, call } from '../api/client';
import { sentenceFor } from '../api/errors';
import { useUser } from '../api/session';
import { Field, FormError } from '../components/field';
import { afterAction, useRefocus } from '../components/refocus';
import '../components/account/account.css';

/** API.md, Auth: a password is 10 to 200 characters (the server says so too; checked here before sending). */
const MIN_PASSWORD = 10;
const MAX_PASSWORD = 200;
const SUBMIT_ID = 'change-password';
const STATUS_ID = 'change-password-status';

/** "Password changed." and what happened to the account's other sessions, in words. */
function changedSentence(ended: number): string {
  if (ended === 0) {
    return 'Password changed. No other session was signed in.';
  }
  return ended === 1
    ? 'Password changed. 1 other session was signed out.'
    : `Password changed. ${ended} other sessions were signed out.`;
}

interface FieldErrors {
  current?: string;
  next?: string;
  confirm?: string;
}

/** The client's own checks: the same rules as the server, and the confirmation. */
function check(current: string, next: string, confirm: string): FieldErrors {
  const errors: FieldErrors = {};
  if (!current) {
    errors.current = 'Enter your current password.';
  }
  if (next.length < MIN_PASSWORD) {
    errors.next = `The new password must be at least ${MIN_PASSWORD} characters.`;
  } else if (next.length > MAX_PASSWORD) {
    errors.next = `The new password must be at most ${MAX_PASSWORD} characters.`;
  } else if (next !== confirm) {
    errors.confirm = 'The two new passwords are not the same.';
  }
  return errors;
}

/** /dashboard/account: who is signed in, and a password change that signs out the account's other sessions. */
export default function AccountPage() {
  const user = useUser();
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [confirm, setConfirm] = useState('');
  const [errors, setErrors] = useState<FieldErrors>({});
  const [formError, setFormError] = useState<string | null>(null);
  const [notice, setNotice] = useState('');
  const currentInput = useRef<HTMLInputElement>(null);
  const nextInput = useRef<HTMLInputElement>(null);
  const confirmInput = useRef<HTMLInputElement>(null);
  // The button is disabled while the server answers (up to 10 s after repeated failures), which takes the focus
  // off it: asked for on the answer (never before, so the wait cannot outlast useRefocus's), focus comes back to it.
  const refocus = useRefocus();

  const change = useMutation({
    mutationFn: (body: { current_password: string; new_password: string }) =>
      call(api.POST('/api/v1/auth/password', { body })),
    onSuccess: (data) => {
      setCurrent('');
      setNext('');
      setConfirm('');
      setNotice(changedSentence(data.sessions_ended));
      refocus(...afterAction(SUBMIT_ID, () => document.getElementById(STATUS_ID)));
    },
    onError: (err) => {
      // The wrong current password and the server's own rules on the new one go next to their fields.
      if (err instanceof ApiError && err.code === 'forbidden') {
        setErrors({ current: sentenceFor(err) });
        currentInput.current?.focus();
      } else if (err instanceof ApiError && err.code === 'bad_request') {
        setErrors({ next: sentenceFor(err) });
        nextInput.current?.focus();
      } else {
        setFormError(sentenceFor(err));
        refocus(...afterAction(SUBMIT_ID, () => null));
      }
    },
  });

  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (change.isPending) {
      return;
    }
    setNotice('');
    setFormError(null);
    const found = check(current, next, confirm);
    setErrors(found);
    if (found.current || found.next || found.confirm) {
      (found.current ? currentInput : found.next ? nextInput : confirmInput).current?.focus();
      return;
    }
    change.mutate({ current_password: current, new_password: next });
  };

  return (
    <section className="page" aria-labelledby="account-title">
      <h1 id="account-title" tabIndex={-1}>
        Account
      </h1>
      <dl className="account-facts">
        <div>
          <dt>Signed in as</dt>
          <dd>{user.email}</dd>
        </div>
      </dl>

      <h2 id="password-title">Change password</h2>
      <p>
        Your other devices and browsers are signed out; this one stays signed in. API keys and upload tokens
        keep working.
      </p>
      <form className="form password-form" aria-labelledby="password-title" onSubmit={submit} noValidate>
        {/* For password managers: the account whose password this is. */}
        <input type="email" name="username" autoComplete="username" value={user.email} readOnly hidden />
        <Field
          ref={currentInput}
          label="Current password"
          type="password"
          name="current-password"
          autoComplete="current-password"
          required
          value={current}
          onChange={(e) => setCurrent(e.target.value)}
          error={errors.current}
        />
        <Field
          ref={nextInput}
          label="New password"
          type="password"
          name="new-password"
          autoComplete="new-password"
          required
          hint={`At least ${MIN_PASSWORD} characters.`}
          value={next}
          onChange={(e) => setNext(e.target.value)}
          error={errors.next}
        />
        <Field
          ref={confirmInput}
          label="Confirm new password"
          type="password"
          name="confirm-password"
          autoComplete="new-password"
          required
          value={confirm}
          onChange={(e) => setConfirm(e.target.value)}
          error={errors.confirm}
        />
        <FormError message={formError} />
        <button id={SUBMIT_ID} type="submit" className="button button-primary" disabled={change.isPending}>
          {change.isPending ? 'Changing password…' : 'Change password'}
        </button>
        <p id={STATUS_ID} className="status" role="status" tabIndex={-1}>
          {notice}
        </p>
      </form>
    </section>
  );
}

import { type FormEvent, useRef, useState } from 'react';
import { sentenceFor } from '../../api/errors';
import { Dialog } from '../dialog';
import { Field, FormError } from '../field';
import { useRefocusOnRefusal } from '../refocus';

export interface BanDialogProps {
  /** The user to ban; the dialog is open while set. */
  email: string | null;
  onBan: (reason: string) => Promise<unknown>;
  onClose: () => void;
}

/** Ban with a reason (1–500 characters, kept on the user and in the audit log): the confirmation is the form. */
export function BanDialog({ email, onBan, onClose }: BanDialogProps) {
  const [reason, setReason] = useState('');
  const [fieldError, setFieldError] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submitButton = useRef<HTMLButtonElement>(null);
  useRefocusOnRefusal(email !== null && !busy && error !== null, submitButton);

  const close = () => {
    setReason('');
    setFieldError(null);
    setError(null);
    onClose();
  };

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const value = reason.trim();
    if (value.length === 0) {
      setFieldError('Give a reason: it is shown in the audit log.');
      return;
    }
    setFieldError(null);
    setError(null);
    setBusy(true);
    try {
      await onBan(value);
      close();
    } catch (err) {
      setError(sentenceFor(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <Dialog
      open={email !== null}
      onClose={close}
      title={`Ban ${email ?? ''}?`}
      role="alertdialog"
      description={
        <p>
          Every key, upload token and session of this account stops working at once: they are refused with
          “This account is banned.” The website and signing in show them your reason. Their images stay
          online. You can lift the ban later.
        </p>
      }
      actions={
        <>
          <button type="button" className="button" onClick={close}>
            Cancel
          </button>
          <button
            ref={submitButton}
            type="submit"
            form="ban-form"
            className="button button-danger"
            disabled={busy}
          >
            {busy ? 'Working…' : 'Ban user'}
          </button>
        </>
      }
    >
      <form id="ban-form" className="form" onSubmit={(e) => void submit(e)} noValidate>
        <Field
          label="Reason"
          name="reason"
          maxLength={500}
          required
          autoFocus
          value={reason}
          onChange={(e) => setReason(e.target.value)}
          error={fieldError}
        />
        <FormError message={error} />
      </form>
    </Dialog>
  );
}

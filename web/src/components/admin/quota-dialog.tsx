import { type FormEvent, useRef, useState } from 'react';
import { sentenceFor } from '../../api/errors';
import { Dialog } from '../dialog';
import { Field, FormError } from '../field';
import { useRefocusOnRefusal } from '../refocus';

export interface QuotaValues {
  /** null: back to the server default (STORAGE_QUOTA_BYTES / STORAGE_QUOTA_FILES). */
  quota_bytes: number | null;
  quota_files: number | null;
}

export interface QuotaDialogProps {
  /** The user whose quota is set; the dialog is open while set. */
  email: string | null;
  onSave: (values: QuotaValues) => Promise<unknown>;
  onClose: () => void;
}

const MB = 1024 * 1024;

/** A whole number of at least 0, or null for an empty field; undefined when it is not one. */
function parseCount(text: string): number | null | undefined {
  const value = text.trim();
  if (value === '') {
    return null;
  }
  return /^\d{1,15}$/.test(value) ? Number(value) : undefined;
}

/** Sets a user's storage quota (MB and files); an empty field means the server's default. */
export function QuotaDialog({ email, onSave, onClose }: QuotaDialogProps) {
  const [megabytes, setMegabytes] = useState('');
  const [files, setFiles] = useState('');
  const [fieldError, setFieldError] = useState<{ bytes?: string; files?: string }>({});
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submitButton = useRef<HTMLButtonElement>(null);
  useRefocusOnRefusal(email !== null && !busy && error !== null, submitButton);

  const close = () => {
    setMegabytes('');
    setFiles('');
    setFieldError({});
    setError(null);
    onClose();
  };

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const mb = parseCount(megabytes);
    const count = parseCount(files);
    const errors: { bytes?: string; files?: string } = {};
    if (mb === undefined) {
      errors.bytes = 'Enter a whole number of megabytes, or leave it empty for the default.';
    }
    if (count === undefined) {
      errors.files = 'Enter a whole number of files, or leave it empty for the default.';
    }
    setFieldError(errors);
    if (mb === undefined || count === undefined) {
      return;
    }
    setError(null);
    setBusy(true);
    try {
      await onSave({ quota_bytes: mb === null ? null : mb * MB, quota_files: count });
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
      title={`Storage quota of ${email ?? ''}`}
      description={
        <p>
          An upload that would go past it is refused, and its owner reads why with the numbers (“You have 1 of
          your 1 files; delete some before uploading more.”); what is stored stays. Leave a field empty to use
          the server&apos;s default.
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
            form="quota-form"
            className="button button-primary"
            disabled={busy}
          >
            {busy ? 'Saving…' : 'Save quota'}
          </button>
        </>
      }
    >
      <form id="quota-form" className="form" onSubmit={(e) => void submit(e)} noValidate>
        <Field
          label="Storage (MB)"
          name="quota_mb"
          inputMode="numeric"
          autoFocus
          value={megabytes}
          onChange={(e) => setMegabytes(e.target.value)}
          error={fieldError.bytes ?? null}
          hint="Empty: the default."
        />
        <Field
          label="Files"
          name="quota_files"
          inputMode="numeric"
          value={files}
          onChange={(e) => setFiles(e.target.value)}
          error={fieldError.files ?? null}
          hint="Empty: the default."
        />
        <FormError message={error} />
      </form>
    </Dialog>
  );
}

import { type ReactNode, useRef, useState } from 'react';
import { sentenceFor } from '../api/errors';
import { Dialog } from './dialog';
import { useRefocusOnRefusal } from './refocus';

export interface ConfirmDialogProps {
  open: boolean;
  title: string;
  description: ReactNode;
  /** The button that does it, e.g. "Revoke key". */
  confirmLabel: string;
  /** Destructive actions get the danger style. */
  danger?: boolean;
  /** The action; the dialog stays open with the error sentence if it throws. */
  onConfirm: () => Promise<unknown>;
  onClose: () => void;
}

/** "Are you sure?" with the action's own name on the button; Cancel has focus first, so Enter never destroys. */
export function ConfirmDialog({
  open,
  title,
  description,
  confirmLabel,
  danger = true,
  onConfirm,
  onClose,
}: ConfirmDialogProps) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const confirmButton = useRef<HTMLButtonElement>(null);

  useRefocusOnRefusal(open && !busy && error !== null, confirmButton);

  const close = () => {
    setError(null);
    onClose();
  };
  const confirm = async () => {
    setBusy(true);
    setError(null);
    try {
      await onConfirm();
      onClose();
    } catch (err) {
      setError(sentenceFor(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <Dialog
      open={open}
      onClose={close}
      title={title}
      description={description}
      role="alertdialog"
      actions={
        <>
          <button type="button" className="button" onClick={close} autoFocus>
            Cancel
          </button>
          <button
            ref={confirmButton}
            type="button"
            className={danger ? 'button button-danger' : 'button button-primary'}
            onClick={() => void confirm()}
            disabled={busy}
          >
            {busy ? 'Working…' : confirmLabel}
          </button>
        </>
      }
    >
      <p className="form-error" role="alert">
        {error ?? ''}
      </p>
    </Dialog>
  );
}

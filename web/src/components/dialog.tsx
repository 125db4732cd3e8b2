import { type ReactNode, useEffect, useId, useRef } from 'react';

export interface DialogProps {
  open: boolean;
  /** Called when the person closes it: Escape, the Close button, or the caller's own buttons. */
  onClose: () => void;
  title: string;
  /** A sentence under the title, announced with it. */
  description?: ReactNode;
  children?: ReactNode;
  /** Buttons at the bottom; a Close button is added when there are none. */
  actions?: ReactNode;
  /** The role: alertdialog for confirmations. */
  role?: 'dialog' | 'alertdialog';
  /**
   * Where focus goes on close when what had it before the dialog opened is gone, or was <body> (a button that
   * was disabled while its action ran has lost the focus by then).
   */
  returnFocus?: () => HTMLElement | null;
}

/**
 * A modal on the platform's <dialog>: showModal() makes the rest of the page inert (focus stays inside), Escape
 * closes it, and focus goes back to what had it before. No inline styles or injected <style> (the pages' CSP has
 * no 'unsafe-inline'), no bytes of a library.
 */
export function Dialog({
  open,
  onClose,
  title,
  description,
  children,
  actions,
  role = 'dialog',
  returnFocus,
}: DialogProps) {
  const ref = useRef<HTMLDialogElement>(null);
  const returnTo = useRef<Element | null>(null);
  const titleId = useId();
  const descriptionId = useId();

  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) {
      return;
    }
    if (open && !dialog.open) {
      returnTo.current = document.activeElement;
      dialog.showModal();
    } else if (!open && dialog.open) {
      dialog.close();
    }
  }, [open]);

  useEffect(() => {
    const dialog = ref.current;
    return () => {
      // Unmounted while open (its page went away): still give focus back.
      if (dialog?.open) {
        dialog.close();
      }
    };
  }, []);

  const handleClose = () => {
    const target = returnTo.current;
    returnTo.current = null;
    if (target instanceof HTMLElement && target.isConnected && target !== document.body) {
      target.focus();
    } else {
      returnFocus?.()?.focus();
    }
    if (open) {
      onClose();
    }
  };

  return (
    <dialog
      ref={ref}
      className="dialog"
      role={role === 'alertdialog' ? 'alertdialog' : undefined}
      aria-modal="true"
      aria-labelledby={titleId}
      aria-describedby={description ? descriptionId : undefined}
      onClose={handleClose}
      onCancel={(e) => {
        // Escape: close through React state so the caller knows.
        e.preventDefault();
        onClose();
      }}
    >
      {open ? (
        <div className="dialog-body">
          <h2 id={titleId} className="dialog-title">
            {title}
          </h2>
          {description ? (
            <div id={descriptionId} className="dialog-description">
              {description}
            </div>
          ) : null}
          {children}
          <div className="dialog-actions">
            {actions ?? (
              <button type="button" className="button" onClick={onClose}>
                Close
              </button>
            )}
          </div>
        </div>
      ) : null}
    </dialog>
  );
}

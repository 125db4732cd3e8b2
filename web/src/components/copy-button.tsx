import { useEffect, useState } from 'react';

/** Copies text: the Clipboard API where the page is a secure context, else a selected textarea and execCommand. */
export async function copyText(text: string): Promise<boolean> {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // Denied (e.g. no user gesture): fall through to the old way.
    }
  }
  const area = document.createElement('textarea');
  area.value = text;
  area.setAttribute('readonly', '');
  area.className = 'visually-hidden';
  document.body.append(area);
  area.select();
  try {
    return document.execCommand('copy');
  } finally {
    area.remove();
  }
}

export interface CopyButtonProps {
  text: string;
  /** The accessible name, e.g. "Copy direct link". */
  label: string;
  /** Visible text; defaults to "Copy". */
  children?: string;
  className?: string;
  /** The button's id (for moving focus to it). */
  id?: string;
}

/** A button that copies `text` and says so ("Copied") in a polite live region. */
export function CopyButton({ text, label, children = 'Copy', className = 'button', id }: CopyButtonProps) {
  const [state, setState] = useState<'idle' | 'copied' | 'failed'>('idle');

  useEffect(() => {
    if (state === 'idle') {
      return;
    }
    const timer = setTimeout(() => setState('idle'), 2500);
    return () => clearTimeout(timer);
  }, [state]);

  return (
    <span className="copy">
      <button
        id={id}
        type="button"
        className={className}
        aria-label={label}
        onClick={() => void copyText(text).then((ok) => setState(ok ? 'copied' : 'failed'))}
      >
        {state === 'copied' ? 'Copied' : children}
      </button>
      <span className="visually-hidden" aria-live="polite">
        {state === 'copied'
          ? 'Copied to the clipboard.'
          : state === 'failed'
            ? 'Copy failed: select the text and copy it.'
            : ''}
      </span>
    </span>
  );
}

import { type RefObject, useCallback, useEffect, useRef } from 'react';

interface Pending {
  /** True once the page shows the outcome (the removed item is gone, the new button is there). */
  ready: () => boolean;
  /** Where focus goes then. */
  target: () => HTMLElement | null;
  /** What had the focus when the action started: focus still there has not been put anywhere by the person. */
  origin: Element | null;
  until: number;
}

/** A refresh that never comes (a failed refetch) must not move focus minutes later. */
const WAIT_MS = 10_000;

/**
 * Focus after an action changed the page under it: when the action removed the button that started it (a deleted
 * item, Ban becoming Unban, Reveal becoming Copy) or disabled it while it ran (Chromium then moves focus off it and
 * never back), focus would fall to <body>. Call the returned function when the action starts or succeeds; after each
 * render of the calling component, once `ready()` and no dialog is open, focus moves to `target()` — unless the
 * person has already put it somewhere. Focus still on the element that started the action counts as not moved: a
 * fast answer re-enables a button before Chromium's focus fix-up takes the focus off it, so it may never leave it.
 */
export function useRefocus(): (ready: () => boolean, target: () => HTMLElement | null) => void {
  const pending = useRef<Pending | null>(null);

  useEffect(() => {
    const p = pending.current;
    if (!p) {
      return;
    }
    if (Date.now() > p.until) {
      pending.current = null;
      return;
    }
    if (!p.ready() || document.querySelector('dialog[open]')) {
      return;
    }
    pending.current = null;
    const active = document.activeElement;
    if (!active || active === document.body || active === p.origin) {
      p.target()?.focus();
    }
  });

  return useCallback((ready, target) => {
    pending.current = { ready, target, origin: document.activeElement, until: Date.now() + WAIT_MS };
  }, []);
}

/**
 * For a list whose item `key` is being removed: ready once its element is gone; the target is the item after it,
 * else the one before it, else `fallback` (the list's heading). `keys` is the list as shown now.
 */
export function afterRemoval(
  keys: readonly string[],
  key: string,
  elementFor: (key: string) => HTMLElement | null,
  fallback: () => HTMLElement | null,
): [ready: () => boolean, target: () => HTMLElement | null] {
  const i = keys.indexOf(key);
  const next = i >= 0 ? keys[i + 1] : undefined;
  const previous = i > 0 ? keys[i - 1] : undefined;
  return [
    () => elementFor(key) === null,
    () => (next && elementFor(next)) || (previous && elementFor(previous)) || fallback(),
  ];
}

/**
 * For a button (`id`) that is disabled while its action runs, and may be gone after it: ready once it is enabled again
 * or gone; the target is the button, else `instead()` (what took its place, or the action's message).
 */
export function afterAction(
  id: string,
  instead: () => HTMLElement | null,
): [ready: () => boolean, target: () => HTMLElement | null] {
  const button = () => document.getElementById(id) as HTMLButtonElement | null;
  return [() => !button()?.disabled, () => button() ?? instead()];
}

/** `item` when it takes focus itself (tabIndex), else its first link or enabled button. */
function focusableIn(item: Element): HTMLElement | null {
  if (item instanceof HTMLElement && item.hasAttribute('tabindex')) {
    return item;
  }
  return item.querySelector<HTMLElement>('a[href], button:not(:disabled)');
}

/**
 * For a "Show more" button (`id`) under a list that shows `shown` items now (`items()`): ready once the next page
 * has come (the button is enabled again, or the last page took it away); focus goes to the first item it added, so
 * reading goes on there, else (nothing came) back to the button.
 */
export function afterMore(
  id: string,
  items: () => ArrayLike<Element> | undefined,
  shown: number,
): [ready: () => boolean, target: () => HTMLElement | null] {
  const button = () => document.getElementById(id) as HTMLButtonElement | null;
  return [
    () => !button()?.disabled,
    () => {
      const added = items()?.[shown];
      return (added && focusableIn(added)) || button();
    },
  ];
}

/**
 * For a dialog that stays open with the error when its action is refused: its button, disabled while it waited and
 * so without the focus, gets it back rather than leaving it on <body> behind the dialog. `refused`: open, not busy,
 * and an error shown.
 */
export function useRefocusOnRefusal(refused: boolean, button: RefObject<HTMLButtonElement | null>): void {
  useEffect(() => {
    if (refused && document.activeElement === document.body) {
      button.current?.focus();
    }
  }, [refused, button]);
}

import { useLayoutEffect, useRef } from 'react';
import { useLocation } from 'wouter';

/** A page that never shows its heading (a load that failed) must not take the focus minutes later. */
const WAIT_MS = 10_000;

/**
 * The site's rule for moving to another page without a page load (a link, sign-in, a redirect to /login): the
 * focus goes to the new page's h1 (tabIndex={-1}), so a screen reader reads which page this is and Tab goes on from
 * there, instead of staying on the link or falling to <body>. Until the page shows its h1 (its chunk or the session
 * is loading), and on a page without one, it is on <main> (`mainId`). Not on the first load (the browser starts at
 * the top), nor when only the query changes (a filter or a search: the same page, with its own focus moves). What
 * the new page focused itself keeps the focus; its later moves (useRefocus) come after this one.
 */
export function usePageFocus(mainId: string): void {
  const [location] = useLocation();
  const shown = useRef(location);

  // A layout effect of the shell runs after the new page's own (children first), before it is painted.
  useLayoutEffect(() => {
    if (location === shown.current) {
      return;
    }
    shown.current = location;
    const main = document.getElementById(mainId);
    const active = document.activeElement;
    if (!main || (active && active !== document.body && main.contains(active))) {
      return;
    }
    const toHeading = (): boolean => {
      const heading = main.querySelector<HTMLElement>('h1');
      heading?.focus();
      return heading !== null;
    };
    main.focus();
    if (toHeading()) {
      return;
    }
    const until = Date.now() + WAIT_MS;
    const observer = new MutationObserver(() => {
      const now = document.activeElement;
      // Someone put the focus elsewhere meanwhile (Tab, a click, the page itself): theirs.
      if (Date.now() > until || (now !== main && now !== document.body) || toHeading()) {
        observer.disconnect();
      }
    });
    observer.observe(main, { childList: true, subtree: true });
    return () => observer.disconnect();
  }, [location, mainId]);
}

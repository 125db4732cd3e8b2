/**
 * The one deadline helper: `promise`'s outcome, or a rejection with `onTimeout()` when it has not settled within
 * `ms`. The timer is always cleared, so a settled race leaves nothing behind. The promise itself is not cancelled.
 */
export function withTimeout<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Waits for a promise to settle, at most `ms`; never throws (shutdown waits). */
export async function settleWithin(promise: Promise<unknown>, ms: number): Promise<void> {
  await withTimeout(promise, ms, () => new Error('timeout')).catch(() => undefined);
}

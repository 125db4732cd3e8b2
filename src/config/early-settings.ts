import { availableParallelism } from 'node:os';

/**
 * The settings the entry reads before anything is validated, for the early worker (src/early-worker.ts): raw, and
 * from Node's own modules only, since loading the settings' validation would delay the fork they decide. Whatever
 * is unusual here answers "no early worker": the primary then starts as before and reports a bad setting itself.
 */

/** Set in the early worker's environment: it waits for the primary's go before it starts. */
export const EARLY_WORKER_ENV = 'FXF_EARLY_WORKER';

/** IMAGE_CONCURRENCY's default (AppConfig). */
export const DEFAULT_IMAGE_CONCURRENCY = 2;

/**
 * libuv's threadpool size when the operator set none: the image lanes' threads (IMAGE_CONCURRENCY + 1) and 4 more for
 * file I/O, DNS and crypto. It takes effect only before the pool's first use.
 */
export function threadpoolSize(imageConcurrency: number): number {
  return imageConcurrency + 1 + 4;
}

/** A setting that is a whole number from 1 to 64, read raw; undefined when unset, null when it is not one. */
function rawCount(value: string | undefined): number | undefined | null {
  if (value === undefined || value === '') {
    return undefined;
  }
  if (!/^[1-9]\d?$/.test(value)) {
    return null;
  }
  const n = Number(value);
  return n <= 64 ? n : null;
}

/**
 * Whether these settings will run more than one HTTP process (what processCount says once they are validated), read
 * without validating them.
 */
export function expectsSeveralWorkers(env: NodeJS.ProcessEnv, cores = availableParallelism()): boolean {
  const role = env.APP_ROLE;
  if (role !== undefined && role !== '' && role !== 'all' && role !== 'api') {
    return false;
  }
  const count = rawCount(env.WEB_CONCURRENCY);
  return count === null ? false : (count ?? cores) > 1;
}

/** What the early worker's environment adds to its primary's: the flag, and the threadpool the settings reserve. */
export function earlyWorkerEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const imageConcurrency = rawCount(env.IMAGE_CONCURRENCY) ?? DEFAULT_IMAGE_CONCURRENCY;
  return {
    [EARLY_WORKER_ENV]: '1',
    ...(env.UV_THREADPOOL_SIZE ? {} : { UV_THREADPOOL_SIZE: String(threadpoolSize(imageConcurrency)) }),
  };
}

/** Whether this environment is the early worker's. */
export function isEarlyWorkerEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return env[EARLY_WORKER_ENV] === '1';
}

/** In the early worker, on its go: what its primary's checks found (the embedded cluster's URL…) joins its settings. */
export function adoptPrimaryEnv(additions: Record<string, string>): void {
  Object.assign(process.env, additions);
}

/** The environment, for the entry's early read. */
export function readRawEnv(): NodeJS.ProcessEnv {
  return process.env;
}

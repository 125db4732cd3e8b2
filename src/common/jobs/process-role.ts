import { availableParallelism } from 'node:os';

/**
 * What each kind of process starts: the one place that decides it. `api` serves HTTP and reviews uploads (so it
 * loads the model); `worker` runs the background work; `cli` runs one operator command with nothing in the
 * background; `all` (the default, one process) runs everything.
 */
export type ProcessRole = 'api' | 'worker' | 'cli' | 'all';

export type ProcessPart =
  /** The HTTP server (main.ts listens only in roles that have it). */
  | 'http'
  /** The NSFW model, loaded at start so /readyz can wait for it. Uploads are reviewed only where HTTP is served. */
  | 'model'
  /**
   * The outbox relay (committed outbox rows → the delivery queue). Also in `api`: each upload kicks it right after
   * its commit, so events leave at once instead of at the worker's next poll.
   */
  | 'relay'
  /** The BullMQ delivery worker (sends webhooks). */
  | 'delivery'
  /**
   * Periodic work as BullMQ job schedulers, once per period across the deployment: the storage janitor, webhook
   * retention, the webhook reconciler, expired-session cleanup and the request-count flush.
   */
  | 'periodic'
  /** After a SECRET_KEY rotation, re-seal every webhook secret in the background. */
  | 'secretReseal'
  /** One last request-count flush at shutdown, where requests are counted (the periodic flush runs elsewhere). */
  | 'countFlushOnShutdown';

const STARTS: Record<ProcessRole, readonly ProcessPart[]> = {
  api: ['http', 'model', 'relay', 'countFlushOnShutdown'],
  worker: ['relay', 'delivery', 'periodic', 'secretReseal'],
  cli: [],
  all: ['http', 'model', 'relay', 'delivery', 'periodic', 'secretReseal', 'countFlushOnShutdown'],
};

/** Whether a process of `role` starts `part`. */
export function roleStarts(role: ProcessRole, part: ProcessPart): boolean {
  return STARTS[role].includes(part);
}

/**
 * How many HTTP processes `npm start` runs (src/cluster.ts): WEB_CONCURRENCY, default one per available core; 1 for
 * a role without HTTP.
 */
export function httpProcessCount(role: ProcessRole, webConcurrency: number | undefined): number {
  return roleStarts(role, 'http') ? (webConcurrency ?? availableParallelism()) : 1;
}

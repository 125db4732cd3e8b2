import cluster, { type Worker } from 'node:cluster';
import { earlyWorkerEnv, expectsSeveralWorkers, isEarlyWorkerEnv } from './config/early-settings';

/**
 * The first HTTP worker of `npm start`, forked before the primary loads anything (issue 14, goal 6). Loading the app's
 * modules is most of a worker's start (about a second of CPU); the primary's own start (the settings, the embedded
 * PostgreSQL, the Redis check, the migrations) used to come before it. Now the first worker loads the app while the
 * primary checks, and waits for the primary's go (`{ fxf: 'go' }`, src/cluster.ts) before it reads a setting,
 * connects anywhere or listens. If the checks fail, or the settings say one process after all, the primary kills it.
 *
 * This module is the entry's first import: only Node's own modules, and the settings read raw
 * (src/config/early-settings.ts), because anything heavier would delay the fork it exists for.
 */

/** IPC from the primary to the early worker: the checks passed; start with this environment on top of yours. */
export interface GoMessage {
  fxf: 'go';
  env: Record<string, string>;
}

/** The early worker's handle in the primary. */
export interface EarlyWorker {
  worker: Worker;
  /** Kills it (it has done nothing but load code) and resolves once it is gone. */
  kill: () => Promise<void>;
}

/**
 * In the primary of a cluster-to-be: forks the first HTTP worker now. Undefined in a worker, or when the settings
 * ask for one process.
 */
export function forkEarlyWorker(env: NodeJS.ProcessEnv): EarlyWorker | undefined {
  if (!cluster.isPrimary || !expectsSeveralWorkers(env)) {
    return undefined;
  }
  const worker = cluster.fork(earlyWorkerEnv(env));
  const gone = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  return {
    worker,
    kill: async () => {
      if (!worker.isDead()) {
        worker.process.kill('SIGKILL');
      }
      await gone;
    },
  };
}

/** Whether this process is the early worker, still waiting for (or given) its go. */
export function isEarlyWorker(): boolean {
  return cluster.isWorker && isEarlyWorkerEnv();
}

/** In the early worker: resolves with the primary's go (the environment to start with). */
export function waitForGo(): Promise<Record<string, string>> {
  return new Promise((resolve) => {
    const onMessage = (m: unknown): void => {
      if ((m as GoMessage | undefined)?.fxf === 'go') {
        process.off('message', onMessage);
        resolve((m as GoMessage).env);
      }
    };
    process.on('message', onMessage);
  });
}

import cluster, { type Worker } from 'node:cluster';
import { httpProcessCount } from './common/jobs/process-role';
import { ClusterScrapes } from './common/metrics/cluster-metrics';
import type { AppConfig } from './config/app-config';
import type { GoMessage } from './early-worker';
import { HeavyStageGrants } from './modules/uploads/heavy-stage';

/**
 * WEB_CONCURRENCY (issue 14, goal 5): `npm start` serves HTTP from one process per core through Node's cluster.
 * The primary does what must happen once — validate the settings, start the embedded PostgreSQL, check Redis,
 * migrate — then starts the workers, each a whole instance (the same role, the same Nest app) sharing PostgreSQL
 * and Redis as separate instances already do. The primary serves nothing itself: the listening socket is the
 * cluster's, and it hands connections to the workers in turn.
 *
 * The first worker was forked by the entry before the checks (src/early-worker.ts) and has loaded the app meanwhile:
 * the primary's go starts it. The others are forked once it listens, so that it loads alone: two loads at once on two
 * cores each take about half as long again as one alone, and the service answers as soon as one worker listens.
 */

/** IPC from a worker to the primary. */
export type WorkerMessage = { fxf: 'listening' } | { fxf: 'failed'; message: string };
/** IPC from the primary to a worker: close like on SIGTERM (drain, then exit 0); or the early worker's go. */
export type PrimaryMessage = { fxf: 'shutdown' } | GoMessage;

/** Workers that may crash after start-up before the primary gives up: at most this many restarts… */
export const RESTART_LIMIT = 5;
/** …within this window. */
export const RESTART_WINDOW_MS = 60_000;
/** How long a worker may take to drain on shutdown before it is killed. */
const SHUTDOWN_GRACE_MS = 30_000;

/** How many HTTP processes to run: WEB_CONCURRENCY, default one per available core; 1 for roles without HTTP. */
export function processCount(config: AppConfig): number {
  return httpProcessCount(config.appRole, config.webConcurrency);
}

/** Whether this process is a worker the primary forked (cluster sets NODE_UNIQUE_ID). */
export function isClusterWorker(): boolean {
  return cluster.isWorker;
}

/** A worker tells the primary it listens or why it could not start (the primary prints one line). */
export function tellPrimary(message: WorkerMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send || !process.connected) {
      resolve();
      return;
    }
    process.send(message, undefined, {}, () => resolve());
  });
}

/** A worker's way to learn that the primary asks it to close. */
export function onShutdownRequest(close: () => void): void {
  process.on('message', (m: unknown) => {
    if ((m as PrimaryMessage | undefined)?.fxf === 'shutdown') {
      close();
    }
  });
}

export interface ClusterOptions {
  config: AppConfig;
  count: number;
  /** Environment the workers get on top of ours (the embedded cluster's URL, no second migration). */
  workerEnv: Record<string, string>;
  /** Stops what the primary started (the embedded PostgreSQL), after every worker is gone. */
  stop: () => Promise<void>;
  /** The first worker, forked before the checks and waiting for its go (src/early-worker.ts). */
  early?: Worker;
}

/**
 * Runs the primary: forks `count` workers and keeps them. Resolves with the exit code once everything is down —
 * 0 after a signal and a clean drain; 1 when a worker fails at start-up (its one-line reason printed once), when
 * workers keep crashing, or when a worker had to be killed at shutdown.
 */
export function runPrimary(options: ClusterOptions): Promise<number> {
  const { config, count } = options;
  const workers = new Set<Worker>();
  const listening = new Set<Worker>();
  const restarts: number[] = [];
  let booted = false;
  let stopping = false;
  let failure: string | undefined;
  let exitCode = 0;
  let finish: (code: number) => void = () => undefined;
  const done = new Promise<number>((resolve) => (finish = resolve));
  // IMAGE_HEAVY_CONCURRENCY counts for the whole `npm start`: the workers ask the primary (HeavyStage).
  const heavyStage = new HeavyStageGrants(config.images.heavyConcurrency);
  // A scrape of /metrics in any worker answers for every worker that listens (common/metrics/cluster-metrics.ts).
  const scrapes = new ClusterScrapes(() => listening);

  // The workers after the first, forked once it listens (the listening handler below).
  let unforked = count - 1;

  const fork = (): void => {
    keep(cluster.fork(options.workerEnv));
  };

  const keep = (worker: Worker): void => {
    workers.add(worker);
    worker.on('message', (m: WorkerMessage) => {
      if (heavyStage.handle(worker, m) || scrapes.handle(worker, m)) {
        return;
      }
      if (m?.fxf === 'listening') {
        listening.add(worker);
        for (; unforked > 0 && !stopping; unforked--) {
          fork();
        }
        if (!booted && listening.size === count) {
          booted = true;
          process.stdout.write(
            `Fixitfy Upload listening on ${config.publicUrl} (port ${config.port}, ${count} processes)\n`,
          );
        }
      } else if (m?.fxf === 'failed') {
        failure ??= m.message;
      }
    });
    worker.on('exit', (code, signal) => {
      // Messages sent just before the exit may still be in the channel: read them all first.
      if (worker.isConnected()) {
        worker.once('disconnect', () => exited(worker, code, signal));
      } else {
        exited(worker, code, signal);
      }
    });
  };

  const exited = (worker: Worker, code: number | null, signal: string | null): void => {
    workers.delete(worker);
    heavyStage.gone(worker);
    scrapes.gone(worker);
    const wasListening = listening.delete(worker);
    if (stopping) {
      // A worker still booting when the signal came dies of it (nothing was in flight): that is a clean stop too.
      if (code !== 0 && signal !== 'SIGTERM' && signal !== 'SIGINT') {
        exitCode = 1;
      }
      if (workers.size === 0) {
        void options.stop().then(
          () => finish(exitCode),
          () => finish(1),
        );
      }
      return;
    }
    const how = signal ?? `code ${code}`;
    if (!booted) {
      shutdown(
        1,
        failure ?? `Fixitfy Upload failed to start: a worker process exited (${how}) before it listened.`,
      );
      return;
    }
    // After start-up: replace it, unless workers keep crashing (a replacement that can't start counts too).
    const now = Date.now();
    while (restarts.length > 0 && now - restarts[0] > RESTART_WINDOW_MS) {
      restarts.shift();
    }
    if (restarts.length >= RESTART_LIMIT) {
      shutdown(
        1,
        `Fixitfy Upload stopped: worker processes exited ${RESTART_LIMIT + 1} times within ${RESTART_WINDOW_MS / 1000} s (the last: ${failure ?? how}).`,
      );
      return;
    }
    restarts.push(now);
    process.stderr.write(
      `A worker process (pid ${worker.process.pid}) exited (${how})${wasListening ? '' : ' before it listened'}; starting another.\n`,
    );
    failure = undefined;
    fork();
  };

  /** Asks every worker to drain and exit; kills the ones that don't within the grace period. */
  const shutdown = (code: number, message?: string): void => {
    if (stopping) {
      return;
    }
    stopping = true;
    exitCode = code;
    if (message) {
      process.stderr.write(`${message}\n`);
    }
    if (workers.size === 0) {
      void options.stop().then(
        () => finish(exitCode),
        () => finish(1),
      );
      return;
    }
    for (const worker of workers) {
      if (worker.isConnected()) {
        // A worker exiting at the same moment (two that failed to bind the port) can close its channel under us:
        // the send then fails (EPIPE) through this callback instead of as an uncaught 'error', and it gets a signal.
        worker.send({ fxf: 'shutdown' } satisfies PrimaryMessage, (error: Error | null) => {
          if (error) {
            worker.process.kill('SIGTERM');
          }
        });
      } else {
        worker.process.kill('SIGTERM');
      }
    }
    setTimeout(() => {
      for (const worker of workers) {
        exitCode = 1;
        worker.process.kill('SIGKILL');
      }
    }, SHUTDOWN_GRACE_MS).unref();
  };

  let signalled = false;
  const onSignal = (): void => {
    if (signalled) {
      // A second signal: no more waiting.
      for (const worker of workers) {
        worker.process.kill('SIGKILL');
      }
      void options.stop().finally(() => process.exit(1));
      return;
    }
    signalled = true;
    shutdown(0);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const { early } = options;
  if (early && !early.isDead()) {
    keep(early);
    // Its environment was fixed at the fork, before the checks: what they found comes with the go.
    early.send({ fxf: 'go', env: options.workerEnv } satisfies PrimaryMessage, (error: Error | null) => {
      if (error) {
        early.process.kill('SIGTERM');
      }
    });
  } else {
    fork();
  }
  return done;
}

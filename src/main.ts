import { readRawEnv } from './config/early-settings';
import { forkEarlyWorker } from './early-worker';
import { loadStart } from './start-loader';

/**
 * The service's entry (`npm start`). Its first act, before anything heavy loads, is to fork the first HTTP worker when
 * the settings ask for several (src/early-worker.ts): that worker loads the app while this process checks. The rest
 * is src/start.ts, loaded from its bundle with a code cache once built (src/start-loader.ts).
 */
const early = forkEarlyWorker(readRawEnv());
// A cluster's primary serves nothing: it runs the settings, the checks and the workers, a fifth of the modules, and
// loads them as files. The whole bundle would cost it 24 MB more for no sooner start (docs/performance.md).
loadStart(undefined, { bundle: early === undefined }).then(
  ({ start, afterListen }) => start.main(early, afterListen),
  async (err: unknown) => {
    process.stderr.write(
      `Fixitfy Upload failed to start: ${err instanceof Error ? err.message : String(err)}\n`,
    );
    await early?.kill();
    process.exit(1);
  },
);

import 'reflect-metadata';
import type { NestExpressApplication } from '@nestjs/platform-express';
import {
  closeOnSignals,
  type Infrastructure,
  prepareInfrastructure,
  startupFailureMessage,
} from './bootstrap';
import { isClusterWorker, onShutdownRequest, processCount, runPrimary, tellPrimary } from './cluster';
import { roleStarts } from './common/jobs/process-role';
import { debugRequested } from './config/app-config';
import { adoptPrimaryEnv } from './config/early-settings';
import { type EarlyWorker, isEarlyWorker, waitForGo } from './early-worker';

let infra: Infrastructure | undefined;
/** A cluster worker's graceful close, once its app exists. */
let closeApp: (() => void) | undefined;

/**
 * The primary (or the only process): settings, embedded PostgreSQL, Redis check and migrations once; then either
 * serves itself (WEB_CONCURRENCY=1, APP_ROLE=worker) or runs the HTTP workers (src/cluster.ts), the first of which
 * main.ts may have forked already (`early`, src/early-worker.ts): it loads the app meanwhile and starts on our go.
 * `afterListen` is the loader's (src/start-loader.ts), called once this process serves: it makes the code cache.
 */
export async function main(early: EarlyWorker | undefined, afterListen?: () => void): Promise<void> {
  await run(early, afterListen).catch(async (err: unknown) => {
    const message = startupFailureMessage(err, debugRequested());
    if (isClusterWorker()) {
      // The primary prints it, once for all its workers.
      await tellPrimary({ fxf: 'failed', message });
    } else {
      process.stderr.write(`${message}\n`);
    }
    await Promise.all([infra?.stop().catch(() => undefined), early?.kill()]);
    process.exit(1);
  });
}

async function run(early: EarlyWorker | undefined, afterListen?: () => void): Promise<void> {
  if (isClusterWorker()) {
    // Asked to stop while still booting: nothing is in flight yet, so leave at once.
    onShutdownRequest(() => (closeApp ? closeApp() : process.exit(0)));
    let modules: Promise<AppModules> | undefined;
    if (isEarlyWorker()) {
      // Forked before the primary's checks: load the app now, and read the settings only once they have passed.
      modules = loadApp();
      modules.catch(() => undefined);
      adoptPrimaryEnv(await waitForGo());
    }
    // The primary checked everything and migrated; the embedded cluster's URL came in DATABASE_URL.
    infra = await prepareInfrastructure({ inherited: true });
    await serve(infra, true, modules);
    afterListen?.();
    return;
  }
  infra = await prepareInfrastructure();
  const count = processCount(infra.config);
  if (count === 1) {
    // The settings say one process after all (an early worker is forked only when the raw settings say several).
    await early?.kill();
    await serve(infra, false);
    afterListen?.();
    return;
  }
  const { config, stop } = infra;
  const code = await runPrimary({
    config,
    count,
    workerEnv: { DATABASE_URL: config.databaseUrl ?? '', MIGRATE_ON_START: 'false' },
    stop,
    early: early?.worker,
  });
  process.exit(code);
}

type AppModules = Awaited<ReturnType<typeof loadApp>>;

/** The app's modules: about a second to load, most of a process's start. */
function loadApp() {
  return Promise.all([
    import('@nestjs/core'),
    import('./app.module'),
    import('./app.setup'),
    import('./modules/auth/users.service'),
  ]);
}

async function serve(
  { config, stop }: Infrastructure,
  clustered: boolean,
  modules: Promise<AppModules> = loadApp(),
): Promise<void> {
  // The app is loaded once its settings, database and Redis are known good (a bad setting fails in a moment), or by
  // the early worker while its primary checks them.
  const [
    { NestFactory },
    { AppModule },
    { configureApp, HTTP_APP_OPTIONS, logProcessCrashes, useAppLogger },
    { UsersService },
  ] = await modules;
  // abortOnError: false — a failing module reaches our catch (one line) instead of Nest's logged stack and exit.
  // bufferLogs without autoFlushLogs: what the app logs while it starts is held, and dropped if the start fails (the
  // failure is one line); once it has started, flushLogs() writes what was held and ends the buffering, for good.
  const options = { bufferLogs: true, abortOnError: false, autoFlushLogs: false } as const;
  if (!roleStarts(config.appRole, 'http')) {
    // APP_ROLE=worker: the background work (common/jobs/process-role.ts), no HTTP server and no model.
    const worker = await NestFactory.createApplicationContext(AppModule.forRoot(config), options);
    closeOnSignals(async () => {
      await worker.close();
      await stop();
    });
    useAppLogger(worker);
    await logProcessCrashes(worker);
    worker.flushLogs();
    process.stdout.write('Fixitfy Upload worker started\n');
    return;
  }
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(config), {
    ...options,
    ...HTTP_APP_OPTIONS,
  });
  configureApp(app);
  await logProcessCrashes(app);
  const close = closeOnSignals(async () => {
    await app.close();
    await stop();
  });
  if (clustered) {
    closeApp = close;
  }
  if (config.adminEmail && config.adminPassword) {
    await app.get(UsersService).ensureBootstrapAdmin(config.adminEmail, config.adminPassword);
  }
  await app.listen(config.port).catch(async (err: unknown) => {
    await app.close().catch(() => undefined);
    throw err;
  });
  // Until now Nest's Logger held every line in memory (bufferLogs): without this, no line of the app's own (errors
  // with their request id, the model, the janitor, webhooks) would ever be written, and the held lines would grow.
  app.flushLogs();
  if (clustered) {
    await tellPrimary({ fxf: 'listening' });
  } else {
    process.stdout.write(`Fixitfy Upload listening on ${config.publicUrl} (port ${config.port})\n`);
  }
}

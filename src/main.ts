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

let infra: Infrastructure | undefined;
/** A cluster worker's graceful close, once its app exists. */
let closeApp: (() => void) | undefined;

/**
 * The primary (or the only process): settings, embedded PostgreSQL, Redis check and migrations once; then either
 * serves itself (WEB_CONCURRENCY=1, APP_ROLE=worker) or forks the HTTP processes (src/cluster.ts).
 */
async function main(): Promise<void> {
  if (isClusterWorker()) {
    // Asked to stop while still booting: nothing is in flight yet, so leave at once.
    onShutdownRequest(() => (closeApp ? closeApp() : process.exit(0)));
    // The primary checked everything and migrated; the embedded cluster's URL came in DATABASE_URL.
    infra = await prepareInfrastructure({ inherited: true });
    await serve(infra, true);
    return;
  }
  infra = await prepareInfrastructure();
  const count = processCount(infra.config);
  if (count === 1) {
    await serve(infra, false);
    return;
  }
  const { config, stop } = infra;
  const code = await runPrimary({
    config,
    count,
    workerEnv: { DATABASE_URL: config.databaseUrl ?? '', MIGRATE_ON_START: 'false' },
    stop,
  });
  process.exit(code);
}

async function serve({ config, stop }: Infrastructure, clustered: boolean): Promise<void> {
  // The app is loaded only once its settings, database and Redis are known good: a bad setting fails in a moment.
  const [{ NestFactory }, { AppModule }, { configureApp, HTTP_APP_OPTIONS, useAppLogger }, { UsersService }] =
    await Promise.all([
      import('@nestjs/core'),
      import('./app.module'),
      import('./app.setup'),
      import('./modules/auth/users.service'),
    ]);
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
    worker.flushLogs();
    process.stdout.write('Fixitfy Upload worker started\n');
    return;
  }
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(config), {
    ...options,
    ...HTTP_APP_OPTIONS,
  });
  configureApp(app);
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

main().catch(async (err: unknown) => {
  const message = startupFailureMessage(err, debugRequested());
  if (isClusterWorker()) {
    // The primary prints it, once for all its workers.
    await tellPrimary({ fxf: 'failed', message });
  } else {
    process.stderr.write(`${message}\n`);
  }
  await infra?.stop().catch(() => undefined);
  process.exit(1);
});

import 'reflect-metadata';
import type { NestExpressApplication } from '@nestjs/platform-express';
import {
  closeOnSignals,
  type Infrastructure,
  prepareInfrastructure,
  startupFailureMessage,
} from './bootstrap';
import { roleStarts } from './common/jobs/process-role';
import { debugRequested } from './config/app-config';

let infra: Infrastructure | undefined;

async function main(): Promise<void> {
  infra = await prepareInfrastructure();
  const { config, stop } = infra;
  // The app is loaded only once its settings, database and Redis are known good: a bad setting fails in a moment.
  const [{ NestFactory }, { AppModule }, { configureApp }, { UsersService }] = await Promise.all([
    import('@nestjs/core'),
    import('./app.module'),
    import('./app.setup'),
    import('./modules/auth/users.service'),
  ]);
  // abortOnError: false — a failing module reaches our catch (one line) instead of Nest's logged stack and exit.
  const options = { bufferLogs: true, abortOnError: false, autoFlushLogs: false } as const;
  if (!roleStarts(config.appRole, 'http')) {
    // APP_ROLE=worker: the background work (common/jobs/process-role.ts), no HTTP server and no model.
    const worker = await NestFactory.createApplicationContext(AppModule.forRoot(config), options);
    closeOnSignals(async () => {
      await worker.close();
      await stop();
    });
    process.stdout.write('Fixitfy Upload worker started\n');
    return;
  }
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(config), options);
  configureApp(app);
  closeOnSignals(async () => {
    await app.close();
    await stop();
  });
  if (config.adminEmail && config.adminPassword) {
    await app.get(UsersService).ensureBootstrapAdmin(config.adminEmail, config.adminPassword);
  }
  await app.listen(config.port).catch(async (err: unknown) => {
    await app.close().catch(() => undefined);
    throw err;
  });
  process.stdout.write(`Fixitfy Upload listening on ${config.publicUrl} (port ${config.port})\n`);
}

main().catch(async (err: unknown) => {
  process.stderr.write(`${startupFailureMessage(err, debugRequested())}\n`);
  await infra?.stop().catch(() => undefined);
  process.exit(1);
});

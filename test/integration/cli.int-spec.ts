import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'pg';
import { createTestDatabase, dropRedisKeys } from '../setup/test-app';
import { readInfra } from '../setup/infra';

const run = promisify(execFile);
const ROOT = join(__dirname, '..', '..');

/** The operator CLI as an operator runs it (`npm run cli -- …`), against a real database. */
describe('cli', () => {
  let db: { url: string; drop: () => Promise<void> };
  let dataDir: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    db = await createTestDatabase();
    dataDir = mkdtempSync(join(tmpdir(), 'fxf-cli-'));
    env = {
      ...process.env,
      DATABASE_URL: db.url,
      REDIS_URL: readInfra().redisUrl,
      DATA_DIR: dataDir,
      MODERATION_ENABLED: 'false',
      REDIS_PREFIX: `fxf-test:cli-${process.pid}:`,
      LOG_LEVEL: 'silent',
    };
  });
  afterAll(async () => {
    await dropRedisKeys(String(env.REDIS_URL), String(env.REDIS_PREFIX));
    await db.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  // Each call compiles the CLI with ts-node in a fresh process: seconds alone, minutes on a loaded machine, hence the
  // generous per-test timeouts (the CLI itself loads no model and starts nothing in the background).
  /** `npm run cli -- …`; a first argument that is an object is environment on top of the file's. */
  const cli = (...args: [Record<string, string>, ...string[]] | string[]) => {
    const [extra, rest] =
      typeof args[0] === 'object' ? [args[0], args.slice(1) as string[]] : [{}, args as string[]];
    return run(process.execPath, ['-r', 'ts-node/register/transpile-only', 'src/cli.ts', ...rest], {
      cwd: ROOT,
      env: { ...env, ...extra },
    });
  };

  it('should create an admin with user:create --admin, and refuse a duplicate', async () => {
    const { stdout } = await cli(
      'user:create',
      '--email',
      'Ops@Example.com',
      '--password',
      'a long password',
      '--admin',
    );
    expect(stdout).toMatch(/Created admin ops@example.com/);
    const c = new Client({ connectionString: db.url });
    await c.connect();
    const { rows } = await c.query("select role, password_hash from users where email = 'ops@example.com'");
    await c.end();
    expect(rows).toEqual([{ role: 'admin', password_hash: expect.stringMatching(/^scrypt\$/) }]);
    await expect(
      cli('user:create', '--email', 'ops@example.com', '--password', 'a long password'),
    ).rejects.toMatchObject({
      stderr: expect.stringContaining('already registered'),
    });
  }, 180000);

  it('should explain a missing option and an unknown command', async () => {
    await Promise.all([
      expect(cli('user:create', '--email', 'x@example.com')).rejects.toMatchObject({
        stderr: expect.stringContaining('--password is required'),
      }),
      expect(cli('user:fly')).rejects.toMatchObject({ stderr: expect.stringContaining('Unknown command') }),
    ]);
  }, 180000);

  it('should never take the next option as a value, and refuse an email that is not one', async () => {
    await Promise.all([
      // Before: "Created user --password", an account whose email was the option's name.
      expect(cli('user:create', '--email', '--password', 'a long password')).rejects.toMatchObject({
        stderr: expect.stringContaining('--email needs a value'),
      }),
      expect(
        cli('user:create', '--email', 'Bad Email', '--password', 'a long password'),
      ).rejects.toMatchObject({
        stderr: 'email must be an email address\n',
      }),
    ]);
    // A value that starts with -- is written --name=value.
    expect(
      (await cli('user:create', '--email=dashes@example.com', '--password=--a long password')).stdout,
    ).toMatch(/^Created user dashes@example.com/);
    const c = new Client({ connectionString: db.url });
    await c.connect();
    const { rows } = await c.query(
      "select email from users where email in ('--password', 'bad email', 'dashes@example.com')",
    );
    await c.end();
    expect(rows).toEqual([{ email: 'dashes@example.com' }]);
  }, 180000);

  it('should migrate without Redis, which only the commands through the app need', async () => {
    const noRedis = { REDIS_URL: 'redis://127.0.0.1:1' };
    const [migrated] = await Promise.all([
      cli(noRedis, 'migrate'),
      expect(cli(noRedis, 'user:promote', '--email', 'ops@example.com')).rejects.toMatchObject({
        stderr: expect.stringContaining('No Redis answers at redis://127.0.0.1:1'),
      }),
    ]);
    expect(migrated.stdout).toBe('Migrations are up to date.\n');
  }, 180000);

  it('should promote, ban and unban by email', async () => {
    await cli('user:create', '--email', 'member@example.com', '--password', 'a long password');
    expect((await cli('user:promote', '--email', 'member@example.com')).stdout).toMatch(/now an admin/);
    expect((await cli('user:ban', '--email', 'member@example.com', '--reason', 'abuse')).stdout).toMatch(
      /is banned/,
    );
    const c = new Client({ connectionString: db.url });
    await c.connect();
    const banned = (
      await c.query("select role, banned_at, ban_reason from users where email = 'member@example.com'")
    ).rows[0];
    expect(banned).toMatchObject({ role: 'admin', ban_reason: 'abuse', banned_at: expect.any(Date) });
    await cli('user:unban', '--email', 'member@example.com');
    const after = (await c.query("select banned_at from users where email = 'member@example.com'")).rows[0];
    const audit = (
      await c.query("select action from audit_entries where action in ('user.banned', 'user.unbanned')")
    ).rows;
    await c.end();
    expect(after.banned_at).toBeNull();
    expect(audit.map((r) => r.action).sort()).toEqual(['user.banned', 'user.unbanned']);
  }, 300000);

  it('should set a password with user:password, end every session, and refuse a short one', async () => {
    await cli('user:create', '--email', 'forgetful@example.com', '--password', 'a long password');
    const c = new Client({ connectionString: db.url });
    await c.connect();
    try {
      const { id, password_hash: before } = (
        await c.query("select id, password_hash from users where email = 'forgetful@example.com'")
      ).rows[0];
      for (const hash of ['a'.repeat(64), 'b'.repeat(64)]) {
        await c.query(
          "insert into sessions (id, token_hash, user_id, created_at, expires_at) values (gen_random_uuid(), $1, $2, now(), now() + interval '1 day')",
          [hash, id],
        );
      }
      await Promise.all([
        expect(
          cli('user:password', '--email', 'forgetful@example.com', '--password', 'short'),
        ).rejects.toMatchObject({
          stderr: expect.stringContaining('at least 10 characters'),
        }),
        expect(
          cli('user:password', '--email', 'nobody@example.com', '--password', 'a long password'),
        ).rejects.toMatchObject({ stderr: expect.stringContaining('No user') }),
      ]);

      const { stdout } = await cli(
        'user:password',
        '--email',
        'Forgetful@Example.com',
        '--password',
        'a new long one',
      );

      expect(stdout).toMatch(/forgetful@example.com has a new password; 2 sessions ended/);
      const after = (await c.query('select password_hash from users where id = $1', [id])).rows[0];
      expect(after.password_hash).toMatch(/^scrypt\$/);
      expect(after.password_hash).not.toBe(before);
      expect(
        (await c.query('select count(*)::int as n from sessions where user_id = $1', [id])).rows[0].n,
      ).toBe(0);
      const audit = (
        await c.query(
          "select metadata from audit_entries where action = 'user.password_changed' and target_id = $1",
          [id],
        )
      ).rows;
      expect(audit).toEqual([
        { metadata: { email: 'forgetful@example.com', via: 'cli', sessions_ended: 2 } },
      ]);
    } finally {
      await c.end();
    }
  }, 300000);
});

import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { UsersService } from '../../src/modules/auth/users.service';
import { sql } from '../setup/db';
import { createTestApp, type TestApp } from '../setup/test-app';

const run = promisify(execFile);
const ROOT = join(__dirname, '..', '..');

/**
 * One process that loads the config (generating secret.key when unset) at `startAt` (epoch ms): every process has
 * loaded its modules by then, so they all reach the file at the same moment, as instances started together do.
 */
const CHILD = `
const { loadConfig } = require('./src/config/app-config');
const startAt = Number(process.argv[1]);
while (Date.now() < startAt) {}
const config = loadConfig({ DATA_DIR: process.argv[2] });
process.stdout.write(config.secretKey);
`;

describe('Instances starting together on a fresh deployment', () => {
  it('should leave every instance with the same secret.key, and none crashing on EEXIST', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'fxf-secret-race-'));
    try {
      const startAt = Date.now() + 8000;
      const children = Array.from({ length: 6 }, () =>
        run(
          process.execPath,
          ['-r', 'ts-node/register/transpile-only', '-e', CHILD, String(startAt), dataDir],
          { cwd: ROOT, env: { ...process.env, SECRET_KEY: '' } },
        ).then(
          (r) => ({ ok: true, out: r.stdout }),
          (err: { stderr?: string }) => ({ ok: false, out: String(err.stderr) }),
        ),
      );
      const results = await Promise.all(children);
      expect(results.filter((r) => !r.ok)).toEqual([]);
      const onDisk = readFileSync(join(dataDir, 'secret.key'), 'utf8').trim();
      expect(onDisk).toMatch(/^[0-9a-f]{64}$/);
      expect(new Set(results.map((r) => r.out))).toEqual(new Set([onDisk]));
      expect(statSync(join(dataDir, 'secret.key')).mode & 0o777).toBe(0o600);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  describe('ADMIN_EMAIL bootstrap', () => {
    let a: TestApp;
    let b: TestApp;

    beforeAll(async () => {
      a = await createTestApp();
      b = await createTestApp({ shareWith: a });
    });
    afterAll(async () => {
      await b.close();
      await a.close();
    });

    it('should let two instances racing on the first admin both start, with one admin made once', async () => {
      const email = 'Root@Example.com';
      // Both look the email up before either inserts (the password hash takes a while in between): a real race.
      const [first, second] = await Promise.all([
        a.app.get(UsersService).ensureBootstrapAdmin(email, 'a long admin password'),
        b.app.get(UsersService).ensureBootstrapAdmin(email, 'a long admin password'),
      ]);
      expect(first.id).toBe(second.id);
      const rows = await sql(a, 'select id, role from users where email = $1', ['root@example.com']);
      expect(rows).toEqual([{ id: first.id, role: 'admin' }]);
      const audit = await sql(
        a,
        "select 1 from audit_entries where action = 'user.registered' and target_id = $1",
        [first.id],
      );
      expect(audit).toHaveLength(1);
      // A later start finds it and changes nothing.
      const again = await a.app.get(UsersService).ensureBootstrapAdmin(email, 'another long password');
      expect(again.id).toBe(first.id);
    });
  });
});

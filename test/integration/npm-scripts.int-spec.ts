import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '../setup/wait';

const ROOT = join(__dirname, '..', '..');
const SCRIPTS = (
  JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
).scripts;

/** Stands in for dist/src/main.js and cli.js: says its pid, and says so when a SIGTERM reaches it. */
const STUB = `
process.on('SIGTERM', () => { process.stdout.write('SIGTERM reached node\\n'); process.exit(0); });
process.stdout.write('ready ' + process.pid + '\\n');
setInterval(() => undefined, 1000);
`;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * README: "Stop with SIGTERM": what a supervisor signals is the process it started — `npm start`, not node. npm hands
 * the signal to the shell that runs the script; Debian's sh (dash) does not replace itself with the script's last
 * command, so without `exec` the shell died and node kept running (with the embedded PostgreSQL), orphaned. Each
 * script that runs the service or the CLI is run here as npm runs it, from our package.json, with a stand-in for node's
 * entry file (the real one needs a build).
 */
describe('npm scripts pass SIGTERM on to node', () => {
  let dir: string;
  const pids: number[] = [];

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'fxf-npm-scripts-'));
    mkdirSync(join(dir, 'dist', 'src'), { recursive: true });
    writeFileSync(join(dir, 'dist', 'src', 'main.js'), STUB);
    writeFileSync(join(dir, 'dist', 'src', 'cli.js'), STUB);
    const scripts = {
      start: SCRIPTS.start,
      'cli:prod': SCRIPTS['cli:prod'],
      'migrate:prod': SCRIPTS['migrate:prod'],
    };
    writeFileSync(
      join(dir, 'package.json'),
      JSON.stringify({ name: 'stub', version: '0.0.0', private: true, scripts }),
    );
  });
  afterAll(() => {
    for (const pid of pids.filter(alive)) {
      process.kill(pid, 'SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it.each(['start', 'cli:prod', 'migrate:prod'])(
    'should stop node when `npm run %s` gets SIGTERM',
    async (script) => {
      const npm = spawn('npm', ['run', script, '--silent'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      npm.stdout.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise<void>((resolve) => npm.once('exit', () => resolve()));
      const pid = Number((await waitFor(`${script}'s node`, () => /ready (\d+)/.exec(out), 30_000))[1]);
      pids.push(pid);
      expect(pid).not.toBe(npm.pid);

      npm.kill('SIGTERM');
      await exited;

      await waitFor('node to exit', () => !alive(pid), 10_000);
      expect(out).toContain('SIGTERM reached node');
    },
    60_000,
  );
});

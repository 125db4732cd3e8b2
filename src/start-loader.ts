import { createHash } from 'node:crypto';
import {
  accessSync,
  constants as fs,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { createRequire, wrap } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Script, constants as vm } from 'node:vm';
import { BUILT } from './app-paths';
import { setRuntimeV8Flags } from './modules/uploads/garbage-release';

/**
 * How the entry loads the rest of the service (issue 14, goal 6: start-up). Built, `npm run build` bundles src/start.ts
 * and everything it loads into one file beside it (dist/src/start.bundle.js, scripts/bundle.ts), and this compiles that
 * file with a V8 code cache: a warm process then neither resolves and reads some 2,300 module files nor compiles their
 * source. From the TypeScript sources (ts-node), or built without a bundle, it loads src/start.ts as any module.
 *
 * The cache is V8's own (`vm.Script`'s `cachedData`), made by the first process that ran without one, a few seconds
 * after it listens (so that the functions V8 compiles lazily, once called, are in it) or as it exits if that is sooner,
 * and read by every start after. It is kept per bundle (the bundle's SHA-256, which the build writes into its last
 * line: V8 itself checks only the source's length, its own version and its flags), beside the bundle when that folder
 * is writable, else in a folder of this user's own under the system's temporary folder (mode 0700, checked before it is
 * read). A cache that is missing, unreadable or rejected by V8 (another Node, other flags) costs one start without it,
 * and the process writes a new one. Nothing about the cache may fail a start: any error with it means no cache.
 */

/** The bundle's file name, beside this file once built. */
export const BUNDLE_FILE = 'start.bundle.js';
/**
 * The bundle is written already wrapped as Node wraps a CommonJS file: compiling it then needs no second copy of its
 * 8.5 MB (a wrapped copy made at run time stays in memory beside the file's text until a full collection).
 */
export const BUNDLE_HEAD = '(function (exports, require, module, __filename, __dirname) {';
export const BUNDLE_TAIL = '})';
/** The bundle's last line: this, then the SHA-256 of everything before the line (scripts/bundle.ts). */
export const BUNDLE_HASH_MARK = '// fixitfy-upload bundle sha256=';
/** How long after the first listen the cache is made: the start's lazily compiled functions are in it by then. */
export const CACHE_DELAY_MS = 5000;

type StartModule = typeof import('./start');

export interface LoadedStart {
  /** src/start.ts's exports, from the bundle or the module. */
  start: StartModule;
  /** How src/start.ts was loaded (the tests read it). */
  via: 'module' | 'bundle' | 'bundle+cache';
  /** To call once the process serves: writes the code cache a few seconds later when there was none to use. */
  afterListen: () => void;
}

/**
 * Loads src/start.ts: from its bundle with the code cache when built with one, else as a module (also with
 * `bundle: false`, a cluster's primary). A bundle older than the compiled start.js is not used: tsc ran again without
 * the bundle step (`npm run build` runs both), and the bundle would run the code of before. Nor is it under
 * `--enable-source-maps`: Node maps the stack frames of modules it loads to their TypeScript lines (tsc's maps), but not
 * those of code compiled through `vm`, so whoever asks for source maps gets the modules and a slower start.
 */
export async function loadStart(
  dir: string = __dirname,
  { bundle = true }: { bundle?: boolean } = {},
): Promise<LoadedStart> {
  const file = join(dir, BUNDLE_FILE);
  const wanted = bundle && BUILT && !process.sourceMapsEnabled && !isOlder(file, join(dir, 'start.js'));
  const source = wanted ? readOrUndefined(file) : undefined;
  if (source === undefined) {
    return { start: await import('./start'), via: 'module', afterListen: () => undefined };
  }
  return runBundle<StartModule>(file, source);
}

/**
 * Compiles and runs a CommonJS bundle as Node would run the file (its own `require`, `module`, `__filename` and
 * `__dirname`), with a code cache kept as above. Exported for the tests.
 */
export function runBundle<T>(
  file: string,
  source: string,
  {
    cacheDir = codeCacheDir(dirname(file)),
    cacheDelayMs = CACHE_DELAY_MS,
  }: { cacheDir?: string; cacheDelayMs?: number } = {},
): { start: T; via: 'bundle' | 'bundle+cache'; afterListen: () => void } {
  const hash = bundleHash(source);
  const cacheFile = hash && cacheDir ? join(cacheDir, cacheFileName(hash)) : undefined;
  const cachedData = cacheFile ? readBufferOrUndefined(cacheFile) : undefined;
  // The flags the app sets at run time, set before the compile: V8 takes a cache only under the flags it was made
  // with, and the one it makes is made once they are set.
  setRuntimeV8Flags();
  const script = new Script(source.startsWith(BUNDLE_HEAD) ? source : wrap(source), {
    filename: file,
    cachedData,
    // Some bundled packages still call import() (Node's own modules, an optional loader): Node's loader answers it.
    importModuleDynamically: vm.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  });
  const used = cachedData !== undefined && script.cachedDataRejected === false;
  const module = { exports: {} as T, filename: file, id: file, loaded: false };
  const wrapper = script.runInThisContext() as (...args: unknown[]) => void;
  wrapper.call(module.exports, module.exports, createRequire(file), module, file, dirname(file));
  module.loaded = true;
  let scheduled = false;
  return {
    start: module.exports,
    via: used ? 'bundle+cache' : 'bundle',
    afterListen: () => {
      if (used || !cacheFile || scheduled) {
        return;
      }
      scheduled = true;
      let written = false;
      const write = (): void => {
        if (!written) {
          written = true;
          writeCodeCache(script, cacheFile);
        }
      };
      setTimeout(write, cacheDelayMs).unref();
      // A process stopped before then (a restart soon after a deploy) writes it as it exits: what its start compiled
      // is in it, and that is what the next start needs.
      process.once('exit', write);
    },
  };
}

/** The SHA-256 the build wrote into the bundle's last line, or undefined (no cache for a bundle without one). */
export function bundleHash(source: string): string | undefined {
  const at = source.lastIndexOf(BUNDLE_HASH_MARK);
  if (at < 0) {
    return undefined;
  }
  return /^[0-9a-f]{64}/.exec(source.slice(at + BUNDLE_HASH_MARK.length))?.[0];
}

/** The cache's file name for a bundle: its hash, so that a rebuilt bundle never reads another's cache. */
export function cacheFileName(hash: string): string {
  return `start.bundle.${hash.slice(0, 32)}.v8cache`;
}

/**
 * Where the code cache is kept: the bundle's folder when this process may write there (a checkout, or an image run by
 * the files' owner), else `<tmp>/fixitfy-upload-<uid>/<the bundle folder's hash>` (two releases run by one user keep
 * their caches apart), under a folder created with mode 0700 and used only when it is a real folder of this user's
 * that no one else may write to (a cache is code this process runs). Undefined: no cache.
 */
export function codeCacheDir(bundleDir: string, tmp: string = tmpdir()): string | undefined {
  try {
    accessSync(bundleDir, fs.W_OK);
    return bundleDir;
  } catch {
    // Not writable: the image's files belong to root, the service runs as another user.
  }
  try {
    const uid = process.getuid?.() ?? 0;
    const dir = join(tmp, `fixitfy-upload-${uid}`);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const stat = lstatSync(dir);
    if (!stat.isDirectory() || stat.uid !== uid || (stat.mode & 0o077) !== 0) {
      return undefined;
    }
    // Inside a folder only this user may write, no one else can have made this one.
    const own = join(dir, createHash('sha256').update(bundleDir).digest('hex').slice(0, 16));
    mkdirSync(own, { recursive: true, mode: 0o700 });
    return own;
  } catch {
    return undefined;
  }
}

function writeCodeCache(script: Script, cacheFile: string): void {
  const temp = `${cacheFile}.${process.pid}.tmp`;
  try {
    writeFileSync(temp, script.createCachedData(), { mode: 0o600 });
    // Atomic: another process reads the old file or the whole new one, never a part.
    renameSync(temp, cacheFile);
    removeCodeCaches(dirname(cacheFile), cacheFile);
  } catch {
    try {
      unlinkSync(temp);
    } catch {
      // Never written.
    }
  }
}

/**
 * Removes the code caches in `dir` but `keep`: those of earlier builds (5 MB each) once a new one is written, and every
 * one beside a new bundle (scripts/bundle.ts).
 */
export function removeCodeCaches(dir: string, keep?: string): void {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (/^start\.bundle\.[0-9a-f]{32}\.v8cache$/.test(name) && path !== keep) {
      unlinkSync(path);
    }
  }
}

/** Whether `file` was written before `than` (false when either is missing). */
function isOlder(file: string, than: string): boolean {
  try {
    return statSync(file).mtimeMs < statSync(than).mtimeMs;
  } catch {
    return false;
  }
}

function readOrUndefined(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

function readBufferOrUndefined(file: string): Buffer | undefined {
  try {
    return readFileSync(file);
  } catch {
    return undefined;
  }
}

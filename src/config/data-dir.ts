import { existsSync, mkdirSync, mkdtempSync, rmdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * Makes sure DATA_DIR is a directory this process can write to, before anything is put there: a file, a path that
 * can't be created (/proc/x) or a directory owned by another uid (a Docker bind mount) stops the start with one
 * sentence, not a stack or a hang later. Returns the message, or undefined when the directory is usable.
 */
export function dataDirProblem(dir: string): string | undefined {
  try {
    if (!statSync(dir).isDirectory()) {
      return `DATA_DIR=${dir} is a file, not a directory: point DATA_DIR at a directory (it is created if missing).`;
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      return `DATA_DIR=${dir} can't be read (${(err as NodeJS.ErrnoException).code}): point DATA_DIR at a directory this user can write to.`;
    }
    try {
      makeDirs(dir);
    } catch (mkErr) {
      return `DATA_DIR=${dir} can't be created (${(mkErr as NodeJS.ErrnoException).code}): point DATA_DIR at a directory this user can write to.`;
    }
  }
  try {
    rmdirSync(mkdtempSync(join(dir, '.write-test-')));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const owner = statSync(dir).uid;
    const me = process.getuid?.();
    if (me !== undefined && owner !== me) {
      return `DATA_DIR=${dir} belongs to uid ${owner}, and this process (uid ${me}) can't write there (${code}): chown -R ${me} ${dir}, or run the service as uid ${owner}.`;
    }
    return `DATA_DIR=${dir} is not writable (${code}): make it writable for uid ${me ?? '?'} or point DATA_DIR elsewhere.`;
  }
  return undefined;
}

/**
 * mkdir -p, one level at a time: Node's recursive mkdirSync loops forever on a path like /proc/x (the kernel answers
 * ENOENT for x and EEXIST for /proc, over and over), which spun a core and ignored SIGTERM.
 */
function makeDirs(dir: string): void {
  const missing: string[] = [];
  for (let d = dir; !existsSync(d) && dirname(d) !== d; d = dirname(d)) {
    missing.unshift(d);
  }
  for (const d of missing) {
    mkdirSync(d);
  }
}

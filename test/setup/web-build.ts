import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { WEB_INDEX_FILE } from '../../src/modules/web/web-files';

const ROOT = join(__dirname, '..', '..');
const WEB = join(ROOT, 'web');
const LOCK = join(ROOT, 'dist', '.web-build.lock');

function newestMtime(path: string): number {
  const info = statSync(path);
  if (!info.isDirectory()) {
    return info.mtimeMs;
  }
  return readdirSync(path).reduce((max, name) => Math.max(max, newestMtime(join(path, name))), info.mtimeMs);
}

function isStale(): boolean {
  if (!existsSync(WEB_INDEX_FILE)) {
    return true;
  }
  const built = statSync(WEB_INDEX_FILE).mtimeMs;
  const sources = Math.max(
    newestMtime(join(WEB, 'src')),
    newestMtime(join(WEB, 'index.html')),
    newestMtime(join(WEB, 'vite.config.ts')),
    newestMtime(join(WEB, 'package.json')),
  );
  return sources > built;
}

/**
 * Builds the website (vite build into dist/web, a few seconds) when it is missing or older than web/src, so the
 * tests serve what the sources say. Two jest workers may ask at once: a lock folder lets one build.
 */
export function ensureWebBuilt(): void {
  if (!isStale()) {
    return;
  }
  mkdirSync(join(ROOT, 'dist'), { recursive: true });
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      mkdirSync(LOCK);
      break;
    } catch {
      if (Date.now() > deadline) {
        throw new Error(`Waited 2 minutes for another web build; remove ${LOCK} if no build is running.`);
      }
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 250);
    }
  }
  try {
    if (isStale()) {
      execFileSync(join(ROOT, 'node_modules', '.bin', 'vite'), ['build', '--logLevel', 'warn'], {
        cwd: WEB,
        // jest sets NODE_ENV=test, which Vite would keep: React's development build, twice the size.
        env: { ...process.env, NODE_ENV: 'production' },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
    }
  } finally {
    rmdirSync(LOCK);
  }
}

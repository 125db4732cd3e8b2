import { existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';

/** The repository (or image) root: the nearest folder above this file with a package.json. */
function projectRoot(): string {
  let dir = __dirname;
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) {
      return process.cwd();
    }
    dir = parent;
  }
  return dir;
}

/** Where `npm run build` puts the website (web/vite.config.ts): dist/web, beside the compiled server. */
export const WEB_DIST_DIR = join(projectRoot(), 'dist', 'web');
export const WEB_INDEX_FILE = join(WEB_DIST_DIR, 'index.html');
export const WEB_ASSETS_DIR = join(WEB_DIST_DIR, 'assets');

/**
 * The file under assets/ that a URL path names, or null when it names none (missing, a folder, or outside
 * assets/ after `..` or an encoded separator).
 */
export async function assetFile(segments: string[]): Promise<string | null> {
  if (
    segments.length === 0 ||
    segments.some((s) => s === '' || s === '.' || s === '..' || /[\\/\0]/.test(s))
  ) {
    return null;
  }
  const file = resolve(WEB_ASSETS_DIR, ...segments);
  if (!file.startsWith(WEB_ASSETS_DIR + sep)) {
    return null;
  }
  const info = await stat(file).catch(() => null);
  return info?.isFile() ? file : null;
}

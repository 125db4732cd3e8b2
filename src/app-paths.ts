import { join } from 'node:path';

/**
 * Where the app's own files are, wherever the code that asks was loaded from. This file sits at the root of the app's
 * sources: src/ under ts-node and Jest, dist/src/ once built. The HTTP processes run a bundle of the built app
 * (dist/src/start.bundle.js, scripts/bundle.ts) that sits there too, and inside a bundle every module's `__dirname`
 * is the bundle's own folder: a path made from a module's `__dirname` (or a relative `require.resolve`) would point
 * at the wrong place there. Paths to the app's files are made from these instead.
 */
export const SRC_DIR = __dirname;

/** `.ts` when running from the TypeScript sources, `.js` when built. */
export const MODULE_EXT = __filename.endsWith('.ts') ? '.ts' : '.js';

/** Whether the app runs built (dist/) rather than from its TypeScript sources (ts-node, Jest). */
export const BUILT = MODULE_EXT === '.js';

/**
 * The file of one of the app's own modules, by its path under src/ without an extension (`modules/uploads/x`), for a
 * thread or a child process to load: such a module is never in the bundle.
 */
export function appModuleFile(path: string): string {
  return join(SRC_DIR, `${path}${MODULE_EXT}`);
}

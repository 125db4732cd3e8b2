/**
 * Converts the nsfwjs MobileNetV2 model to ONNX into <dir>/models (DATA_DIR by default), or checks that the
 * cached conversion is current: what the server does at first start when run from the TypeScript sources
 * (`npm run start:dev`, tests). `npm run build` converts into dist/model instead (scripts/build-model.ts).
 *
 *   npx ts-node --transpile-only scripts/convert-nsfw-model.ts [dir]
 */
import { loadConfig } from '../src/config/app-config';
import { ensureNsfwModel } from '../src/modules/moderation/model/nsfw-model-cache';

async function main(): Promise<void> {
  // A placeholder secret keeps loadConfig from generating DATA_DIR/secret.key, which a build must not bake
  // in.
  const dir = process.argv[2] ?? loadConfig(undefined, { secretKey: 'unused-by-the-converter' }).dataDir;
  const started = Date.now();
  const path = await ensureNsfwModel(dir);
  console.log(`${path} ready in ${Date.now() - started} ms`);
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});

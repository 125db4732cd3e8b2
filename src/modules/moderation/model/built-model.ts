import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BUILT, SRC_DIR } from '../../../app-paths';
import type { KerasToOnnxOptions } from './keras-to-onnx';

/**
 * The model as it is served. `npm run build` converts it into dist/model (see scripts/build-model.ts); the
 * compiled server only checks it there, so neither nsfwjs nor @tensorflow/tfjs is needed at run time.
 */
export const NSFW_MODEL_FILE = 'nsfw-mobilenet-v2.onnx';

/** Written next to the model: what it was made from and the sha256 it must have. */
export const checksumFileOf = (modelPath: string): string => `${modelPath}.checksum.json`;

export interface ModelChecksum {
  converterVersion: string;
  /** The conversion options: a cache converted with other options (e.g. a uint8 input) is converted again. */
  conversion: KerasToOnnxOptions;
  /** sha256 over the converter version, the conversion options and the nsfwjs model files. */
  source: string;
  /** sha256 of the ONNX file as written. */
  onnx: string;
}

/**
 * Where the compiled server finds the built model: dist/model, beside dist/src. Undefined when running from
 * the TypeScript sources (ts-node, jest), which convert into a cache under DATA_DIR instead.
 */
export function builtModelDir(): string | undefined {
  return BUILT ? join(SRC_DIR, '..', 'model') : undefined;
}

async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) {
    hash.update(chunk as Buffer);
  }
  return hash.digest('hex');
}

/**
 * Returns the path of the built model in `dir` after checking it against its checksum file. Throws one
 * sentence naming the file and the fix when either file is missing or the model does not match.
 */
export async function verifyBuiltModel(dir: string): Promise<string> {
  const modelPath = join(dir, NSFW_MODEL_FILE);
  const checksumPath = checksumFileOf(modelPath);
  let recorded: Partial<ModelChecksum>;
  try {
    recorded = JSON.parse(await readFile(checksumPath, 'utf8')) as Partial<ModelChecksum>;
  } catch (e) {
    const missing = (e as NodeJS.ErrnoException).code === 'ENOENT';
    throw new Error(
      `${checksumPath} is ${missing ? 'missing' : 'not valid JSON'}: the build did not produce the moderation ` +
        'model; run `npm run build` (or set MODERATION_MODEL_PATH).',
    );
  }
  if (typeof recorded?.onnx !== 'string' || !/^[0-9a-f]{64}$/.test(recorded.onnx)) {
    throw new Error(`${checksumPath} has no sha256 for the model; run \`npm run build\` again.`);
  }
  let actual: string;
  try {
    actual = await sha256OfFile(modelPath);
  } catch (e) {
    const missing = (e as NodeJS.ErrnoException).code === 'ENOENT';
    throw new Error(
      `${modelPath} is ${missing ? 'missing' : 'unreadable'}: run \`npm run build\` (or set MODERATION_MODEL_PATH).`,
    );
  }
  if (actual !== recorded.onnx) {
    throw new Error(
      `${modelPath} does not match its checksum (sha256 ${actual}, expected ${recorded.onnx}): the build ` +
        'output is damaged or was changed; run `npm run build` again.',
    );
  }
  return modelPath;
}

import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { checksumFileOf, type ModelChecksum, NSFW_MODEL_FILE } from './built-model';
import { CONVERTER_VERSION, convertKerasToOnnx, type KerasToOnnxOptions } from './keras-to-onnx';
import { loadNsfwjsModel, nsfwjsModelDir } from './nsfwjs-source';
import { NSFW_MODEL_NOTICE } from './third-party-notice';

export { NSFW_MODEL_FILE };
export const NSFW_CLASSES = ['Drawing', 'Hentai', 'Neutral', 'Porn', 'Sexy'] as const;

/**
 * How the served model is converted: input `input` float32 NHWC [N,224,224,3] holding RGB 0…255 (the
 * unrounded resize), divided by 255 inside the graph as nsfwjs does; output `probabilities` float32 [N,5].
 */
export const NSFW_CONVERSION = {
  inputName: 'input',
  outputName: 'probabilities',
  inputType: 'float32',
  inputDivisor: 255,
} as const satisfies KerasToOnnxOptions;

/** Everything the conversion is given besides the nsfwjs files. */
const CONVERSION_OPTIONS: KerasToOnnxOptions = {
  ...NSFW_CONVERSION,
  docString: 'nsfwjs MobileNetV2 (MIT, Infinite Red) with weights from GantMan/nsfw_model (MIT); see NOTICE.',
  metadata: {
    classes: NSFW_CLASSES.join(','),
    input: 'float32 RGB NHWC 224x224, 0..255 (bilinear align-corners resize, not rounded)',
  },
};

/** The conversion options as hashed into (and compared with) the checksum file. */
const CONVERSION = JSON.stringify(CONVERSION_OPTIONS);

const sha256 = (...parts: (string | Uint8Array)[]): string => {
  const hash = createHash('sha256');
  parts.forEach((p) => hash.update(p));
  return hash.digest('hex');
};

async function sourceChecksum(): Promise<string> {
  const dir = nsfwjsModelDir();
  const files = (await readdir(dir)).filter((f) => f.endsWith('.min.js')).sort();
  const hash = createHash('sha256').update(`converter ${CONVERTER_VERSION}\noptions ${CONVERSION}\n`);
  for (const file of files) {
    const bytes = await readFile(join(dir, file));
    hash.update(`${file} ${bytes.length}\n`).update(bytes);
  }
  return hash.digest('hex');
}

async function readChecksum(file: string): Promise<ModelChecksum | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as ModelChecksum;
  } catch {
    return undefined;
  }
}

async function fileHash(file: string): Promise<string | undefined> {
  return existsSync(file) ? sha256(await readFile(file)) : undefined;
}

/** Write-then-rename, so a crash or a second process converting at the same time never leaves a torn file. */
async function writeAtomically(file: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, data);
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/** Converts the nsfwjs MobileNetV2 model to ONNX bytes (deterministic). */
export function convertNsfwModel(): Uint8Array {
  const source = loadNsfwjsModel();
  return convertKerasToOnnx(source.json, source.weightData, CONVERSION_OPTIONS);
}

const inFlight = new Map<string, Promise<string>>();

/**
 * Returns the path of the converted model under `<cacheDir>/models`, converting it first when it is missing,
 * when nsfwjs, the converter or the conversion options changed since, or when the file no longer matches its
 * recorded sha256. The development and test path: the compiled server loads the model `npm run build` made.
 */
export function ensureNsfwModel(cacheDir: string): Promise<string> {
  return ensureNsfwModelIn(join(cacheDir, 'models'));
}

/**
 * The same for the directory itself: `npm run build` writes dist/model with it (the model, its checksum file
 * and NOTICE), converting only when the sources or the converter changed.
 */
export function ensureNsfwModelIn(dir: string): Promise<string> {
  let pending = inFlight.get(dir);
  if (!pending) {
    pending = ensure(dir).finally(() => inFlight.delete(dir));
    inFlight.set(dir, pending);
  }
  return pending;
}

async function ensure(dir: string): Promise<string> {
  const modelPath = join(dir, NSFW_MODEL_FILE);
  const checksumPath = checksumFileOf(modelPath);
  const noticePath = join(dir, 'NOTICE');
  const source = await sourceChecksum();
  const recorded = await readChecksum(checksumPath);
  const upToDate =
    recorded?.source === source &&
    recorded.converterVersion === CONVERTER_VERSION &&
    JSON.stringify(recorded.conversion) === CONVERSION &&
    recorded.onnx === (await fileHash(modelPath));
  await mkdir(dir, { recursive: true });
  if (!upToDate) {
    const onnx = convertNsfwModel();
    await writeAtomically(modelPath, onnx);
    const checksum: ModelChecksum = {
      converterVersion: CONVERTER_VERSION,
      conversion: CONVERSION_OPTIONS,
      source,
      onnx: sha256(onnx),
    };
    await writeAtomically(checksumPath, JSON.stringify(checksum, null, 2) + '\n');
  }
  if (!upToDate || (await fileHash(noticePath)) !== sha256(NSFW_MODEL_NOTICE)) {
    await writeAtomically(noticePath, NSFW_MODEL_NOTICE);
  }
  return modelPath;
}

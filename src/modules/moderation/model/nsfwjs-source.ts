import { dirname, join } from 'node:path';
import type { KerasModelJson } from './keras-model';

export interface KerasModelSource {
  json: KerasModelJson;
  /** All weight shards concatenated in manifest order. */
  weightData: Uint8Array;
  /** The files read, in a fixed order (for the cache checksum). */
  files: string[];
}

/**
 * nsfwjs' export map blocks deep imports, so walk from its main entry (…/dist/cjs) to …/dist/models/<name>.
 */
export function nsfwjsModelDir(name = 'mobilenet_v2'): string {
  return join(dirname(require.resolve('nsfwjs')), '..', 'models', name);
}

/**
 * Each shipped file is a UMD bundle: in CommonJS the model file exports its JSON and a shard a base64 string.
 */
function requireOnce(file: string): unknown {
  const resolved = require.resolve(file);
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- UMD bundles load only through require()
    return require(resolved) as unknown;
  } finally {
    // The bundles are only needed for one conversion; do not keep ~7 MB in the module cache.
    delete require.cache[resolved];
  }
}

/** Loads the Keras layers model shipped in nsfwjs (MobileNetV2 by default). */
export function loadNsfwjsModel(name = 'mobilenet_v2'): KerasModelSource {
  const dir = nsfwjsModelDir(name);
  const modelFile = join(dir, 'model.min.js');
  const json = requireOnce(modelFile) as KerasModelJson;
  if (!json?.modelTopology || !Array.isArray(json.weightsManifest)) {
    throw new Error(`${modelFile} is not a tfjs layers model`);
  }
  const files = [modelFile];
  const shards: Buffer[] = [];
  for (const path of json.weightsManifest.flatMap((g) => g.paths)) {
    const file = join(dir, `${path}.min.js`);
    const base64 = requireOnce(file);
    if (typeof base64 !== 'string') {
      throw new Error(`${file} does not export a base64 string`);
    }
    files.push(file);
    shards.push(Buffer.from(base64, 'base64'));
  }
  return { json, weightData: Buffer.concat(shards), files };
}

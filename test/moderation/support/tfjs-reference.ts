import * as tf from '@tensorflow/tfjs';
import type { KerasModelJson } from '../../../src/modules/moderation/model/keras-model';
import { loadNsfwjsModel } from '../../../src/modules/moderation/model/nsfwjs-source';

export { tf };

/**
 * Loads a Keras layers model into tfjs (pure JS CPU backend) from in-memory artifacts, in this thread (the
 * fixture script needs gradients). Tests use TfjsWorker instead: tfjs is several times slower inside jest's
 * sandbox.
 */
export async function loadTfjsModel(json: KerasModelJson, weightData: Uint8Array): Promise<tf.LayersModel> {
  await tf.setBackend('cpu');
  tf.enableProdMode();
  const buffer = weightData.buffer.slice(
    weightData.byteOffset,
    weightData.byteOffset + weightData.byteLength,
  );
  const handler: tf.io.IOHandler = {
    load: () =>
      Promise.resolve({
        modelTopology: json.modelTopology as unknown as tf.io.ModelArtifacts['modelTopology'],
        weightSpecs: json.weightsManifest.flatMap((g) => g.weights) as tf.io.WeightsManifestEntry[],
        weightData: buffer as ArrayBuffer,
      }),
  };
  return tf.loadLayersModel(handler);
}

/** The nsfwjs MobileNetV2, read from the same files our converter reads. */
export function loadNsfwjsReference(): Promise<tf.LayersModel> {
  const source = loadNsfwjsModel();
  return loadTfjsModel(source.json, source.weightData);
}

import * as tf from '@tensorflow/tfjs';
import type { KerasModelJson } from '../../../src/modules/moderation/model/keras-model';
import { loadNsfwjsModel } from '../../../src/modules/moderation/model/nsfwjs-source';

export { tf };

/** Loads a Keras layers model into tfjs (pure JS CPU backend) from in-memory artifacts. */
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

/**
 * nsfwjs' own preprocessing and inference: pixels / 255, bilinear resize with aligned corners to 224×224 only when
 * the size differs, then the model. Returns the five probabilities.
 */
export function nsfwjsPredict(
  model: tf.LayersModel,
  rgb: Uint8Array,
  width: number,
  height: number,
): Float32Array {
  return tf.tidy(() => {
    const image = tf
      .tensor3d(Int32Array.from(rgb), [height, width, 3], 'int32')
      .toFloat()
      .div(255) as tf.Tensor3D;
    const resized =
      width === 224 && height === 224 ? image : tf.image.resizeBilinear(image, [224, 224], true);
    const output = model.predict(resized.reshape([1, 224, 224, 3])) as tf.Tensor;
    return output.dataSync() as Float32Array;
  });
}

/** tf.image.resizeBilinear(pixels / 255, [224, 224], alignCorners = true), as nsfwjs resizes. */
export function tfjsResize(rgb: ArrayLike<number>, width: number, height: number): Float32Array {
  return tf.tidy(() => {
    const image = tf
      .tensor3d(Int32Array.from(rgb), [height, width, 3], 'int32')
      .toFloat()
      .div(255) as tf.Tensor3D;
    return tf.image.resizeBilinear(image, [224, 224], true).dataSync() as Float32Array;
  });
}

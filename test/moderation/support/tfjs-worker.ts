import { Worker } from 'node:worker_threads';
import type { KerasModelJson } from '../../../src/modules/moderation/model/keras-model';

/*
 * tfjs runs 3-4× slower inside jest's vm sandbox than in plain Node, so the parity test runs the reference in
 * a worker thread. With a Keras model the worker does exactly what nsfwjs' infer() does: pixels / 255,
 * resizeBilinear with aligned corners to 224×224 when the size differs, then the model. TfjsWorker.nsfwjs()
 * loads the nsfwjs library itself instead and calls its own infer().
 */
const SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const tf = require(workerData.tfjsPath);
const load = async () => {
  await tf.setBackend('cpu');
  tf.enableProdMode();
  if (workerData.nsfwjsPath) {
    const library = await require(workerData.nsfwjsPath).load('MobileNetV2');
    return { predict: (x) => library.model.predict(x), infer: (image) => library.infer(image) };
  }
  const model = await tf.loadLayersModel({
    load: async () => ({
      modelTopology: workerData.json.modelTopology,
      weightSpecs: workerData.json.weightsManifest.flatMap((g) => g.weights),
      weightData: workerData.weightData,
    }),
  });
  return { predict: (x) => model.predict(x) };
};
const pixels = (rgb, width, height) =>
  tf.tensor3d(Int32Array.from(rgb), [height, width, 3], 'int32').toFloat().div(255);
const resize = (image) => tf.image.resizeBilinear(image, [224, 224], true);
load().then((model) => {
  parentPort.on('message', ({ id, kind, data, shape }) => {
    try {
      const out = tf.tidy(() => {
        if (kind === 'raw') return model.predict(tf.tensor(Float32Array.from(data), [1, ...shape]));
        const [height, width] = shape;
        if (kind === 'nsfwjs' && model.infer) {
          return model.infer(tf.tensor3d(Int32Array.from(data), [height, width, 3], 'int32'));
        }
        const image = pixels(data, width, height);
        if (kind === 'resize') return resize(image);
        const input = width === 224 && height === 224 ? image : resize(image);
        return model.predict(input.reshape([1, 224, 224, 3]));
      });
      const values = Float32Array.from(out.dataSync());
      out.dispose();
      parentPort.postMessage({ id, values }, [values.buffer]);
    } catch (e) {
      parentPort.postMessage({ id, error: String((e && e.message) || e) });
    }
  });
  parentPort.postMessage({ ready: true });
}, (e) => parentPort.postMessage({ failed: String((e && e.message) || e) }));
`;

/** A Keras model run by @tensorflow/tfjs (CPU backend) in a worker thread. */
export class TfjsWorker {
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (v: Float32Array) => void; reject: (e: Error) => void }
  >();

  private constructor(private readonly worker: Worker) {
    worker.on('message', (m: { id: number; values?: Float32Array; error?: string }) => {
      const job = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (m.values) {
        job?.resolve(m.values);
      } else {
        job?.reject(new Error(m.error));
      }
    });
  }

  /** A Keras model (topology + weight bytes), with nsfwjs' preprocessing reproduced for nsfwjs(). */
  static create(json: KerasModelJson, weightData: Uint8Array): Promise<TfjsWorker> {
    const weights = weightData.buffer.slice(
      weightData.byteOffset,
      weightData.byteOffset + weightData.byteLength,
    );
    return TfjsWorker.start({ json, weightData: weights });
  }

  /**
   * The nsfwjs library itself, `nsfwjs.load('MobileNetV2')` (its bundled model): nsfwjs() calls its own
   * infer(), so nothing of its preprocessing is reproduced by us. Loading takes ~5-10 s.
   */
  static nsfwjs(): Promise<TfjsWorker> {
    return TfjsWorker.start({ nsfwjsPath: require.resolve('nsfwjs') });
  }

  private static start(data: Record<string, unknown>): Promise<TfjsWorker> {
    const worker = new Worker(SOURCE, {
      eval: true,
      workerData: { tfjsPath: require.resolve('@tensorflow/tfjs'), ...data },
    });
    return new Promise((resolve, reject) => {
      worker.once('error', reject);
      worker.once('message', (m: { ready?: boolean; failed?: string }) =>
        m.ready ? resolve(new TfjsWorker(worker)) : reject(new Error(m.failed)),
      );
    });
  }

  private call(kind: string, data: ArrayLike<number>, shape: number[]): Promise<Float32Array> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, kind, data: Array.from(data), shape });
    });
  }

  /** nsfwjs' preprocessing and the model (its own infer() for TfjsWorker.nsfwjs()): five probabilities. */
  nsfwjs(rgb: ArrayLike<number>, width: number, height: number): Promise<Float32Array> {
    return this.call('nsfwjs', rgb, [height, width]);
  }

  /** tf.image.resizeBilinear(pixels / 255, [224, 224], alignCorners = true). */
  resize(rgb: ArrayLike<number>, width: number, height: number): Promise<Float32Array> {
    return this.call('resize', rgb, [height, width]);
  }

  /** model.predict on one sample of the given shape (no preprocessing). */
  predict(input: ArrayLike<number>, shape: number[]): Promise<Float32Array> {
    return this.call('raw', input, shape);
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}

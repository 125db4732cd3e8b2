import { isMainThread, Worker } from 'node:worker_threads';
import { appModuleFile } from '../../app-paths';
import { keepOrtTelemetryOff } from '../../config/ort-telemetry';
import { MODEL_INPUT_SIZE, type RawImage } from './image-preprocess';

export interface InferenceOptions {
  /** onnxruntime intra-op threads. */
  threads: number;
}

interface Job {
  resolve: (scores: Float32Array) => void;
  reject: (error: Error) => void;
}

type WorkerMessage =
  | { type: 'ready'; input: TensorInfo; output: TensorInfo }
  | { type: 'failed'; error: string }
  | { type: 'result'; id: number; scores?: Float32Array; error?: string; batch?: ArrayBuffer };

/** A small frame the worker resizes into a model input itself, over `background` (image-preprocess). */
export interface FrameInput {
  image: RawImage;
  background: number;
}

interface TensorInfo {
  name: string;
  type: string;
  shape: (number | string)[];
}

/*
 * onnxruntime-node's run() is synchronous inside a setImmediate: on the main thread a batch of six images
 * would stall every request for ~100 ms. The session therefore lives in a worker thread. The worker is plain
 * JavaScript evaluated from a string so it runs the same under ts-node, jest and the compiled build.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const ort = require(workerData.ortPath);
// The main thread's resize (image-preprocess), for the small frames sent here as pixels: the compiled module, or its
// TypeScript under ts-node and jest.
if (workerData.preprocessPath.endsWith('.ts')) {
  require('ts-node/register/transpile-only');
}
const { resizeToModelInput, MODEL_INPUT_VALUES } = require(workerData.preprocessPath);
const describe = (m) => ({ name: m.name, type: m.type, shape: m.shape });
const message = (e) => String((e && e.message) || e);
// Batches this worker filled from frames, kept for the next ones of the same size (a new 600 KB one faults in every
// page on its first write). A batch is in use until its run has finished, and another job may arrive meanwhile.
const own = [];
const ownBatch = (values) => {
  const i = own.findIndex((b) => b.length === values);
  return i >= 0 ? own.splice(i, 1)[0] : new Float32Array(values);
};
ort.InferenceSession.create(workerData.modelPath, workerData.sessionOptions).then(
  (session) => {
    const input = session.inputNames[0];
    const output = session.outputNames[0];
    parentPort.on('message', async (job) => {
      // A batch the main thread filled goes back with the answer, to be filled again (batch buffers, below).
      const batch = job.data ? job.data.buffer : undefined;
      const filled = job.frames ? ownBatch(job.frames.length * MODEL_INPUT_VALUES) : undefined;
      const back = batch ? [batch] : [];
      try {
        if (filled) {
          job.frames.forEach((f, i) => resizeToModelInput(f.image, f.background, filled, i * MODEL_INPUT_VALUES));
        }
        const result = await session.run({ [input]: new ort.Tensor('float32', filled || job.data, job.dims) });
        const scores = Float32Array.from(result[output].data);
        parentPort.postMessage({ type: 'result', id: job.id, scores, batch }, [scores.buffer, ...back]);
      } catch (e) {
        parentPort.postMessage({ type: 'result', id: job.id, error: message(e), batch }, back);
      } finally {
        if (filled && own.length < 4) {
          own.push(filled);
        }
      }
    });
    parentPort.postMessage({
      type: 'ready',
      input: describe(session.inputMetadata[0]),
      output: describe(session.outputMetadata[0]),
    });
  },
  (e) => parentPort.postMessage({ type: 'failed', error: message(e) }),
);
`;

const CLASSES = 5;

/**
 * Batch buffers the worker gave back, for the next batches of the same size. A batch is 600 KB per input, and a new
 * ArrayBuffer is zeroed memory: with glibc mapping an allocation that large afresh each time (MALLOC_MMAP_THRESHOLD_ at
 * 128 KB, as `npm start` set it until 2026-12-03), every 4 KB of a new one faulted on its first write, about 0.5 ms
 * per input here, as long as the resize that fills it. At most SPARE_BATCHES are kept (the largest review's batch is
 * 3.6 MB).
 */
const spareBatches: ArrayBuffer[] = [];
const SPARE_BATCHES = 4;

/** A batch of `count` model inputs to fill (its values are left from an earlier batch: write every one). */
export function newBatch(count: number): Float32Array {
  const bytes = count * MODEL_INPUT_SIZE * MODEL_INPUT_SIZE * 3 * Float32Array.BYTES_PER_ELEMENT;
  const i = spareBatches.findIndex((b) => b.byteLength === bytes);
  return i >= 0 ? new Float32Array(spareBatches.splice(i, 1)[0]) : new Float32Array(bytes / 4);
}

function keepSpare(batch: ArrayBuffer): void {
  if (spareBatches.length === SPARE_BATCHES) {
    spareBatches.shift();
  }
  spareBatches.push(batch);
}

interface SharedEntry {
  refs: number;
  ready: Promise<InferenceWorker>;
  instance?: InferenceWorker;
}

function checkContract(input: TensorInfo, output: TensorInfo): void {
  const [, h, w, c] = input.shape;
  if (
    input.type !== 'float32' ||
    input.shape.length !== 4 ||
    h !== MODEL_INPUT_SIZE ||
    w !== MODEL_INPUT_SIZE ||
    c !== 3
  ) {
    throw new Error(
      `The model input must be float32 [N,224,224,3], got ${input.type} [${input.shape.join(',')}]`,
    );
  }
  if (output.type !== 'float32' || output.shape.length !== 2 || output.shape[1] !== CLASSES) {
    throw new Error(`The model output must be float32 [N,5], got ${output.type} [${output.shape.join(',')}]`);
  }
}

/** One onnxruntime session in a worker thread; shared by every user of the same model in the process. */
export class InferenceWorker {
  private static readonly shared = new Map<string, SharedEntry>();

  private readonly jobs = new Map<number, Job>();
  private nextId = 1;
  private inputs = 0;
  private failure: Error | undefined;

  private constructor(
    private readonly worker: Worker,
    private readonly key: string,
  ) {
    worker.unref();
    worker.on('message', (m: WorkerMessage) => this.onMessage(m));
    worker.on('error', (e) => this.fail(e));
    worker.on('exit', (code) => this.fail(new Error(`The inference worker exited (code ${code})`)));
  }

  /**
   * Starts (or joins) the worker for this model (`instance`: which of several sessions of it); resolves once the
   * session is created and its contract checked.
   */
  static acquire(modelPath: string, options: InferenceOptions, instance = 0): Promise<InferenceWorker> {
    const key = `${modelPath}\0${options.threads}\0${instance}`;
    let entry = InferenceWorker.shared.get(key);
    if (!entry) {
      const created: SharedEntry = { refs: 0, ready: InferenceWorker.start(modelPath, options, key) };
      created.ready.then(
        (instance) => (created.instance = instance),
        () => InferenceWorker.shared.get(key) === created && InferenceWorker.shared.delete(key),
      );
      InferenceWorker.shared.set(key, created);
      entry = created;
    }
    entry.refs++;
    return entry.ready;
  }

  private static start(modelPath: string, options: InferenceOptions, key: string): Promise<InferenceWorker> {
    if (!isMainThread) {
      // Set in a worker thread, the variable would not reach the native library (keepOrtTelemetryOff).
      throw new Error('Inference workers are started from the main thread only.');
    }
    keepOrtTelemetryOff();
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: {
        ortPath: require.resolve('onnxruntime-node'),
        preprocessPath: appModuleFile('modules/moderation/image-preprocess'),
        modelPath,
        sessionOptions: {
          intraOpNumThreads: options.threads,
          interOpNumThreads: 1,
          executionMode: 'sequential',
          graphOptimizationLevel: 'all',
          // Spinning threads burn CPU between requests; on a small server that CPU belongs to the HTTP side.
          extra: { session: { 'intra_op.allow_spinning': '0', 'inter_op.allow_spinning': '0' } },
        },
      },
    });
    return new Promise<InferenceWorker>((resolve, reject) => {
      const onEarlyExit = (code: number) => reject(new Error(`The inference worker exited (code ${code})`));
      worker.once('error', reject);
      worker.once('exit', onEarlyExit);
      worker.once('message', (m: WorkerMessage) => {
        worker.off('error', reject);
        worker.off('exit', onEarlyExit);
        try {
          if (m.type === 'failed') {
            throw new Error(`Cannot load the moderation model ${modelPath}: ${m.error}`);
          }
          if (m.type !== 'ready') {
            throw new Error(`Unexpected message from the inference worker: ${m.type}`);
          }
          checkContract(m.input, m.output);
          resolve(new InferenceWorker(worker, key));
        } catch (e) {
          void worker.terminate();
          reject(e instanceof Error ? e : new Error(String(e)));
        }
      });
    });
  }

  get failed(): Error | undefined {
    return this.failure;
  }

  /** Batches sent and not yet answered. */
  get pending(): number {
    return this.jobs.size;
  }

  /** Model inputs sent to this session so far. */
  get inputsRun(): number {
    return this.inputs;
  }

  /**
   * Runs `count` images of float32 RGB 0…255, 224×224 NHWC (concatenated) and returns count × 5
   * probabilities. The batch's whole buffer is transferred to the worker, not copied: the caller gives up every
   * view of it (the batch may be a view of the first values of a larger buffer).
   */
  run(batch: Float32Array, count: number): Promise<Float32Array> {
    this.inputs += count;
    return this.post({ data: batch, dims: [count, MODEL_INPUT_SIZE, MODEL_INPUT_SIZE, 3] }, [
      batch.buffer as ArrayBuffer,
    ]);
  }

  private post(job: object, transfer: ArrayBuffer[]): Promise<Float32Array> {
    if (this.failure) {
      return Promise.reject(this.failure);
    }
    const id = this.nextId++;
    return new Promise<Float32Array>((resolve, reject) => {
      this.jobs.set(id, { resolve, reject });
      // A busy worker keeps the process alive; an idle one must not (scripts and tests exit on their own).
      if (this.jobs.size === 1) {
        this.worker.ref();
      }
      this.worker.postMessage({ id, ...job }, transfer);
    });
  }

  /**
   * Runs the model on small frames the worker resizes itself (resizeToModelInput, each over its background): what
   * `run` does with the inputs the caller would have written, without the resize on the caller's thread or a 600 KB
   * batch per input crossing to the worker. Each frame's pixels are copied (a few KB for the frames this is for).
   */
  runFrames(frames: readonly FrameInput[]): Promise<Float32Array> {
    this.inputs += frames.length;
    return this.post(
      {
        frames: frames.map(({ image: { data, width, height, channels }, background }) => ({
          image: { data: new Uint8Array(data), width, height, channels },
          background,
        })),
        dims: [frames.length, MODEL_INPUT_SIZE, MODEL_INPUT_SIZE, 3],
      },
      [],
    );
  }

  /** Drops one reference; the worker ends when the last user releases it. */
  async release(): Promise<void> {
    const entry = this.sharedEntry();
    if (entry && --entry.refs > 0) {
      return;
    }
    if (entry) {
      InferenceWorker.shared.delete(this.key);
    }
    this.failure ??= new Error('The inference worker was released');
    await this.worker.terminate();
  }

  private sharedEntry(): SharedEntry | undefined {
    const entry = InferenceWorker.shared.get(this.key);
    return entry?.instance === this ? entry : undefined;
  }

  private settle(id: number): Job | undefined {
    const job = this.jobs.get(id);
    this.jobs.delete(id);
    if (this.jobs.size === 0) {
      this.worker.unref();
    }
    return job;
  }

  private onMessage(m: WorkerMessage): void {
    if (m.type !== 'result') {
      return;
    }
    const job = this.settle(m.id);
    if (m.batch) {
      keepSpare(m.batch);
    }
    if (m.error !== undefined || !m.scores) {
      job?.reject(new Error(`Inference failed: ${m.error ?? 'no output'}`));
    } else {
      job?.resolve(m.scores);
    }
  }

  private fail(error: Error): void {
    this.failure ??= error;
    if (this.sharedEntry()) {
      // The next acquire starts a fresh worker.
      InferenceWorker.shared.delete(this.key);
    }
    for (const id of [...this.jobs.keys()]) {
      this.settle(id)?.reject(this.failure);
    }
  }
}

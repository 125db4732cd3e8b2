import type { ReviewFrame } from '../media/decode';
import { MODEL_INPUT_VALUES, modelInputSlots, writeModelInputsAsync } from './image-preprocess';
import { InferenceWorker, newBatch } from './inference-worker';
import type { ModerationScores } from './moderation.types';
import { Semaphore } from './semaphore';

export interface NsfwClassifierOptions {
  /**
   * Inference threads (the service's default: 2, or 1 on a one-core machine): one onnxruntime session each, in its
   * own worker thread with one intra-op thread.
   */
  threads: number;
  /** Reviews decoded and classified at once; the rest queue. */
  concurrency: number;
}

export interface Classification {
  /** How many frames were classified. */
  frames: number;
  /** One entry per model input: per frame, and per background when the frame is transparent. */
  scores: ModerationScores[];
}

/** The model's classes, in its output's order. */
const CLASSES = 5;

const toScores = (p: Float32Array, i: number): ModerationScores => ({
  drawing: p[i * CLASSES],
  hentai: p[i * CLASSES + 1],
  neutral: p[i * CLASSES + 2],
  porn: p[i * CLASSES + 3],
  sexy: p[i * CLASSES + 4],
});

/** Copies a prepared input into the batch as its `index`th. */
function putInput(batch: Float32Array, index: number, input: Float32Array): void {
  if (input.length !== MODEL_INPUT_VALUES) {
    throw new Error(`A prepared input must have ${MODEL_INPUT_VALUES} values, got ${input.length}`);
  }
  batch.set(input, index * MODEL_INPUT_VALUES);
}

/**
 * The NSFW classifier: nsfwjs-compatible preprocessing, inference off the event loop, bounded concurrency.
 *
 * With several threads, each has a session of its own (a worker thread with one intra-op thread), and a review's
 * inputs are split between them: a transparent image's two backgrounds, or an animation's frames, run side by side
 * on two cores. One session with two intra-op threads gains little on this model (one input 5.3 against 5.6 ms here;
 * two 8.5–11.9 ms, where two sessions take 6.1–8.0 ms, and six 29.5 against 20.5 ms), and it runs two reviews one
 * after the other where two sessions run them at once. Each further session costs about 40 MB (its own worker and
 * weights).
 */
export class NsfwClassifier {
  private readonly gate: Semaphore;

  private constructor(
    private readonly workers: readonly InferenceWorker[],
    private readonly options: NsfwClassifierOptions,
  ) {
    this.gate = new Semaphore(options.concurrency);
  }

  /**
   * Loads an ONNX model with input float32 [N,224,224,3] (RGB 0…255, NHWC) and output float32 [N,5]
   * (Drawing…Sexy).
   */
  static async load(modelPath: string, options: NsfwClassifierOptions): Promise<NsfwClassifier> {
    const loads = await Promise.allSettled(
      Array.from({ length: Math.max(1, options.threads) }, (_, i) =>
        InferenceWorker.acquire(modelPath, { threads: 1 }, i),
      ),
    );
    const workers = loads.flatMap((l) => (l.status === 'fulfilled' ? [l.value] : []));
    const failed = loads.find((l): l is PromiseRejectedResult => l.status === 'rejected');
    if (failed) {
      await Promise.all(workers.map((w) => w.release()));
      throw failed.reason;
    }
    return new NsfwClassifier(workers, options);
  }

  /** Set when an inference worker died; the classifier cannot be used any more. */
  get failure(): Error | undefined {
    return this.workers.find((w) => w.failed)?.failed;
  }

  /**
   * Classifies decoded frames (media's decodeFrames: full resolution, oriented, 8-bit sRGB(A)), or frames another
   * process already prepared (their model inputs).
   */
  classify(frames: readonly ReviewFrame[]): Promise<Classification> {
    return this.gate.use(async () => {
      // The inputs are written straight into the batch the worker gets (no copy per input); a frame with alpha has
      // room for two, and the batch sent is the inputs written.
      const slots = frames.reduce((n, f) => n + ('inputs' in f ? f.inputs.length : modelInputSlots(f)), 0);
      const batch = newBatch(slots);
      let count = 0;
      for (const frame of frames) {
        if ('inputs' in frame) {
          for (const input of frame.inputs) {
            putInput(batch, count++, input);
          }
        } else {
          count += await writeModelInputsAsync(frame, batch, count * MODEL_INPUT_VALUES);
        }
      }
      const probabilities = await this.infer(batch.subarray(0, count * MODEL_INPUT_VALUES), count);
      return {
        frames: frames.length,
        scores: Array.from({ length: count }, (_, i) => toScores(probabilities, i)),
      };
    });
  }

  /**
   * Classifies already prepared inputs (float32 RGB 0…255, 224×224 each, as frameToModelInputs makes them);
   * used by tests and the bench.
   */
  async classifyPrepared(inputs: readonly Float32Array[]): Promise<ModerationScores[]> {
    const batch = newBatch(inputs.length);
    inputs.forEach((input, i) => putInput(batch, i, input));
    const probabilities = await this.infer(batch, inputs.length);
    return inputs.map((_, i) => toScores(probabilities, i));
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.release()));
  }

  /**
   * The probabilities of `count` inputs: split into as many parts as there are sessions (the least busy gets the
   * first), run at once, and put back in order. The first part is sent as a view of `batch` (its buffer is
   * transferred, as InferenceWorker.run says); the others are copied into batches of their own first.
   */
  private async infer(batch: Float32Array, count: number): Promise<Float32Array> {
    const workers = [...this.workers].sort((a, b) => a.pending - b.pending);
    const parts = Math.min(workers.length, count);
    if (parts <= 1) {
      return workers[0].run(batch, count);
    }
    const sizes = Array.from(
      { length: parts },
      (_, i) => Math.floor(count / parts) + (i < count % parts ? 1 : 0),
    );
    const starts = sizes.map((_, i) => sizes.slice(0, i).reduce((a, b) => a + b, 0));
    const copies = sizes.map((size, i) => {
      if (i === 0) {
        return batch.subarray(0, size * MODEL_INPUT_VALUES);
      }
      const part = newBatch(size);
      part.set(batch.subarray(starts[i] * MODEL_INPUT_VALUES, (starts[i] + size) * MODEL_INPUT_VALUES));
      return part;
    });
    const results = await Promise.all(copies.map((part, i) => workers[i].run(part, sizes[i])));
    const probabilities = new Float32Array(count * CLASSES);
    results.forEach((r, i) => probabilities.set(r, starts[i] * CLASSES));
    return probabilities;
  }
}

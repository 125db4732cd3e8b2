import type { ReviewFrame } from '../media/decode';
import { MODEL_INPUT_VALUES, modelInputSlots, writeModelInputsAsync } from './image-preprocess';
import { InferenceWorker, newBatch } from './inference-worker';
import type { ModerationScores } from './moderation.types';
import { Semaphore } from './semaphore';

export interface NsfwClassifierOptions {
  /** onnxruntime intra-op threads (the service's default: 2, or 1 on a one-core machine). */
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

const toScores = (p: Float32Array, i: number): ModerationScores => ({
  drawing: p[i * 5],
  hentai: p[i * 5 + 1],
  neutral: p[i * 5 + 2],
  porn: p[i * 5 + 3],
  sexy: p[i * 5 + 4],
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
 */
export class NsfwClassifier {
  private readonly gate: Semaphore;

  private constructor(
    private readonly worker: InferenceWorker,
    private readonly options: NsfwClassifierOptions,
  ) {
    this.gate = new Semaphore(options.concurrency);
  }

  /**
   * Loads an ONNX model with input float32 [N,224,224,3] (RGB 0…255, NHWC) and output float32 [N,5]
   * (Drawing…Sexy).
   */
  static async load(modelPath: string, options: NsfwClassifierOptions): Promise<NsfwClassifier> {
    const worker = await InferenceWorker.acquire(modelPath, { threads: options.threads });
    return new NsfwClassifier(worker, options);
  }

  /** Set when the inference worker died; the classifier cannot be used any more. */
  get failure(): Error | undefined {
    return this.worker.failed;
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
      const probabilities = await this.worker.run(batch.subarray(0, count * MODEL_INPUT_VALUES), count);
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
    const probabilities = await this.worker.run(batch, inputs.length);
    return inputs.map((_, i) => toScores(probabilities, i));
  }

  close(): Promise<void> {
    return this.worker.release();
  }
}

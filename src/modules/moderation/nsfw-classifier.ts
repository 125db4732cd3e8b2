import type { ReviewFrame } from '../media/decode';
import { frameToModelInputsAsync, MODEL_INPUT_VALUES } from './image-preprocess';
import { InferenceWorker } from './inference-worker';
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
      const inputs: Float32Array[] = [];
      for (const frame of frames) {
        inputs.push(...('inputs' in frame ? frame.inputs : await frameToModelInputsAsync(frame)));
      }
      const scores = await this.classifyPrepared(inputs);
      return { frames: frames.length, scores };
    });
  }

  /**
   * Classifies already prepared inputs (float32 RGB 0…255, 224×224 each, as frameToModelInputs makes them);
   * used by tests and the bench.
   */
  async classifyPrepared(inputs: readonly Float32Array[]): Promise<ModerationScores[]> {
    const batch = new Float32Array(inputs.length * MODEL_INPUT_VALUES);
    inputs.forEach((input, i) => {
      if (input.length !== MODEL_INPUT_VALUES) {
        throw new Error(`A prepared input must have ${MODEL_INPUT_VALUES} values, got ${input.length}`);
      }
      batch.set(input, i * MODEL_INPUT_VALUES);
    });
    const probabilities = await this.worker.run(batch, inputs.length);
    return inputs.map((_, i) => toScores(probabilities, i));
  }

  close(): Promise<void> {
    return this.worker.release();
  }
}

import type { RawImage, ReviewFrame } from '../media/decode';
import {
  BACKGROUNDS,
  hasAlpha,
  MODEL_INPUT_SIZE,
  MODEL_INPUT_VALUES,
  modelInputSlots,
  writeModelInputsAsync,
} from './image-preprocess';
import { type FrameInput, InferenceWorker, newBatch } from './inference-worker';
import type { ModerationScores } from './moderation.types';
import { Semaphore } from './semaphore';

export interface NsfwClassifierOptions {
  /**
   * Inference sessions (the service's default: 2, or 1 on a one-core machine): one onnxruntime session each, in its
   * own worker thread.
   */
  threads: number;
  /** onnxruntime intra-op threads of each session (the service's default: 1); 1 unless given. */
  sessionThreads?: number;
  /**
   * With more than one session: one more session, of this many intra-op threads, for reviews of a single input (an
   * opaque still) while it is idle; the others then take the reviews of several inputs (and lone ones while it is
   * busy). It loads once load() has resolved (soloLoaded). 0 or absent: none (the service's default: 2 on two cores
   * or more, MODERATION_THREAD_DEFAULTS).
   */
  soloThreads?: number;
  /** Reviews decoded and classified at once; the rest queue. */
  concurrency: number;
  /** Warm-up reviews load() makes before it resolves (WARM_UP_RUNS unless given; 0 for none). */
  warmUpRuns?: number;
}

/**
 * A classifier's first reviews are the slow ones: after a load without them, the first review of a 1080p frame took
 * 30–48 ms and the second 18–27 ms where the rest took 7 ms, and a 16×16 PNG's two inputs 46–67 and 30–47 ms against
 * 6–8 ms (each session's first runs, the worker's code and this thread's resize run for the first time). So load()
 * makes this many warm-up rounds first (in the service the model loads once the process listens: /readyz waits for
 * them, /healthz does not): every session classifies a small frame it resizes itself, and this thread resizes a frame
 * over SMALL_FRAME_SIDE for one. bench/moderation compares.
 */
export const WARM_UP_RUNS = 2;

export interface Classification {
  /** How many frames were classified. */
  frames: number;
  /** One entry per model input: per frame, and per background when the frame is transparent. */
  scores: ModerationScores[];
}

/** InferenceWorker.acquire's instance for the single-input session: apart from the others' 0, 1, … */
const SOLO_INSTANCE = -1;

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
 * Frames of at most this many pixels a side are resized by the inference workers (smallFrameInputs): each enlarges to
 * the model's 224 with its samples at most half a source pixel apart, so every source pixel weighs at least a quarter
 * in some input pixel, and a frame's transparency shows in its inputs exactly when one of its pixels is not opaque.
 */
const SMALL_FRAME_SIDE = Math.floor((MODEL_INPUT_SIZE - 1) / 2) + 1;

/** A grey frame for the warm-up: a Buffer, as decoded frames are (the resize code first runs on the kind it will get). */
function grey(side: number, channels: 3 | 4): RawImage {
  return { data: Buffer.alloc(side * side * channels, 128), width: side, height: side, channels };
}

/**
 * The model inputs of `frames` as the workers make them (over white, and over black when a pixel is not opaque: the
 * inputs writeModelInputsAsync writes, in its order), or null unless every frame is pixels of at most
 * SMALL_FRAME_SIDE a side. For a 16×16 PNG the resize took 0.6–0.9 ms on the event loop's thread before its two
 * inferences could start; each worker now resizes its own input (one background) beside the other, and the upload
 * took 0.978–0.993 of its time (side by side in one service, alternate uploads).
 */
function smallFrameInputs(frames: readonly ReviewFrame[]): FrameInput[] | null {
  const inputs: FrameInput[] = [];
  for (const frame of frames) {
    if (!('data' in frame) || frame.width > SMALL_FRAME_SIDE || frame.height > SMALL_FRAME_SIDE) {
      return null;
    }
    inputs.push({ image: frame, background: BACKGROUNDS[0] });
    if (hasAlpha(frame) && !opaque(frame)) {
      inputs.push({ image: frame, background: BACKGROUNDS[1] });
    }
  }
  return inputs;
}

/** Whether every pixel of a frame with alpha is fully opaque. */
function opaque({ data, channels }: { data: Uint8Array; channels: number }): boolean {
  for (let i = channels - 1; i < data.length; i += channels) {
    if (data[i] !== 255) {
      return false;
    }
  }
  return true;
}

/**
 * The NSFW classifier: nsfwjs-compatible preprocessing, inference off the event loop, bounded concurrency.
 *
 * With several threads, each has a session of its own (a worker thread), and a review's inputs are split between
 * them: a transparent image's two backgrounds, or an animation's frames, run side by side on two cores, and two reviews
 * run at once (one session runs them one after the other). Each further session costs about 40 MB (its own worker and
 * weights). Each session runs an input on `sessionThreads` intra-op threads, so a lone input (an opaque still, the
 * most common review) is not left to one core: on an AMD EPYC machine of AVX2 cores (2026-12-04) one input took
 * 11.3 ms on two threads against 21.2 ms on one, and two sessions of two threads each, both busy, were no slower
 * than two of one thread (two inputs at once 31.8 against 35.6 ms, four 62 against 64 ms); on an earlier machine
 * whose two cores gained little from each other, one input took 5.2–5.9 ms on two threads against 5.4–6.7 ms on one.
 */
export class NsfwClassifier {
  private readonly gate: Semaphore;
  /** Every session: those that split a review's inputs, then the single-input one once it is in use (read per review). */
  private sessions: readonly InferenceWorker[];
  /** The session for single inputs (NsfwClassifierOptions.soloThreads) once loaded and warmed up, or null. */
  private solo: InferenceWorker | null = null;
  private closing = false;
  private warmUps = 0;
  /**
   * Settles once the single-input session is in use (true), or will not be (false: none asked for, it failed to load
   * or to warm up, or the classifier was closed first). Never rejects; `soloFailure` says why it failed.
   */
  readonly soloLoaded: Promise<boolean>;
  private soloError: Error | undefined;
  /** Opened once load() has warmed up the other sessions (or on close): the single-input session loads after it. */
  private readonly soloGate: Promise<void>;
  private openSoloGate: () => void = () => undefined;

  private constructor(
    private readonly workers: readonly InferenceWorker[],
    private readonly options: NsfwClassifierOptions,
    /** Loads the single-input session (acquired, not yet warmed up), or null for none. */
    loadSolo: (() => Promise<InferenceWorker>) | null,
  ) {
    this.gate = new Semaphore(options.concurrency);
    this.sessions = workers;
    this.soloGate = new Promise((open) => (this.openSoloGate = open));
    this.soloLoaded = loadSolo ? this.takeSolo(loadSolo) : Promise.resolve(false);
  }

  /**
   * Loads an ONNX model with input float32 [N,224,224,3] (RGB 0…255, NHWC) and output float32 [N,5]
   * (Drawing…Sexy).
   */
  static async load(modelPath: string, options: NsfwClassifierOptions): Promise<NsfwClassifier> {
    const sessions = Math.max(1, options.threads);
    const soloThreads = sessions > 1 ? (options.soloThreads ?? 0) : 0;
    const loads = await Promise.allSettled(
      Array.from({ length: sessions }, (_, i) =>
        InferenceWorker.acquire(modelPath, { threads: options.sessionThreads ?? 1 }, i),
      ),
    );
    const workers = loads.flatMap((l) => (l.status === 'fulfilled' ? [l.value] : []));
    const failed = loads.find((l): l is PromiseRejectedResult => l.status === 'rejected');
    if (failed) {
      await Promise.all(workers.map((w) => w.release()));
      throw failed.reason;
    }
    // The single-input session loads once the others are warmed up (soloGate), so that on two cores its load does not
    // hold the model's readiness back (in the service, /readyz came 100–600 ms later with the three loading at once).
    const loadSolo =
      soloThreads > 0
        ? () => InferenceWorker.acquire(modelPath, { threads: soloThreads }, SOLO_INSTANCE)
        : null;
    const classifier = new NsfwClassifier(workers, options, loadSolo);
    try {
      await classifier.warmUp(options.warmUpRuns ?? WARM_UP_RUNS);
    } catch (error) {
      // A model that loads but cannot classify: unusable, as one that does not load.
      await classifier.close().catch(() => undefined);
      throw error;
    }
    classifier.openSoloGate();
    return classifier;
  }

  /** Why the single-input session is not in use, when it failed to load or to warm up. */
  get soloFailure(): Error | undefined {
    return this.soloError;
  }

  /**
   * Loads the single-input session, warms it up as load() warms up the others (a small opaque frame it resizes
   * itself, and a large one resized here, each round) before any review reaches it, then puts it in use. A failure
   * leaves the classifier as it was: the other sessions take every review.
   */
  private async takeSolo(loadSolo: () => Promise<InferenceWorker>): Promise<boolean> {
    let worker: InferenceWorker | undefined;
    try {
      await this.soloGate;
      if (this.closing) {
        return false;
      }
      worker = await loadSolo();
      const rounds = this.options.warmUpRuns ?? WARM_UP_RUNS;
      for (let round = 0; round < rounds && !this.closing; round++) {
        await this.classifyOn([grey(4, 3)], worker);
        await this.classifyOn([grey(SMALL_FRAME_SIDE + 8, 3)], worker);
      }
      if (this.closing) {
        await worker.release();
        return false;
      }
      this.solo = worker;
      this.sessions = [...this.workers, worker];
      return true;
    } catch (error) {
      this.soloError = error instanceof Error ? error : new Error(String(error));
      await worker?.release().catch(() => undefined);
      return false;
    }
  }

  /** The warm-up rounds load() made (WARM_UP_RUNS). */
  get warmedUp(): number {
    return this.warmUps;
  }

  /**
   * `rounds` reviews of grey frames, thrown away: small half-transparent frames, two inputs each (over white and over
   * black), one input for every session, which resizes its own (as for a small upload); and an opaque frame this
   * thread resizes (as for a large one). The single-input session has warm-up rounds of its own (takeSolo).
   */
  private async warmUp(rounds: number): Promise<void> {
    const small = Array.from({ length: Math.ceil(this.workers.length / 2) }, () => grey(4, 4));
    const large = grey(SMALL_FRAME_SIDE + 8, 3);
    for (; this.warmUps < rounds; this.warmUps++) {
      await this.classify(small);
      await this.classify([large]);
    }
  }

  /** Set when an inference worker died; the classifier cannot be used any more. */
  get failure(): Error | undefined {
    return this.sessions.find((w) => w.failed)?.failed;
  }

  /** Inputs each session has run so far, the single-input session's count last (if there is one): for tests. */
  get inputsRun(): number[] {
    return this.sessions.map((w) => w.inputsRun);
  }

  /**
   * Classifies decoded frames (media's decodeFrames: full resolution, oriented, 8-bit sRGB(A)), or frames another
   * process already prepared (their model inputs).
   */
  classify(frames: readonly ReviewFrame[]): Promise<Classification> {
    return this.gate.use(() => this.classifyOn(frames));
  }

  /** classify, outside the gate; with `only`, every input runs on that session (the single-input one's warm-up). */
  private async classifyOn(frames: readonly ReviewFrame[], only?: InferenceWorker): Promise<Classification> {
    const small = smallFrameInputs(frames);
    if (small) {
      const probabilities = await this.inferFrames(small, only);
      return {
        frames: frames.length,
        scores: Array.from({ length: small.length }, (_, i) => toScores(probabilities, i)),
      };
    }
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
    const probabilities = await this.infer(batch.subarray(0, count * MODEL_INPUT_VALUES), count, only);
    return {
      frames: frames.length,
      scores: Array.from({ length: count }, (_, i) => toScores(probabilities, i)),
    };
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
    this.closing = true;
    // A single-input session still to load or warming up is released by takeSolo, which soloLoaded waits for.
    this.openSoloGate();
    await Promise.all(this.sessions.map((w) => w.release()));
    await this.soloLoaded;
  }

  /** inferParts for inputs the workers make of small frames themselves (smallFrameInputs). */
  private inferFrames(inputs: readonly FrameInput[], only?: InferenceWorker): Promise<Float32Array> {
    return this.inferParts(
      inputs.length,
      (start, size) => (worker) => worker.runFrames(inputs.slice(start, start + size)),
      only,
    );
  }

  /**
   * The probabilities of `count` inputs in `batch`: the first part is sent as a view of it (its buffer is transferred,
   * as InferenceWorker.run says), so the others are copied into batches of their own before any part is sent.
   */
  private infer(batch: Float32Array, count: number, only?: InferenceWorker): Promise<Float32Array> {
    return this.inferParts(
      count,
      (start, size) => {
        if (start === 0) {
          return (worker) => worker.run(batch.subarray(0, size * MODEL_INPUT_VALUES), size);
        }
        const part = newBatch(size);
        part.set(batch.subarray(start * MODEL_INPUT_VALUES, (start + size) * MODEL_INPUT_VALUES));
        return (worker) => worker.run(part, size);
      },
      only,
    );
  }

  /**
   * Splits `count` inputs into parts of consecutive inputs, as many as there are sessions at most (the least busy
   * gets the first), runs them at once and puts their probabilities back in order. `part` is called for every part
   * before any runs. A single input goes to the single-input session while it is idle (soloThreads): on a machine of
   * two cores, two inputs side by side ran faster on sessions of one intra-op thread each than on two of two (four
   * threads on two cores), and a lone one faster on two threads than on one (README, NSFW moderation).
   */
  private async inferParts(
    count: number,
    part: (start: number, size: number) => (worker: InferenceWorker) => Promise<Float32Array>,
    only?: InferenceWorker,
  ): Promise<Float32Array> {
    if (only) {
      return part(0, count)(only);
    }
    if (count === 1 && this.solo !== null && this.solo.pending === 0) {
      return part(0, 1)(this.solo);
    }
    const workers = [...this.workers].sort((a, b) => a.pending - b.pending);
    const parts = Math.min(workers.length, count);
    if (parts <= 1) {
      return part(0, count)(workers[0]);
    }
    const sizes = Array.from(
      { length: parts },
      (_, i) => Math.floor(count / parts) + (i < count % parts ? 1 : 0),
    );
    const starts = sizes.map((_, i) => sizes.slice(0, i).reduce((a, b) => a + b, 0));
    const runs = sizes.map((size, i) => part(starts[i], size));
    const results = await Promise.all(runs.map((run, i) => run(workers[i])));
    const probabilities = new Float32Array(count * CLASSES);
    results.forEach((r, i) => probabilities.set(r, starts[i] * CLASSES));
    return probabilities;
  }
}

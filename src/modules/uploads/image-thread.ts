import { Worker } from 'node:worker_threads';
import { appModuleFile } from '../../app-paths';
import { AppError } from '../../common/errors/app-error';
import type { PreparedFrame } from '../media/decode';
import type { ImageOptions } from '../media/image-limits';
import type { Offload } from '../media/image-processor';
import type { ImageType, ProcessedImage } from '../media/image.types';
import { type OffloadError, OffloadJobs, type OffloadRequest, undecodable } from './offload-jobs';

/** What the event loop's thread sends: one still. */
export type ImageThreadJob = OffloadRequest;

/** The thread's image: `data` null when stripping left the upload as it came (the bytes to store are the ones sent). */
type ThreadImage = Omit<ProcessedImage, 'data' | 'review'> & {
  data: Uint8Array | null;
  review: PreparedFrame[];
};

export type ImageThreadReply =
  | { id: number; image: ThreadImage; error?: undefined }
  | { id: number; error: OffloadError; image?: undefined };

/** The thread's entry: the compiled .js beside this file, or the .ts under ts-node and jest. */
const ENTRY = appModuleFile('modules/uploads/image-thread-entry');
const BOOTSTRAP = `
const { workerData } = require('node:worker_threads');
if (workerData.entry.endsWith('.ts')) {
  require('ts-node/register/transpile-only');
}
require(workerData.entry);
`;

/**
 * Large stills (over `minPixels`, up to `maxPixels` decoded: between a frame the event loop's heap takes in its stride
 * and a heavy image) are decoded and stripped in a worker thread, with an isolate of its own, which answers with the
 * bytes to store and the review frame already turned into the classifier's inputs (600 KB, not the frame).
 *
 * In the event loop's isolate, a decoded 12 MP frame (36 MB of memory outside V8's heap) crossed V8's limit for such
 * memory on every upload: two scavenges and a full collection, 30–40 ms of that thread's time, in the middle of the
 * upload (`--trace-gc`, "external memory pressure"). In this thread's small heap (about 6 MB) one full collection
 * takes 7–10 ms with the frame in it, off the event loop; the thread collects once it has nothing left to do, so the
 * frame is gone, not merely dead, by then. The thread is started on the first such image and kept; one that dies or
 * hangs past the decode timeout is stopped, its images fail with `processing_failed`, and the next image starts a new
 * one.
 */
export class ImageThread {
  private worker: Worker | undefined;
  private readonly jobs: OffloadJobs<Worker, ThreadImage>;
  private closed = false;
  readonly offload: Offload & { maxPixels: number };

  /**
   * `graceMs`: how long past the decode timeout's four sharp pipelines an image may take before the thread counts as
   * stuck.
   */
  constructor(minPixels: number, maxPixels: number, graceMs = 5000) {
    this.offload = { minPixels, maxPixels, run: (input, type, options) => this.run(input, type, options) };
    this.jobs = new OffloadJobs<Worker, ThreadImage>(
      (worker, error) => this.stop(worker, error),
      graceMs,
      (left) => left === 0 && this.worker?.unref(),
    );
  }

  /** The thread's id, while one runs (for tests). */
  get threadId(): number | undefined {
    return this.worker?.threadId;
  }

  run(
    input: Buffer,
    type: ImageType,
    options: ImageOptions & { reviewFrames: number },
  ): Promise<ProcessedImage> {
    if (this.closed) {
      return Promise.reject(new AppError('unavailable', 'The service is shutting down.'));
    }
    const worker = this.ensureWorker();
    const { id, answer } = this.jobs.add(worker, options.timeoutSeconds);
    if (this.jobs.size === 1) {
      worker.ref();
    }
    // A copy of the bytes crosses (a view would take its whole buffer along): the caller keeps its own.
    const bytes = new Uint8Array(input);
    const job: ImageThreadJob = { id, input: bytes, type, options };
    worker.postMessage(job, [bytes.buffer]);
    return answer.then(({ data, ...rest }) => ({
      ...rest,
      // The pipeline compares and stores Buffers; the one it sent when nothing was stripped.
      data: data ? Buffer.from(data.buffer, data.byteOffset, data.byteLength) : input,
    }));
  }

  /** Stops the thread (module shutdown); images still in it fail. */
  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    if (worker) {
      this.stop(worker, new AppError('unavailable', 'The service is shutting down.'));
      await worker.terminate().catch(() => undefined);
    }
  }

  private ensureWorker(): Worker {
    if (this.worker) {
      return this.worker;
    }
    const worker = new Worker(BOOTSTRAP, { eval: true, workerData: { entry: ENTRY } });
    worker.on('message', (reply: ImageThreadReply) => {
      const job = this.jobs.settle(reply.id);
      if (reply.error) {
        job?.reject(new AppError(reply.error.code, reply.error.message));
      } else {
        job?.resolve(reply.image);
      }
    });
    worker.on('error', (error) => this.stop(worker, undecodable(error)));
    worker.on('exit', () => this.stop(worker, undecodable()));
    // An idle thread never keeps the service (or a test) running.
    worker.unref();
    this.worker = worker;
    return worker;
  }

  /** Fails the images in `worker` and stops it; the next image starts a new thread. */
  private stop(worker: Worker, error: Error): void {
    if (this.worker === worker) {
      this.worker = undefined;
      void worker.terminate().catch(() => undefined);
    }
    this.jobs.fail(error, worker);
  }
}

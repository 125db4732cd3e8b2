import { AppError, type ErrorCode } from '../../common/errors/app-error';
import type { ImageOptions } from '../media/image-limits';
import type { ImageType, ProcessedImage } from '../media/image.types';

/** What is sent where an image is decoded: one image to decode and strip (processImage's arguments, without the gate). */
export interface OffloadRequest {
  id: number;
  input: Uint8Array;
  type: ImageType;
  options: ImageOptions & { reviewFrames: number };
}

/** An image's failure as it crosses back from where it was decoded: a contract error as it was, anything else 415. */
export interface OffloadError {
  code: ErrorCode;
  message: string | undefined;
}

export function toOffloadError(error: unknown): OffloadError {
  return error instanceof AppError
    ? { code: error.code, message: error.message }
    : { code: 'processing_failed', message: undefined };
}

/** The answer for an image whose decoder went away (a process or thread that died) before it answered. */
export const undecodable = (cause?: unknown): AppError =>
  new AppError('processing_failed', 'The image could not be decoded; send a smaller or simpler file.', {
    cause,
  });

interface Job<Owner, Answer> {
  owner: Owner;
  resolve: (answer: Answer) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * The images sent to another process or thread (HeavyImageProcess, ImageThread) and not answered yet, by id, each
 * with the owner it was sent to and a time limit: processImage runs at most a few sharp pipelines, each under the
 * decode timeout, so past four of them and `graceMs` the owner is stuck, and `stuck` is told to stop it. `Answer`: what
 * the owner answers (the image, or what the caller makes it of).
 */
export class OffloadJobs<Owner, Answer = ProcessedImage> {
  private readonly jobs = new Map<number, Job<Owner, Answer>>();
  private nextId = 1;

  constructor(
    private readonly stuck: (owner: Owner, error: AppError) => void,
    private readonly graceMs = 5000,
    /** Called when a job leaves, with how many are left. */
    private readonly left: (count: number) => void = () => undefined,
  ) {}

  get size(): number {
    return this.jobs.size;
  }

  /** A new job's id and its answer; the answer settles through settle() or fail(). */
  add(owner: Owner, timeoutSeconds: number): { id: number; answer: Promise<Answer> } {
    const id = this.nextId++;
    const answer = new Promise<Answer>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          this.stuck(
            owner,
            new AppError(
              'processing_failed',
              `The image took longer than ${timeoutSeconds} s to decode; send a smaller or simpler file.`,
            ),
          ),
        timeoutSeconds * 4 * 1000 + this.graceMs,
      );
      this.jobs.set(id, { owner, resolve, reject, timer });
    });
    return { id, answer };
  }

  /** Takes job `id` out (its limit cleared), to be resolved or rejected by the caller; undefined when unknown. */
  settle(id: number): Pick<Job<Owner, Answer>, 'owner' | 'resolve' | 'reject'> | undefined {
    const job = this.jobs.get(id);
    if (job) {
      clearTimeout(job.timer);
      this.jobs.delete(id);
      this.left(this.jobs.size);
    }
    return job;
  }

  /** Rejects the jobs sent to `owner` (one that died or hung), or every job. */
  fail(error: Error, owner?: Owner): void {
    for (const [id, job] of [...this.jobs]) {
      if (owner === undefined || job.owner === owner) {
        this.settle(id)?.reject(error);
      }
    }
  }
}

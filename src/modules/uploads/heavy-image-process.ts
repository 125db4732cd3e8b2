import { type ChildProcess, fork } from 'node:child_process';
import { appModuleFile } from '../../app-paths';
import { AppError } from '../../common/errors/app-error';
import type { ImageOptions } from '../media/image-limits';
import type { ProcessedImage, ImageType } from '../media/image.types';
import type { Offload } from '../media/image-processor';
import { type OffloadError, OffloadJobs, type OffloadRequest, undecodable } from './offload-jobs';

/** What the parent sends: one image. */
export type HeavyJob = OffloadRequest;

export type HeavyReply =
  | { id: number; image: ProcessedImage; error?: undefined }
  | { id: number; error: OffloadError; image?: undefined };

/**
 * An idle process exits after this long: heavy images come in bursts, and the memory a 100 MP decode leaves behind
 * (glibc keeps freed pages) should go back to the system rather than stay with a process that waits.
 */
const IDLE_EXIT_MS = 5000;

/** The child's entry: the compiled .js beside this file, or the .ts under ts-node and jest. */
const CHILD = appModuleFile('modules/uploads/heavy-image-child');

/**
 * Heavy animations (over HEAVY_PIXELS decoded, all frames: up to the frame cap) are decoded and stripped in a
 * separate process at a low CPU priority (`IMAGE_HEAVY_NICE`, Linux). A few worst-case files then take only the CPU
 * that ordinary uploads and HTTP leave idle, instead of an equal share of it, so ordinary uploads keep their latency
 * (issue 9, item 6; `npm run bench -- floods`). The process is started on the first heavy image and kept; one that
 * dies or hangs past the decode timeout is killed, its image fails with `processing_failed`, and the next heavy
 * image starts a new one; an idle one exits after IDLE_EXIT_MS. ImagePool's heavy lane sends it one image at a time.
 */
export class HeavyImageProcess {
  private child: ChildProcess | undefined;
  private readonly jobs = new OffloadJobs<ChildProcess>(
    (child, error) => {
      this.jobs.fail(error, child);
      child.kill('SIGKILL');
    },
    5000,
    (left) => left === 0 && this.exitWhenIdle(),
  );
  private closed = false;
  private idleTimer: NodeJS.Timeout | undefined;
  readonly offload: Offload;

  constructor(
    private readonly nice: number,
    minPixels: number,
    private readonly idleExitMs = IDLE_EXIT_MS,
  ) {
    this.offload = { minPixels, run: (input, type, options) => this.run(input, type, options) };
  }

  /** The child's pid, while one runs (for tests). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  run(
    input: Buffer,
    type: ImageType,
    options: ImageOptions & { reviewFrames: number },
  ): Promise<ProcessedImage> {
    if (this.closed) {
      return Promise.reject(new AppError('unavailable', 'The service is shutting down.'));
    }
    clearTimeout(this.idleTimer);
    const child = this.ensureChild();
    const { id, answer } = this.jobs.add(child, options.timeoutSeconds);
    const job: HeavyJob = { id, input, type, options };
    child.send(job, (err) => {
      if (err) {
        // The process went away before it took the image (the channel closed): the same answer as a crash.
        this.jobs.settle(id)?.reject(undecodable(err));
      }
    });
    return answer;
  }

  /** Stops the child (module shutdown); images still in it fail. */
  close(): void {
    this.closed = true;
    clearTimeout(this.idleTimer);
    this.jobs.fail(new AppError('unavailable', 'The service is shutting down.'));
    this.child?.kill('SIGKILL');
    this.child = undefined;
  }

  private ensureChild(): ChildProcess {
    if (this.child) {
      return this.child;
    }
    const child = fork(CHILD, [String(this.nice)], {
      execArgv: CHILD.endsWith('.ts') ? ['-r', 'ts-node/register/transpile-only'] : [],
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    child.on('message', (reply: HeavyReply) => {
      const pending = this.jobs.settle(reply.id);
      if (!pending) {
        return;
      }
      if (reply.error) {
        pending.reject(new AppError(reply.error.code, reply.error.message));
        return;
      }
      const { data, review, ...size } = reply.image;
      // Buffers cross the channel as Uint8Array: the pipeline compares and stores Buffers.
      pending.resolve({ ...size, data: Buffer.from(data.buffer, data.byteOffset, data.byteLength), review });
    });
    child.on('exit', () => {
      if (this.child === child) {
        this.child = undefined;
      }
      this.jobs.fail(undecodable(), child);
    });
    child.on('error', () => undefined);
    // An idle child or its channel never keeps the service (or a test) running.
    child.unref();
    child.channel?.unref();
    this.child = child;
    return child;
  }

  /** Once no image is left in it, an idle child exits after idleExitMs. */
  private exitWhenIdle(): void {
    const child = this.child;
    if (!child) {
      return;
    }
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      if (this.jobs.size === 0 && this.child === child) {
        this.child = undefined;
        child.kill('SIGTERM');
      }
    }, this.idleExitMs);
    this.idleTimer.unref();
  }
}

import { Injectable, type OnModuleDestroy } from '@nestjs/common';
import { AppConfig } from '../../config/app-config';
import { httpProcessCount } from '../../common/jobs/process-role';
import { limitSharpMemory, niceImageThreads } from '../media/sharp-settings';
import { Semaphore } from '../moderation/semaphore';
import { ByteBudget } from './byte-budget';
import { fullCollection, GarbageRelease } from './garbage-release';
import type { DecodeGate, Offload } from '../media/image-processor';
import { HeavyImageProcess } from './heavy-image-process';

/** Above this many decoded pixels (all frames) an image takes the heavy lane: about a second of CPU or more. */
export const HEAVY_PIXELS = 16_000_000;

/**
 * Bounds the image work (sharp decodes and encodes, moderation) of this instance. sharp runs on libuv's threadpool,
 * which file I/O shares, so at most IMAGE_CONCURRENCY ordinary images and one heavy image are worked on at once;
 * loadConfig sizes the threadpool above that. Heavy images (animations and large stills) queue in their own lane of
 * one; heavy animations are decoded in the heavy-image process at a low CPU priority (HeavyImageProcess), so a few
 * worst-case files never hold up an ordinary upload, neither in a queue nor for the CPU.
 */
@Injectable()
export class ImagePool implements OnModuleDestroy {
  private readonly light: Semaphore;
  private readonly heavy = new Semaphore(1);
  private readonly bytes: ByteBudget;
  /**
   * This process's part of IMAGE_MEMORY_MB: `npm start` runs an HTTP process per core, and a burst of big uploads
   * reaches all of them, so the service holds the budget once rather than once per process.
   */
  readonly budgetBytes: number;
  private readonly nice: number;
  private renice: NodeJS.Timeout | undefined;
  /** Frees the stage's dead buffers once a burst is over (GarbageRelease). */
  readonly release = new GarbageRelease(fullCollection());
  private readonly heavyProcess: HeavyImageProcess | undefined;

  constructor(config: AppConfig) {
    this.light = new Semaphore(config.images.concurrency);
    this.heavyProcess = config.images.heavyProcess
      ? new HeavyImageProcess(config.images.heavyNice, HEAVY_PIXELS)
      : undefined;
    this.budgetBytes = Math.max(
      1,
      Math.floor(config.images.memoryBytes / httpProcessCount(config.appRole, config.webConcurrency)),
    );
    this.bytes = new ByteBudget(this.budgetBytes);
    this.nice = config.images.threadNice;
    limitSharpMemory();
    if (this.nice !== 0) {
      // libvips starts workers on demand and keeps them: new ones are lowered before the next image or within 1 s.
      this.renice = setInterval(() => niceImageThreads(this.nice), 1000);
      this.renice.unref();
    }
  }

  onModuleDestroy(): void {
    clearInterval(this.renice);
    this.release.close();
    this.heavyProcess?.close();
  }

  /** Where heavy animations are decoded (processImage's `offload`); undefined with IMAGE_HEAVY_PROCESS=false. */
  get offload(): Offload | undefined {
    return this.heavyProcess?.offload;
  }

  /** The heavy-image process's pid while it runs (tests). */
  get heavyPid(): number | undefined {
    return this.heavyProcess?.pid;
  }

  /** Whether holdBytes(bytes, …) called now would wait for room. */
  wouldWaitForBytes(bytes: number): boolean {
    return this.bytes.wouldWait(bytes);
  }

  /**
   * Runs `work` (an upload's whole in-memory stage: read, sniff, decode and strip, review, write) once the uploads
   * in that stage hold fewer than IMAGE_MEMORY_MB of file bytes; a file larger than the budget runs alone. When the
   * stage is left empty, GarbageRelease may collect what it left behind.
   */
  async holdBytes<T>(bytes: number, work: () => Promise<T>): Promise<T> {
    try {
      return await this.bytes.use(bytes, () => {
        // The upload's bytes and, when stripping removed something, their stripped copy.
        this.release.add(2 * bytes);
        return work();
      });
    } finally {
      if (this.bytes.inUse === 0 && this.bytes.pending === 0) {
        this.release.idle();
      }
    }
  }

  /** Runs `work` in the lane for an image of `pixels` decoded pixels. */
  run<T>(pixels: number, work: () => Promise<T>): Promise<T> {
    return (pixels > HEAVY_PIXELS ? this.heavy : this.light).use(() => {
      niceImageThreads(this.nice);
      return work();
    });
  }

  readonly gate: DecodeGate = (pixels, work) => {
    // The decoded frames: at most 4 bytes a pixel.
    this.release.add(4 * pixels);
    return this.run(pixels, work);
  };

  /** Images waiting for a lane (for tests and the bench). */
  get queued(): number {
    return this.light.pending + this.heavy.pending + this.bytes.pending;
  }
}

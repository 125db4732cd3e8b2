import { Injectable, type OnModuleDestroy } from '@nestjs/common';
import { AppConfig } from '../../config/app-config';
import { httpProcessCount } from '../../common/jobs/process-role';
import { limitSharpMemory, niceImageThreads } from '../media/sharp-settings';
import { Semaphore } from '../moderation/semaphore';
import { ByteBudget } from './byte-budget';
import { fullCollection, GarbageRelease, widenHeapGrowth } from './garbage-release';
import type { DecodeGate, Offload } from '../media/image-processor';
import { HeavyImageProcess } from './heavy-image-process';
import { ImageThread } from './image-thread';
import type { BodyMemory } from './multipart/multipart-reader';
import { ClusterHeavyStage, type HeavyStage, LocalHeavyStage } from './heavy-stage';
import { isClusterWorker } from '../../cluster';

/** Above this many decoded pixels (all frames) an image takes the heavy lane: about a second of CPU or more. */
export const HEAVY_PIXELS = 16_000_000;

/**
 * Stills of more decoded pixels than this, and not heavy, are decoded in the image thread (ImageThread): a 12 MP frame
 * in this process's heap cost a full collection per upload. A 1080p frame (2 MP) stays here: V8 takes several of
 * those between its collections, and the hand-off would cost more than it saves.
 */
export const THREAD_STILL_PIXELS = 4_000_000;

/**
 * A body declared (Content-Length) at most this large may be received into memory lent by the byte budget
 * (ImagePool.bodyMemory) instead of a temp file past its first MB: a phone photo's 2–6 MB, not a 20 MB scan. A 1.9 MB
 * GIF spent 16 ms receiving into a temp file and 2 ms reading it back (medians in the service), against 10 ms into
 * memory.
 */
export const BODY_MEMORY_MAX_BYTES = 8 * 1024 * 1024;

/**
 * One upload's way through the image stage: `gate` is processImage's DecodeGate, which for a heavy image first takes
 * a slot of the heavy stage (HeavyStage). `done` says the upload has dropped its decoded frames (after the review);
 * safe to call again, or when no slot was taken. When the heavy image was decoded in this process (the gate ran its
 * work here, not `elsewhere`), a full collection runs before the slot goes back, so that its frames are gone, not
 * merely dead, before the next heavy image is decoded: dead buffers are freed only by a collection, and nothing else
 * would start one in time (sixteen 27 MP uploads at once, three runs of the big-uploads bench: 285 MB over idle at the
 * peak without it, 164 MB with it). That collection (20–50 ms here) and the slot's return wait for the upload's answer
 * (the stage's `afterAnswer`), so the upload's record and answer do not wait for it. An animation decoded in the
 * heavy-image process leaves nothing big here (its bytes, and the classifier's inputs when the review is on): no
 * collection, the slot back at once. The gate, not the review's frames, says where: with the review off there are no
 * frames to tell, and every heavy animation paid a collection that froze this process's event loop for 25–65 ms
 * (docs/performance.md, the forty-seventh session's entry).
 */
export interface ImageStage {
  gate: DecodeGate;
  done: () => void;
}

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
  /** A full collection (GarbageRelease's, and a heavy image's ImageStage.done). */
  private readonly collect = fullCollection();
  /** Frees the stage's dead buffers once a burst is over (GarbageRelease). */
  readonly release = new GarbageRelease(this.collect);
  private readonly heavyProcess: HeavyImageProcess | undefined;
  private readonly imageThread = new ImageThread(THREAD_STILL_PIXELS, HEAVY_PIXELS);
  /** IMAGE_HEAVY_CONCURRENCY's slots, counted by the cluster's primary when this process is one of its workers. */
  readonly heavyStage: HeavyStage;
  /** Bytes of the budget lent to bodies being received (bodyMemory): at most half of it. */
  private lent = 0;
  /** The recall listeners of the loans out now (bodyMemory), called when an upload has to wait for the budget. */
  private readonly loans = new Set<() => void>();

  constructor(config: AppConfig) {
    widenHeapGrowth();
    this.light = new Semaphore(config.images.concurrency);
    this.heavyProcess = config.images.heavyProcess
      ? new HeavyImageProcess(config.images.heavyNice, HEAVY_PIXELS)
      : undefined;
    this.budgetBytes = Math.max(
      1,
      Math.floor(config.images.memoryBytes / httpProcessCount(config.appRole, config.webConcurrency)),
    );
    // An upload that has to wait for room gets back whatever bodies being received have borrowed: they go to disk.
    this.bytes = new ByteBudget(this.budgetBytes, () => this.recallLoans());
    const local = new LocalHeavyStage(config.images.heavyConcurrency);
    this.heavyStage = isClusterWorker() ? new ClusterHeavyStage(process, local) : local;
    this.nice = config.images.threadNice;
    limitSharpMemory();
    if (this.nice !== 0) {
      // libvips starts workers on demand and keeps them: new ones are lowered before the next image or within 1 s.
      this.renice = setInterval(() => niceImageThreads(this.nice, true), 1000);
      this.renice.unref();
    }
  }

  async onModuleDestroy(): Promise<void> {
    clearInterval(this.renice);
    this.release.close();
    this.heavyStage.close();
    this.heavyProcess?.close();
    await this.imageThread.close();
  }

  /** Where heavy animations are decoded (processImage's `offload`); undefined with IMAGE_HEAVY_PROCESS=false. */
  get offload(): Offload | undefined {
    return this.heavyProcess?.offload;
  }

  /** Where large stills are decoded (processImage's `stillOffload`). */
  get stillOffload(): Offload & { maxPixels: number } {
    return this.imageThread.offload;
  }

  /** The image thread's id while it runs (tests). */
  get imageThreadId(): number | undefined {
    return this.imageThread.threadId;
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

  /**
   * Memory for a body being received past the reader's own SINK_BUFFER_BYTES (MultipartLimits.memory), taken from the
   * byte budget without waiting, as its chunks arrive: while the budget has room, no upload waits for it, and the
   * bodies being received hold at most half of it, a body up to BODY_MEMORY_MAX_BYTES stays in memory; otherwise it
   * goes to its temp file as before. Undefined (no loan) for a body declared larger, or of no declared length. Its
   * holder gives it back once the body is in (holdBytes then counts the body), or when the body goes to disk; and
   * the moment an upload has to wait for the budget, every loan out is recalled (the bodies go to their temp files),
   * so a slow client's body never holds an upload back.
   */
  bodyMemory(declaredBytes: number | undefined): BodyMemory | undefined {
    if (declaredBytes === undefined || !(declaredBytes <= BODY_MEMORY_MAX_BYTES)) {
      return undefined;
    }
    let taken = 0;
    let recall: (() => void) | undefined;
    return {
      onRecall: (listener) => {
        recall = listener;
      },
      take: (bytes) => {
        if (
          taken + bytes > BODY_MEMORY_MAX_BYTES ||
          this.lent + bytes > this.budgetBytes / 2 ||
          !this.bytes.tryTake(bytes)
        ) {
          return false;
        }
        if (taken === 0 && recall) {
          this.loans.add(recall);
        }
        taken += bytes;
        this.lent += bytes;
        return true;
      },
      giveBack: () => {
        if (taken === 0) {
          return;
        }
        if (recall) {
          this.loans.delete(recall);
        }
        const back = taken;
        taken = 0;
        this.lent -= back;
        this.bytes.give(back);
      },
    };
  }

  /** Calls every loan's recall listener (each gives its memory back, or will once its file is started). */
  private recallLoans(): void {
    for (const recall of [...this.loans]) {
      recall();
    }
  }

  /** Bytes lent to bodies being received now (tests). */
  get lentToBodies(): number {
    return this.lent;
  }

  /** Runs `work` in the lane for an image of `pixels` decoded pixels. */
  run<T>(pixels: number, work: () => Promise<T>): Promise<T> {
    return (pixels > HEAVY_PIXELS ? this.heavy : this.light).use(() => {
      niceImageThreads(this.nice);
      return work();
    });
  }

  /** `bytes` of frames the gate let through were freed once their review was done (releaseFrames): not garbage. */
  framesFreed(bytes: number): void {
    this.release.forget(bytes);
  }

  readonly gate: DecodeGate = (pixels, work, elsewhere = false) => {
    // The decoded frames: at most 4 bytes a pixel, garbage of this heap unless they are decoded elsewhere.
    this.release.add(elsewhere ? 0 : 4 * pixels);
    return this.run(pixels, work);
  };

  /**
   * A new upload's ImageStage. `afterAnswer` runs what must wait until the upload has been answered (a heavy image's
   * collection and the return of its slot); by default it runs it at once.
   */
  stage(afterAnswer: (settle: () => void) => void = (settle) => settle()): ImageStage {
    let release: (() => void) | undefined;
    let done = false;
    // Whether a heavy image's work ran in this process (its frames are this heap's garbage), not elsewhere.
    let heavyHere = false;
    return {
      gate: async (pixels, work, elsewhere = false) => {
        if (pixels > HEAVY_PIXELS && !done && !release) {
          release = await this.heavyStage.acquire();
          if (done) {
            // Given back before the slot came (the upload ended meanwhile): pass it on at once.
            release();
          }
        }
        heavyHere ||= pixels > HEAVY_PIXELS && !elsewhere;
        return this.gate(pixels, work, elsewhere);
      },
      done: () => {
        if (done) {
          return;
        }
        done = true;
        const giveBack = release;
        if (!giveBack) {
          return;
        }
        if (!heavyHere) {
          giveBack();
          return;
        }
        afterAnswer(() => {
          this.collect();
          giveBack();
        });
      },
    };
  }

  /** Images waiting for a lane (for tests and the bench). */
  get queued(): number {
    return this.light.pending + this.heavy.pending + this.bytes.pending;
  }
}

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { setTransferFlag } from '../media/frame-memory';

/** How long the image stage must stay empty before the dead buffers are collected: a burst has ended. */
export const RELEASE_IDLE_MS = 1000;
/**
 * Below this many bytes of buffers since the last collection, V8's own collections are enough. Each collection pauses
 * the process (20–50 ms here): a trickle of 1080p JPEG uploads (about 2.6 MB each counted: the file twice, and the
 * fourth of the 4 bytes a pixel counted for the frame, whose 3 are freed after the review) pays one every twenty-five
 * uploads or so, a burst's end one.
 */
export const RELEASE_MIN_BYTES = 64 * 1024 * 1024;

type Gc = (options?: { type: 'minor' }) => void;

/**
 * V8's full collection, made callable without `--expose-gc` on the command line (so every way of starting the
 * service has it), the way Jest's leak detector gets it: the flag only exposes `gc` to contexts made after it is set.
 * V8 frees dead buffers' memory on a background thread after a full collection and settles it at the next
 * collection of any kind: the scavenge right after (a fraction of a millisecond) makes the memory go back now.
 */
export function fullCollection(): () => void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as Gc;
  return () => {
    gc();
    gc({ type: 'minor' });
  };
}

/** V8's old generation may grow to this much over what was live at its last full collection (100 %: 2 ×). */
export const HEAP_GROWING_PERCENT = 100;

/**
 * Lets V8's heap grow by HEAP_GROWING_PERCENT after a full collection, instead of V8's own factor, which fell to its
 * floor once a few big uploads had run: a limit of about 1.1 × the live heap (44 MB live here) plus a young
 * generation's worth, so the old generation reached it within each upload and V8 marked it incrementally all the time
 * (26–28 full collections in 20 RGBA PNG uploads, 30–50 ms of the loop's time each; an upload took 190–230 ms against
 * 120–145 ms before those big uploads). 50 % halved those collections (13) and 100 % ends them (one in 20 uploads after
 * the first four, against 13 at 50 %, 9 at 75 %). 100 % once let a burst of big uploads keep more dead objects before
 * each collection (the first burst's peak 242–252 MB over idle, against the 250 MB goal); since a heavy still's
 * collection runs after its answer and large stills decode in the image thread, the first burst peaked at 168–211 MB
 * with 100 % (three runs), so 100 % it is: 1080p RGBA PNG uploads side by side took 0.80–0.87 of the time with 50 %'s.
 * V8's own factor also goes up to 4 × when a process allocates fast, and this caps it (docs/performance.md). A
 * `--heap-growing-percent` on the node command line (NODE_OPTIONS does not take it) is left as it is. V8 reads the flag
 * at every full collection, so setting it at run time takes effect from the next one.
 */
export function widenHeapGrowth(execArgv: readonly string[] = process.execArgv): boolean {
  if (execArgv.some((arg) => /^--heap[-_]growing[-_]percent\b/.test(arg))) {
    return false;
  }
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
  return true;
}

/**
 * Sets now the V8 flags this module sets when the app runs (`fullCollection`, `widenHeapGrowth`). V8 accepts a code
 * cache only under the flags it was made with, and the bundle's cache is made once the app runs: the bundle's loader
 * (src/start-loader.ts) calls this before it compiles the bundle, so that the cache it reads and the one it writes
 * match. A flag the app comes to set at run time belongs here too.
 */
export function setRuntimeV8Flags(): void {
  setFlagsFromString('--expose-gc');
  widenHeapGrowth();
  setTransferFlag();
}

/**
 * Gives back the memory an upload's image stage leaves behind once a burst is over.
 *
 * The stage's big buffers (the upload's bytes, the stripped copy, the decoded frames: 81 MB for a 27 MP JPEG) live
 * outside V8's heap, and V8 frees one only when a full collection finds it dead. Those collections come from heap
 * growth and from external memory growing past a limit set at the last one; once uploads stop, nothing grows, so the
 * last uploads' buffers stayed (about 100 MB in each HTTP process after one 20 MB upload, measured) until some later
 * work happened to collect them. Here, when the stage has stayed empty for RELEASE_IDLE_MS after at least
 * RELEASE_MIN_BYTES went through it, one full collection runs (20–50 ms here for the service's heap). Uploads that
 * follow one another keep the stage from being empty that long, so a steady flow is left to V8 and pays nothing.
 */
export class GarbageRelease {
  private bytes = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly collect: () => void,
    private readonly idleMs = RELEASE_IDLE_MS,
    private readonly minBytes = RELEASE_MIN_BYTES,
  ) {}

  /** The stage took in `bytes` of buffers that will be garbage once it is done with them; it is not empty. */
  add(bytes: number): void {
    this.bytes += bytes;
    this.busy();
  }

  /**
   * `bytes` that add() counted were freed already, not left to a collection: a decode's frames, detached once their
   * review was done (releaseFrames). Without this, a trickle of 1080p uploads, whose frames are freed at once, still
   * counted 8.3 MB each and paid a full collection every seven or so for buffers already gone.
   */
  forget(bytes: number): void {
    this.bytes = Math.max(0, this.bytes - bytes);
  }

  /** Bytes counted since the last collection (tests). */
  get pendingBytes(): number {
    return this.bytes;
  }

  /** Work started in the stage: not the end of a burst. */
  private busy(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** The stage is empty: collect once it has stayed so for idleMs, if enough went through it. */
  idle(): void {
    if (this.bytes < this.minBytes) {
      return;
    }
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.bytes = 0;
      this.collect();
    }, this.idleMs);
    this.timer.unref();
  }

  close(): void {
    this.busy();
  }
}

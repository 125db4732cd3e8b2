import type { IpcChannel as GenericIpcChannel, IpcPeer } from '../../common/ipc';
import { Semaphore } from '../moderation/semaphore';

/**
 * The heavy stage (issue 14, goal 4): a heavy image's decoded frame is its largest buffer by far (a 27 MP JPEG:
 * 81 MB, four times its file), and it lives from the decode until the review has classified it. Each HTTP process
 * already decodes one heavy image at a time, but `npm start` runs a process per core, and each held its own frame:
 * two 27 MP uploads at once were two frames, their files and their stripped copies, about 240 MB. The heavy stage
 * is one count for the whole `npm start` (IMAGE_HEAVY_CONCURRENCY, default 1): a heavy image takes a slot before
 * its decode and gives it back once its review is over, so the frames alive at once are at most that many. Its
 * file waits in memory meanwhile (the process's byte budget already counts it); light images never take a slot.
 *
 * The primary holds the count (HeavyStageGrants) and workers ask it over the cluster's IPC channel
 * (ClusterHeavyStage); a single process counts for itself (LocalHeavyStage).
 */
export interface HeavyStage {
  /** Waits for a slot, in arrival order across the processes, and returns its release (idempotent). */
  acquire(): Promise<() => void>;
  /** Stops taking part (the app closes). */
  close(): void;
}

/** A worker asks for a slot, or gives one back (`id` is the worker's own number for the request). */
export type HeavyStageRequest = { fxf: 'heavy-acquire'; id: number } | { fxf: 'heavy-release'; id: number };
/** The primary grants a worker's request. */
export type HeavyStageGrant = { fxf: 'heavy-grant'; id: number };

const ignore = (): void => undefined;

/** The count of one process that is not a cluster worker. */
export class LocalHeavyStage implements HeavyStage {
  private readonly slots: Semaphore;

  constructor(slots: number) {
    this.slots = new Semaphore(slots);
  }

  acquire(): Promise<() => void> {
    return this.slots.acquire();
  }

  close(): void {
    // Nothing outside this process to let go of.
  }
}

/** What ClusterHeavyStage needs of the worker's side of the IPC channel (`process` in a cluster worker). */
export type IpcChannel = GenericIpcChannel<HeavyStageRequest>;

/** Request ids, unique in the process (however many ClusterHeavyStages share its channel). */
let nextRequestId = 1;

/** A request of this worker that the primary has not granted yet. */
interface Waiting {
  /** The primary granted it. */
  granted(): void;
  /** It goes on with this process's own count instead (the channel closed, or the stage did). */
  local(): void;
}

/** A cluster worker's side: each acquire() is a request to the primary, answered by its grant. */
export class ClusterHeavyStage implements HeavyStage {
  private readonly waiting = new Map<number, Waiting>();
  private closed = false;
  private readonly onMessage = (m: unknown): void => {
    const grant = m as Partial<HeavyStageGrant> | null;
    if (grant?.fxf === 'heavy-grant' && typeof grant.id === 'number') {
      const waiting = this.waiting.get(grant.id);
      this.waiting.delete(grant.id);
      waiting?.granted();
    }
  };

  /** `fallback` counts for this process alone when the channel is gone (the worker is about to exit). */
  constructor(
    private readonly channel: IpcChannel,
    private readonly fallback: HeavyStage,
  ) {
    channel.on('message', this.onMessage);
  }

  /**
   * Stops listening for grants (the app closes). Uploads still waiting for a slot are not left hanging, which would
   * hold the shutdown's drain: they go on with this process's own count, and the primary is told to drop their
   * requests (or to take back a grant already on its way).
   */
  close(): void {
    this.closed = true;
    this.channel.off('message', this.onMessage);
    const waiting = [...this.waiting];
    this.waiting.clear();
    for (const [id, request] of waiting) {
      this.tell({ fxf: 'heavy-release', id });
      request.local();
    }
  }

  acquire(): Promise<() => void> {
    // Once closed, no grant would reach this stage: uploads that arrive while the app closes count locally.
    if (this.closed || !this.channel.send || this.channel.connected === false) {
      return this.fallback.acquire();
    }
    const id = nextRequestId++;
    return new Promise((resolve) => {
      const request: Waiting = {
        granted: () => {
          let released = false;
          resolve(() => {
            if (!released) {
              released = true;
              this.tell({ fxf: 'heavy-release', id });
            }
          });
        },
        local: () => void this.fallback.acquire().then(resolve),
      };
      this.waiting.set(id, request);
      this.tell({ fxf: 'heavy-acquire', id }, (error) => {
        // The channel closed before the request left: count for this process alone (unless close() did already).
        if (error && this.waiting.delete(id)) {
          request.local();
        }
      });
    });
  }

  /** Sends to the primary; a closed channel means the worker is exiting, and the primary gives its slots back then. */
  private tell(message: HeavyStageRequest, sent: (error: Error | null) => void = ignore): void {
    if (!this.channel.send || this.channel.connected === false) {
      sent(new Error('the channel to the primary is closed'));
      return;
    }
    this.channel.send(message, undefined, {}, sent);
  }
}

/** What the primary needs of a worker (a cluster Worker, or any child process with an IPC channel). */
export type StagePeer = IpcPeer<HeavyStageGrant>;

/**
 * The primary's side: `slots` slots granted to the workers' requests in arrival order. A worker that exits gives
 * back what it held and its requests are dropped, so a crash mid-decode never leaves the others waiting.
 */
export class HeavyStageGrants {
  private readonly queue: { peer: StagePeer; id: number }[] = [];
  private readonly held = new Map<StagePeer, Set<number>>();
  private inUse = 0;

  constructor(private readonly slots: number) {}

  /** Handles a worker's heavy-stage message; false for any other message. */
  handle(peer: StagePeer, message: unknown): boolean {
    const m = message as Partial<HeavyStageRequest> | null;
    if (typeof m?.id !== 'number') {
      return false;
    }
    if (m.fxf === 'heavy-acquire') {
      this.queue.push({ peer, id: m.id });
      this.grant();
      return true;
    }
    if (m.fxf === 'heavy-release') {
      if (this.held.get(peer)?.delete(m.id)) {
        this.inUse--;
        this.grant();
      } else {
        // A request given up before its grant (the worker's stage closed): it leaves the queue.
        const at = this.queue.findIndex((q) => q.peer === peer && q.id === m.id);
        if (at >= 0) {
          this.queue.splice(at, 1);
        }
      }
      return true;
    }
    return false;
  }

  /** A worker exited: its slots go back and its waiting requests are dropped. */
  gone(peer: StagePeer): void {
    const ids = this.held.get(peer);
    this.held.delete(peer);
    this.inUse -= ids?.size ?? 0;
    for (let i = this.queue.length - 1; i >= 0; i--) {
      if (this.queue[i].peer === peer) {
        this.queue.splice(i, 1);
      }
    }
    this.grant();
  }

  /** Slots granted now (tests). */
  get granted(): number {
    return this.inUse;
  }

  /** Requests waiting for a slot (tests). */
  get queued(): number {
    return this.queue.length;
  }

  private grant(): void {
    while (this.inUse < this.slots && this.queue.length > 0) {
      const { peer, id } = this.queue.shift()!;
      let ids = this.held.get(peer);
      if (!ids) {
        ids = new Set();
        this.held.set(peer, ids);
      }
      ids.add(id);
      this.inUse++;
      // A closed channel means the worker is exiting: gone() gives the slot back then.
      peer.send({ fxf: 'heavy-grant', id }, undefined, {}, ignore);
    }
  }
}

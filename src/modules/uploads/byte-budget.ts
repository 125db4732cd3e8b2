/**
 * A budget of bytes shared by tasks: a task of `weight` bytes runs once the weights of the running tasks leave room for
 * it; the rest wait in arrival order (a large task is never overtaken for ever by small ones). A task heavier than the
 * whole budget runs alone.
 */
export class ByteBudget {
  private used = 0;
  private readonly waiting: { weight: number; start: () => void }[] = [];

  /** `onWait`: called each time a task starts waiting for room (ImagePool recalls the memory it lent then). */
  constructor(
    readonly capacity: number,
    private readonly onWait?: () => void,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new Error(`ByteBudget capacity must be a positive integer, got ${capacity}`);
    }
  }

  /** Tasks waiting for room. */
  get pending(): number {
    return this.waiting.length;
  }

  /** Bytes held by running tasks. */
  get inUse(): number {
    return this.used;
  }

  /** Whether a task of `bytes` started now would wait for room. */
  wouldWait(bytes: number): boolean {
    return this.waiting.length > 0 || this.used + this.weightOf(bytes) > this.capacity;
  }

  /**
   * Takes `bytes` now, without waiting, when they fit beside the running tasks and no task waits: for a holder that can
   * do without them (a body being received, which otherwise goes to disk). False when they do not fit. The holder
   * gives them back with give().
   */
  tryTake(bytes: number): boolean {
    if (bytes < 0 || this.waiting.length > 0 || this.used + bytes > this.capacity) {
      return false;
    }
    this.used += bytes;
    return true;
  }

  /** Gives back bytes taken with tryTake(); waiting tasks that now fit start. */
  give(bytes: number): void {
    this.used -= bytes;
    this.admit();
  }

  async use<T>(bytes: number, task: () => Promise<T>): Promise<T> {
    const weight = this.weightOf(bytes);
    if (this.wouldWait(bytes)) {
      await new Promise<void>((start) => {
        this.waiting.push({ weight, start });
        this.onWait?.();
      });
    } else {
      this.used += weight;
    }
    try {
      return await task();
    } finally {
      this.used -= weight;
      this.admit();
    }
  }

  private weightOf(bytes: number): number {
    return Math.min(Math.max(0, Math.ceil(bytes)), this.capacity);
  }

  private admit(): void {
    while (this.waiting.length > 0 && this.used + this.waiting[0].weight <= this.capacity) {
      const next = this.waiting.shift()!;
      this.used += next.weight;
      next.start();
    }
  }
}

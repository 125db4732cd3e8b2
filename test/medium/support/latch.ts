/** A gate a fork waits at until the test opens it: holds one side of a race exactly where the test wants it. */
export class Latch {
  private release!: () => void;
  private readonly opened = new Promise<void>((resolve) => (this.release = resolve));
  private arrivedCount = 0;
  private readonly arrivals: (() => void)[] = [];

  /** Waits until open() (at once if already open). */
  async wait(): Promise<void> {
    this.arrivedCount++;
    for (const notify of this.arrivals.splice(0)) {
      notify();
    }
    await this.opened;
  }

  open(): void {
    this.release();
  }

  /** Resolves once `n` forks are waiting (or have waited) here. */
  async arrived(n = 1): Promise<void> {
    while (this.arrivedCount < n) {
      await new Promise<void>((resolve) => this.arrivals.push(resolve));
    }
  }
}

/** Lets through only when `parties` forks have arrived: both sides of a race reach the same point, then go on. */
export class Barrier {
  private readonly latch = new Latch();
  private count = 0;

  constructor(private readonly parties: number) {}

  async arrive(): Promise<void> {
    this.count++;
    if (this.count >= this.parties) {
      this.latch.open();
    }
    await this.latch.wait();
  }
}

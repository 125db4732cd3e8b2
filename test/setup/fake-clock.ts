import { Clock } from '../../src/common/time/clock';

/** A Clock that stands still until a test moves it (token expiry and rate-limit windows without sleeping). */
export class FakeClock extends Clock {
  constructor(private t: number = Date.now()) {
    super();
  }

  override now(): number {
    return this.t;
  }

  advance(ms: number): void {
    this.t += ms;
  }

  set(ms: number): void {
    this.t = ms;
  }
}

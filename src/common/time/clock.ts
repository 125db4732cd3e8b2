import { Injectable } from '@nestjs/common';

/** The time source for token expiry and rate-limit windows (milliseconds since the epoch); tests replace it. */
@Injectable()
export class Clock {
  now(): number {
    return Date.now();
  }
}

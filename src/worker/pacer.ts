// A byte-rate bound shared by the senders of one worker (its resyncs): each records what it sent
// and waits while the worker as a whole is ahead of the rate. Short bursts pass without a wait, so
// small chunks do not pay a timer each; over any longer stretch the rate holds.

import type { Clock } from '../io/index.ts';

/** How far ahead of the rate senders may run before they wait (a burst of rate × this). */
export const pacerSlackMs = 20;

export class Pacer {
  private readonly clock: Clock;
  private readonly bytesPerSec: number;
  /** When the bytes recorded so far are paid for at the rate. */
  private paidAtMs = -Infinity;

  constructor(clock: Clock, bytesPerSec: number) {
    if (!(bytesPerSec > 0)) throw new RangeError(`a pacer needs a positive rate, got ${bytesPerSec}`);
    this.clock = clock;
    this.bytesPerSec = bytesPerSec;
  }

  /** Records `bytes` sent; resolves once the rate allows more (at once while within the slack). */
  async sent(bytes: number): Promise<void> {
    const now = this.clock.now();
    this.paidAtMs = Math.max(this.paidAtMs, now) + (bytes * 1000) / this.bytesPerSec;
    const aheadMs = this.paidAtMs - now;
    if (aheadMs > pacerSlackMs) await this.clock.sleep(aheadMs - pacerSlackMs);
  }
}

// The bytes of requests an RpcServer holds in memory at once, shared by all its connections: a
// frame takes its size when its length is known, before a byte of it is stored, and gives it back
// once its handler has finished with it (or it was never stored). A frame that does not fit is
// refused instead of queued, so that memory stays bounded whatever the peers send.

import { assert } from '../errors.ts';

export class RequestBudget {
  readonly bytesMax: number;
  private held = 0;

  constructor(bytesMax: number) {
    this.bytesMax = bytesMax;
  }

  /** Takes `bytes` if they fit under bytesMax; false (and nothing taken) if not. */
  tryTake(bytes: number): boolean {
    if (this.held + bytes > this.bytesMax) return false;
    this.held += bytes;
    return true;
  }

  release(bytes: number): void {
    assert(bytes >= 0 && bytes <= this.held, `releasing ${bytes} request bytes, ${this.held} held`);
    this.held -= bytes;
  }

  get bytesHeld(): number {
    return this.held;
  }
}

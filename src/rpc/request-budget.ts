// The bytes of clients' requests an RpcServer holds in memory at once, shared by its connections,
// and the connections waiting for room, oldest first. A frame takes its size once its header is
// read, before a byte more of it is stored, and gives it back once its handler is done with it. A
// frame that does not fit makes its connection wait, unread, in line; whoever waits first gets the
// room first, so a large request is not passed over for ever by small ones. A frame larger than the
// whole budget goes when nothing else is held, alone.

import { assert } from '../errors.ts';

/** A connection whose reading waits for room. */
export interface BudgetWaiter {
  /** Room was given back: ask again (and take it, or keep waiting in line). */
  retry(): void;
}

export class RequestBudget {
  readonly bytesMax: number;
  private held = 0;
  /** Insertion order is the line. */
  private readonly waiters = new Set<BudgetWaiter>();
  private waking = false;
  private wakeAgain = false;

  constructor(bytesMax: number) {
    this.bytesMax = bytesMax;
  }

  /** Takes `bytes` for `waiter` if they fit (or nothing is held) and nobody waits before it; false (and nothing taken) if not. */
  tryTake(bytes: number, waiter?: BudgetWaiter): boolean {
    const first = this.firstWaiter();
    if (first !== undefined && first !== waiter) return false;
    if (this.held > 0 && this.held + bytes > this.bytesMax) return false;
    this.held += bytes;
    if (waiter !== undefined) this.waiters.delete(waiter);
    return true;
  }

  /** Puts `waiter` in line (where it already is, if it waits already). */
  wait(waiter: BudgetWaiter): void {
    this.waiters.add(waiter);
  }

  /** Takes `waiter` out of the line (it gave up, or its connection closed); the next may go on. */
  leave(waiter: BudgetWaiter): void {
    const wasFirst = this.firstWaiter() === waiter;
    this.waiters.delete(waiter);
    if (wasFirst) this.wake();
  }

  release(bytes: number): void {
    assert(bytes >= 0 && bytes <= this.held, `releasing ${bytes} request bytes, ${this.held} held`);
    this.held -= bytes;
    this.wake();
  }

  get bytesHeld(): number {
    return this.held;
  }

  get waiting(): number {
    return this.waiters.size;
  }

  private firstWaiter(): BudgetWaiter | undefined {
    return this.waiters.values().next().value;
  }

  /** Lets waiters retry in line order, until the first of them still finds no room. */
  private wake(): void {
    // A retry may deliver frames whose handlers give room back at once: one loop, run again.
    if (this.waking) {
      this.wakeAgain = true;
      return;
    }
    this.waking = true;
    try {
      do {
        this.wakeAgain = false;
        for (let first = this.firstWaiter(); first !== undefined; first = this.firstWaiter()) {
          first.retry();
          if (this.firstWaiter() === first) break;
        }
      } while (this.wakeAgain);
    } finally {
      this.waking = false;
    }
  }
}

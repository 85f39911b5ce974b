// What a leader knows of each follower's log, and the flow control that bounds what is in flight
// to it (etcd-raft's Progress and Inflights).

import { assert } from '../errors.ts';

export const ProgressState = {
  /** Unsure where the follower's log ends: one append at a time, waiting for its answer. */
  Probe: 'probe',
  /** The follower keeps up: appends are pipelined within the in-flight limits. */
  Replicate: 'replicate',
  /** The follower needs a snapshot; appends wait until it is installed. */
  Snapshot: 'snapshot',
} as const;
export type ProgressState = (typeof ProgressState)[keyof typeof ProgressState];

/** A bounded window of in-flight append messages, by count and by bytes. */
export class Inflights {
  private readonly lastIndexes: number[] = [];
  private readonly sizes: number[] = [];
  private bytes = 0;
  readonly countMax: number;
  readonly bytesMax: number;

  constructor(countMax: number, bytesMax: number) {
    assert(countMax > 0 && bytesMax > 0, 'in-flight limits must be positive');
    this.countMax = countMax;
    this.bytesMax = bytesMax;
  }

  add(lastIndex: number, sizeBytes: number): void {
    assert(!this.full(), 'add to a full in-flight window');
    this.lastIndexes.push(lastIndex);
    this.sizes.push(sizeBytes);
    this.bytes += sizeBytes;
  }

  /** Frees every message whose last index is <= `index` (acknowledged). */
  freeLE(index: number): void {
    while (this.lastIndexes.length > 0 && this.lastIndexes[0] <= index) {
      this.bytes -= this.sizes[0];
      this.lastIndexes.shift();
      this.sizes.shift();
    }
  }

  freeFirst(): void {
    if (this.lastIndexes.length > 0) this.freeLE(this.lastIndexes[0]);
  }

  full(): boolean {
    return this.lastIndexes.length >= this.countMax || this.bytes >= this.bytesMax;
  }

  count(): number {
    return this.lastIndexes.length;
  }

  sizeBytes(): number {
    return this.bytes;
  }

  reset(): void {
    this.lastIndexes.length = 0;
    this.sizes.length = 0;
    this.bytes = 0;
  }
}

/** An in-progress chunked snapshot transfer to one follower. */
export interface SnapshotTransfer {
  index: number;
  /** Bytes the follower has acknowledged. */
  offsetAcked: number;
  /** Ticks since the follower last answered; a stalled transfer is resent from `offsetAcked`. */
  idleTicks: number;
}

export class Progress {
  match = 0;
  next: number;
  state: ProgressState = ProgressState.Probe;
  /** In probe state: an append is outstanding, so wait for its answer or the next heartbeat. */
  probeSent = false;
  /** Heard from since the last check-quorum round; a new leader has heard from no one yet. */
  recentActive = false;
  /** The leader's tick of the newest heartbeat this follower answered (for the lease). */
  heardAtTick = -Infinity;
  isLearner: boolean;
  snapshot: SnapshotTransfer | undefined;
  readonly inflights: Inflights;

  constructor(next: number, isLearner: boolean, inflightCountMax: number, inflightBytesMax: number) {
    this.next = next;
    this.isLearner = isLearner;
    this.inflights = new Inflights(inflightCountMax, inflightBytesMax);
  }

  becomeProbe(): void {
    if (this.state === ProgressState.Snapshot && this.snapshot !== undefined) {
      this.next = Math.max(this.match + 1, this.snapshot.index + 1);
    } else {
      this.next = this.match + 1;
    }
    this.reset(ProgressState.Probe);
  }

  becomeReplicate(): void {
    this.next = this.match + 1;
    this.reset(ProgressState.Replicate);
  }

  becomeSnapshot(index: number): void {
    this.reset(ProgressState.Snapshot);
    this.snapshot = { index, offsetAcked: 0, idleTicks: 0 };
  }

  private reset(state: ProgressState): void {
    this.state = state;
    this.probeSent = false;
    this.snapshot = undefined;
    this.inflights.reset();
  }

  /** Records an acknowledged index; returns whether it moved the match forward. */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (this.match < index) {
      this.match = index;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, index + 1);
    return updated;
  }

  /**
   * Handles a rejected append for `rejected`; `nextProbe` is where to try next. Returns false when
   * the rejection is stale (an answer to an older message).
   */
  maybeDecrTo(rejected: number, nextProbe: number): boolean {
    if (this.state === ProgressState.Replicate) {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    // A rejection of an index the follower acknowledged: it lost entries (a disk that acknowledged
    // writes it had not made durable). Forget what it matched, so that the probe walks back to
    // where its log ends and it is caught up again; without this it was probed at `match` and
    // rejected for good, a message each way without end. Lowering match is safe: the commit index
    // never moves back, and match only ever understates what a follower holds.
    if (rejected <= this.match) this.match = 0;
    this.next = Math.max(Math.min(rejected, nextProbe + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }

  isPaused(): boolean {
    switch (this.state) {
      case ProgressState.Probe:
        return this.probeSent;
      case ProgressState.Replicate:
        return this.inflights.full();
      case ProgressState.Snapshot:
        return true;
    }
  }
}

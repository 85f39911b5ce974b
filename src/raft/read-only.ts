// Bookkeeping for ReadIndex reads on the leader: each read waits for one heartbeat round that a
// majority answers, proving the leader was still the leader when the read arrived (Raft thesis §6.4).

import type { NodeId } from './types.ts';

export interface PendingRead {
  seq: number;
  from: NodeId;
  context: Uint8Array;
  index: number;
  acks: Set<NodeId>;
}

export class ReadOnly {
  private seq = 0;
  private broadcastSeq = 0;
  private roundInFlight = false;
  private queue: PendingRead[] = [];
  /** Reads that arrived before the leader committed an entry of its term. */
  private deferred: { from: NodeId; context: Uint8Array }[] = [];
  readonly queueMax: number;

  constructor(queueMax: number) {
    this.queueMax = queueMax;
  }

  hasRoom(): boolean {
    return this.queue.length + this.deferred.length < this.queueMax;
  }

  add(from: NodeId, context: Uint8Array, index: number, self: NodeId): void {
    this.queue.push({ seq: ++this.seq, from, context, index, acks: new Set([self]) });
  }

  deferUntilCommitted(from: NodeId, context: Uint8Array): void {
    this.deferred.push({ from, context });
  }

  takeDeferred(): { from: NodeId; context: Uint8Array }[] {
    const out = this.deferred;
    this.deferred = [];
    return out;
  }

  /**
   * Whether a heartbeat round should go out now for reads that arrived since the last one. One
   * round is in flight at a time: reads arriving meanwhile share the next, so a read load costs
   * rounds per round trip, not per Ready. A lost round is covered by the periodic heartbeat.
   */
  needsBroadcast(): boolean {
    return this.seq > this.broadcastSeq && !this.roundInFlight;
  }

  /** The newest read a heartbeat sent now would confirm; 0 when none waits. */
  lastSeq(): number {
    return this.queue.length > 0 ? this.seq : 0;
  }

  markBroadcast(): void {
    this.broadcastSeq = this.seq;
    this.roundInFlight = this.queue.length > 0;
  }

  /**
   * Records that `from` answered the heartbeat of round `seq`; returns the reads now confirmed by
   * `quorum` nodes, in order (a confirmed read confirms every earlier one too).
   */
  ack(from: NodeId, seq: number, quorum: number): PendingRead[] {
    let confirmed = -1;
    for (let i = 0; i < this.queue.length && this.queue[i].seq <= seq; i++) {
      const r = this.queue[i];
      r.acks.add(from);
      if (r.acks.size >= quorum) confirmed = i;
    }
    if (confirmed < 0) return [];
    const released = this.queue.splice(0, confirmed + 1);
    if (released[released.length - 1].seq >= this.broadcastSeq) this.roundInFlight = false;
    return released;
  }

  reset(): void {
    this.queue = [];
    this.deferred = [];
    this.broadcastSeq = this.seq;
    this.roundInFlight = false;
  }
}

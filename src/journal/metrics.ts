// What a journal reports of its work, for /metrics: proposals, the batches it makes durable and how
// long that took, leader changes, checkpoints, and the Raft traffic with each peer. The master
// passes one that feeds prom-client (src/master/metrics.ts); the simulator and tests pass none.
// Calls come from the journal's edges (where the WAL syncs, where entries are proposed), never
// from the pure Raft core.

export interface JournalMetrics {
  /** An entry was proposed on this leader. */
  proposed(): void;
  /**
   * A batch was made durable: written and fsynced to the WAL (Raft) or appended to ZooKeeper;
   * `entries` may be 0 (a Raft vote or term written alone).
   */
  persisted(entries: number, seconds: number): void;
  /** This master learned of a new leader (itself included). */
  leaderChanged(): void;
  /** A checkpoint of the state machine was written: how long it took and its size. */
  checkpointed(seconds: number, bytes: number): void;
  /** A snapshot from another master (Raft's leader, a ZooKeeper peer's checkpoint) replaced the state here: its size. */
  snapshotInstalled(bytes: number): void;
  /** Raft messages sent to a peer master in one call, and their size in bytes (estimated from the payloads). */
  sent(peer: number, messages: number, bytes: number): void;
  /** Raft messages received from a peer master in one call. */
  received(peer: number, messages: number): void;
}

/** Counts nothing. */
export const noJournalMetrics: JournalMetrics = {
  proposed: () => undefined,
  persisted: () => undefined,
  leaderChanged: () => undefined,
  checkpointed: () => undefined,
  snapshotInstalled: () => undefined,
  sent: () => undefined,
  received: () => undefined,
};

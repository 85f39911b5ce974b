// The data types of the Raft core: log entries, persistent state, messages and the Ready batch.
// Everything here is plain data so that a driver can persist and send it however it likes.

export type NodeId = number;

export const EntryType = {
  Normal: 0,
  ConfChange: 1,
} as const;
export type EntryType = (typeof EntryType)[keyof typeof EntryType];

export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  data: Uint8Array;
}

/** State that must be on disk before any message that depends on it is sent. */
export interface HardState {
  term: number;
  vote: NodeId; // 0 = none
  commit: number;
}

/** Cluster membership: voters decide, learners only receive the log. */
export interface ConfState {
  voters: NodeId[];
  learners: NodeId[];
}

export interface SnapshotMeta {
  index: number;
  term: number;
  conf: ConfState;
}

/**
 * A snapshot's bytes, read in bounded pieces: in memory (see snapshot-data.ts) or in a file the
 * driver keeps open, so a large state is never one giant buffer.
 */
export interface SnapshotData {
  readonly byteLength: number;
  /** `length` bytes from `offset`; the range must lie within `byteLength`. */
  read(offset: number, length: number): Uint8Array;
}

export interface Snapshot {
  meta: SnapshotMeta;
  data: SnapshotData;
}

/**
 * Where a follower puts the chunks of a snapshot arriving from the leader, as they arrive: the
 * driver writes them to a temporary file, so memory stays bounded whatever the snapshot's size.
 * Calls are synchronous (the core makes them while it steps a message); a call that throws makes
 * the core drop that snapshot and refuse it, so the leader backs off and sends it again later.
 */
export interface SnapshotSink {
  begin(meta: SnapshotMeta, totalBytes: number): IncomingSnapshotData;
}

export interface IncomingSnapshotData {
  /** Appends the next chunk. */
  write(chunk: Uint8Array): void;
  /** Every byte arrived: the snapshot's data, read in pieces from wherever it was written. */
  complete(): SnapshotData;
  /** Abandoned (a newer snapshot, a gap, a failure): what was written goes. */
  abort(): void;
}

export const ConfChangeType = {
  AddLearner: 0,
  AddVoter: 1, // adds a new voter or promotes a learner
  Remove: 2,
} as const;
export type ConfChangeType = (typeof ConfChangeType)[keyof typeof ConfChangeType];

export interface ConfChange {
  type: ConfChangeType;
  node: NodeId;
}

export const MessageType = {
  Vote: 'vote',
  VoteResp: 'vote-resp',
  PreVote: 'pre-vote',
  PreVoteResp: 'pre-vote-resp',
  App: 'app',
  AppResp: 'app-resp',
  Heartbeat: 'heartbeat',
  HeartbeatResp: 'heartbeat-resp',
  Snap: 'snap',
  SnapResp: 'snap-resp',
  ReadIndex: 'read-index',
  ReadIndexResp: 'read-index-resp',
  TimeoutNow: 'timeout-now',
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

/**
 * One message between nodes. A single flat shape keeps encoding trivial; each type uses the
 * fields listed beside it.
 */
export interface Message {
  type: MessageType;
  from: NodeId;
  to: NodeId;
  term: number;
  /** App: index of the entry before `entries`; AppResp: last matching index (or hint on reject); Vote: last log index. */
  index?: number;
  /** App: term of entry at `index`; Vote: last log term; AppResp reject: term of hint entry. */
  logTerm?: number;
  entries?: Entry[];
  commit?: number;
  reject?: boolean;
  /** AppResp reject: follower's hint of where to retry. */
  rejectHint?: number;
  /** ReadIndex/ReadIndexResp: the caller's read context, echoed back. */
  context?: Uint8Array;
  /** Heartbeat/HeartbeatResp: the newest ReadIndex round this heartbeat confirms. */
  readSeq?: number;
  /** Heartbeat/HeartbeatResp: the leader's tick when it sent the heartbeat, echoed for its lease. */
  hbTick?: number;
  /** Snap: the snapshot's metadata, the byte offset of this chunk, its bytes, and whether it is the last. */
  snapshot?: SnapshotMeta;
  snapOffset?: number;
  snapData?: Uint8Array;
  snapDone?: boolean;
  snapTotalBytes?: number;
  /** Vote: a leadership transfer, which bypasses the leader lease of the voters. */
  force?: boolean;
}

/** A linearizable read that may be served once the node has applied `index`. */
export interface ReadState {
  index: number;
  context: Uint8Array;
}

export const Role = {
  Follower: 'follower',
  PreCandidate: 'pre-candidate',
  Candidate: 'candidate',
  Leader: 'leader',
} as const;
export type Role = (typeof Role)[keyof typeof Role];

export interface SoftState {
  leader: NodeId; // 0 = unknown
  role: Role;
}

/**
 * What the driver must do, in order: persist `hardState`, `entries` and `snapshot` (one fsync),
 * then send `messages` (or before persisting, when `sendBeforePersist`), apply `snapshot` then
 * `committed` to the state machine, serve `readStates` once applied, and call `advance()`.
 */
export interface Ready {
  softState?: SoftState;
  hardState?: HardState;
  /** Entries to append to stable storage; an entry replaces any stored entry at the same index and all after it. */
  entries: Entry[];
  /** A snapshot received from the leader, to persist and restore before applying `committed`. */
  snapshot?: Snapshot;
  /** Committed entries to apply, in order. */
  committed: Entry[];
  messages: Message[];
  readStates: ReadState[];
  /** Whether persisting this batch needs an fsync (entries, a snapshot, or a new term or vote). */
  mustSync: boolean;
  /**
   * The messages may go out before the batch is persisted: a leader whose term and vote are
   * already durable replicates in parallel with its own disk write (Raft thesis §10.2.1); it
   * counts itself toward a commit only after `advance()`.
   */
  sendBeforePersist: boolean;
}

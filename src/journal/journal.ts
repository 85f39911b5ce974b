// The journal every metadata change goes through, whatever its backend (embedded Raft or
// ZooKeeper): propose an entry, get the state machine's result once it is committed and applied.

export interface NodeInfo {
  id: number;
  address: string;
}

export interface MemberStatus extends NodeInfo {
  role: 'voter' | 'learner';
  /** Known on the leader only: the member's last replicated index and how far it trails. */
  matchIndex?: number;
  lagEntries?: number;
}

export interface JournalStatus {
  backend: 'raft' | 'zookeeper';
  id: number;
  role: 'leader' | 'follower' | 'candidate' | 'pre-candidate' | 'learner';
  leader: NodeInfo | undefined;
  term: number;
  commitIndex: number;
  appliedIndex: number;
  firstIndex: number;
  lastIndex: number;
  snapshotIndex: number;
  members: MemberStatus[];
  /** Ids removed from the cluster as of the applied index: never added back, so a new master needs another. */
  removedIds: number[];
  /** The ZooKeeper journal's connection: the ensemble, the cluster's root, the session's state and id. */
  zookeeper?: { ensemble: string; root: string; session: string; sessionId: string | undefined };
}

/** The replicated state machine. `apply` must be deterministic: no clock, randomness or I/O. */
export interface StateMachine {
  apply(index: number, entry: Uint8Array): unknown;
  snapshot(): Iterable<Uint8Array>;
  restore(chunks: Iterable<Uint8Array>): void;
  /**
   * As restore(), a chunk at a time, for a journal that must stay responsive meanwhile: the state
   * is replaced only by finish(), and an abandoned restorer changes nothing.
   */
  restorer?(): Restorer;
}

export interface Restorer {
  add(chunk: Uint8Array): void;
  finish(): void;
}

export interface ProposeOptions {
  /**
   * Taken while a master's disk is below its reserve, where other writes are refused: removals, so
   * that a full cluster can still be emptied, and the cluster's own housekeeping (a worker coming
   * back, chains changing, garbage collected), whose entries are few and small, so that it can.
   * Not once a write failed for want of any space.
   */
  onReserve?: boolean;
}

export interface Journal {
  start(sm: StateMachine): Promise<void>;
  /** Resolves with the apply result once committed and applied here; leader only. */
  propose(entry: Uint8Array, opts?: ProposeOptions): Promise<unknown>;
  /** After it resolves, a local read is linearizable (ReadIndex). */
  readBarrier(): Promise<void>;
  isLeader(): boolean;
  leader(): NodeInfo | undefined;
  status(): JournalStatus;
  checkpoint(): Promise<number>;
  addMember(id: number, address: string): Promise<void>;
  removeMember(id: number): Promise<void>;
  transferLeader(id: number): Promise<void>;
  stop(): Promise<void>;
}

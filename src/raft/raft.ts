// The Raft consensus core: a deterministic state machine in the shape of etcd-raft. Messages and
// ticks go in through `step` and `tick`; `ready` hands out what to persist, send and apply. It does
// no I/O and reads no clock; randomness comes from the caller's seeded `rand`.

import { CairnError, ErrorCode, assert } from '../errors.ts';
import { decodeConfChange, encodeConfChange } from './confchange.ts';
import { nextConf, validateConfChange } from './membership.ts';
import { RaftLog } from './log.ts';
import { Progress, ProgressState } from './progress.ts';
import { VoteResult, committedIndex, tallyVotes } from './quorum.ts';
import { ReadOnly } from './read-only.ts';
import { memorySnapshotSink } from './snapshot-data.ts';
import {
  ConfChangeType,
  EntryType,
  MessageType,
  Role,
  type ConfChange,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type NodeId,
  type ReadState,
  type Ready,
  type Snapshot,
  type IncomingSnapshotData,
  type SnapshotData,
  type SnapshotSink,
  type SnapshotMeta,
  type SoftState,
} from './types.ts';

/** Rules that tests can switch off one at a time to prove the checkers catch them. */
export const RaftBugs = ['commit-old-term', 'vote-twice', 'stale-read', 'lease-ignores-drift', 'read-quorum-short', 'install-old-snapshot'] as const;
export type RaftBug = (typeof RaftBugs)[number];

export interface RaftConfig {
  id: NodeId;
  /** The founding voters of a new cluster; empty for a node that joins an existing one. */
  voters: NodeId[];
  /** Opaque context recorded with each founder's bootstrap entry (its address), the same on every founder. */
  founderContext?: (id: NodeId) => Uint8Array;
  /** Ticks without a leader before a node campaigns; randomized in [electionTicks, 2*electionTicks). */
  electionTicks?: number;
  heartbeatTicks?: number;
  /** Seeded randomness: an integer in [0, n). */
  rand: (n: number) => number;
  preVote?: boolean;
  checkQuorum?: boolean;
  /** Serve reads on the leader's lease instead of a heartbeat round; needs checkQuorum and bounded clock drift. */
  leaseRead?: boolean;
  /**
   * With leaseRead: the driver's check that the lease also holds in real time, since ticks stop
   * while the process stalls. Asked whether less than `windowTicks` ticks of real time passed since
   * the tick `ticksAgo` leader ticks back.
   */
  leaseHolds?: (ticksAgo: number, windowTicks: number) => boolean;
  /**
   * With leaseRead: how far any node's clock rate may stray from true time, as a fraction (0.04:
   * within 4%). The lease is shortened so that it ends, on the slowest clock, before a follower
   * with the fastest clock may vote for someone else.
   */
  clockDriftMax?: number;
  /**
   * Ticks after it starts during which a node neither votes nor campaigns, except in a leadership
   * transfer: it may have acknowledged a leader's heartbeat just before it went down, and that
   * leader's lease counts on it voting for no one else for an election timeout. Defaults to
   * electionTicks; only tests that begin with a cluster already running set it lower.
   */
  voteHoldTicks?: number;
  entryBytesMax?: number;
  /** Bytes of entries in one append message. */
  appendBytesMax?: number;
  inflightMsgsMax?: number;
  inflightBytesMax?: number;
  /** Proposed but uncommitted bytes a leader accepts before it pushes back. */
  uncommittedBytesMax?: number;
  snapshotChunkBytes?: number;
  snapshotBytesMax?: number;
  /** Where incoming snapshots are written as their chunks arrive; in memory by default. */
  snapshotSink?: SnapshotSink;
  /** Bytes of committed entries handed out in one Ready. */
  applyBytesMax?: number;
  readQueueMax?: number;
  bugs?: ReadonlySet<RaftBug>;
}

export interface RestoredState {
  hardState: HardState;
  snapshot?: Snapshot;
  entries: Entry[];
}

export interface ProgressStatus {
  match: number;
  next: number;
  state: ProgressState;
  learner: boolean;
  inflight: number;
}

export interface RaftStatus {
  id: NodeId;
  term: number;
  vote: NodeId;
  role: Role;
  leader: NodeId;
  commit: number;
  applied: number;
  firstIndex: number;
  lastIndex: number;
  conf: ConfState;
  transferee: NodeId;
  progress: Map<NodeId, ProgressStatus>;
}

const defaults = {
  electionTicks: 10,
  heartbeatTicks: 1,
  preVote: true,
  checkQuorum: true,
  leaseRead: false,
  clockDriftMax: 0.04,
  entryBytesMax: 1 << 20,
  appendBytesMax: 1 << 20,
  inflightMsgsMax: 256,
  inflightBytesMax: 32 << 20,
  uncommittedBytesMax: 64 << 20,
  snapshotChunkBytes: 1 << 20,
  snapshotBytesMax: 1 << 30,
  applyBytesMax: 64 << 20,
  readQueueMax: 4096,
};
type Limits = typeof defaults;

type CampaignKind = 'pre-vote' | 'vote' | 'transfer';

interface IncomingSnapshot {
  index: number;
  term: number;
  totalBytes: number;
  data: IncomingSnapshotData;
  receivedBytes: number;
}

export class Raft {
  readonly id: NodeId;
  private readonly cfg: Limits;
  private readonly rand: (n: number) => number;
  private readonly leaseHolds: RaftConfig['leaseHolds'];
  private readonly snapshotSink: SnapshotSink;
  private readonly bugs: ReadonlySet<RaftBug>;
  private readonly voteHoldTicks: number;

  term = 0;
  vote: NodeId = 0;
  role: Role = Role.Follower;
  leader: NodeId = 0;
  readonly log: RaftLog;

  private voters = new Set<NodeId>();
  private learners = new Set<NodeId>();
  /**
   * The membership after each conf change in the log, committed or not, above the one in force at
   * the compaction point. A node always uses the newest (Raft thesis §4.1), so a restart with a
   * stale commit index cannot bring back a configuration the cluster has left.
   */
  private confHistory: { index: number; conf: ConfState }[] = [];
  /** A leader proposes no conf change until the one at this index is applied. */
  private pendingConfIndex = 0;

  private progress = new Map<NodeId, Progress>();
  private votes = new Map<NodeId, boolean>();
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  /** Ticks since this node started, counted up to voteHoldTicks. */
  private ticksSinceStart = 0;
  private transferee: NodeId = 0;
  private uncommittedBytes = 0;
  private needAppendFlush = false;
  /** Ticks this node has led for, the clock of its lease. */
  private tickCount = 0;
  private leaseBlockedUntilTick = 0;
  /** The commit index moved: the next append flush tells every follower, even with no entries. */
  private commitAnnounce = false;
  private readonly readOnly: ReadOnly;
  private incomingSnapshot: IncomingSnapshot | undefined;

  private msgs: Message[] = [];
  private readStates: ReadState[] = [];
  private prevHardState: HardState;
  private prevSoftState: SoftState;
  private inFlightReady: { lastIndex: number; lastTerm: number; applied: number; snapshot: boolean; voteChanged: boolean } | undefined;

  constructor(config: RaftConfig, restored?: RestoredState) {
    this.id = config.id;
    assert(this.id > 0, 'node id must be positive');
    this.cfg = { ...defaults };
    for (const k of Object.keys(defaults) as (keyof Limits)[]) {
      const v = config[k];
      if (v !== undefined) (this.cfg as Record<keyof Limits, unknown>)[k] = v;
    }
    assert(this.cfg.heartbeatTicks > 0 && this.cfg.electionTicks > this.cfg.heartbeatTicks, 'electionTicks must exceed heartbeatTicks');
    assert(!this.cfg.leaseRead || this.cfg.checkQuorum, 'leaseRead needs checkQuorum');
    assert(this.cfg.clockDriftMax >= 0 && this.cfg.clockDriftMax < 1, `clockDriftMax ${this.cfg.clockDriftMax} is not a fraction in [0, 1)`);
    this.rand = config.rand;
    this.leaseHolds = config.leaseHolds;
    this.snapshotSink = config.snapshotSink ?? memorySnapshotSink;
    this.bugs = config.bugs ?? new Set();
    this.voteHoldTicks = config.voteHoldTicks ?? this.cfg.electionTicks;
    assert(this.voteHoldTicks >= 0, 'voteHoldTicks must not be negative');
    this.readOnly = new ReadOnly(this.cfg.readQueueMax);

    const hs = restored?.hardState ?? { term: 0, vote: 0, commit: 0 };
    this.log = new RaftLog(restored?.snapshot, restored?.entries ?? [], hs.commit);
    this.term = hs.term;
    this.vote = hs.vote;
    this.confHistory = [{ index: this.log.offsetIndex, conf: restored?.snapshot?.meta.conf ?? { voters: [], learners: [] } }];
    // Term 0 means no hard state was ever durable (at most a torn first write), so nothing was
    // promised to anyone yet and bootstrapping again is safe.
    if (this.term === 0 && this.log.snapshot === undefined && config.voters.length > 0) this.bootstrap(config.voters, config.founderContext);
    this.rebuildConfFrom(this.log.offsetIndex + 1);
    this.becomeFollower(this.term, 0);
    this.prevHardState = this.hardState();
    this.prevSoftState = this.softState();
  }

  /**
   * Starts a new cluster: the first entries add each initial voter, committed from the start. Every
   * founding member writes the same entries, and a node that joins later learns the membership
   * from them (or from a snapshot), never from its own configuration.
   */
  private bootstrap(voters: NodeId[], context?: (id: NodeId) => Uint8Array): void {
    const entries = voters.map((node, i) => ({
      term: 1,
      index: i + 1,
      type: EntryType.ConfChange,
      data: encodeConfChange({ type: ConfChangeType.AddVoter, node }, context?.(node)),
    }));
    this.log.append(entries);
    this.log.commitTo(entries.length);
    this.term = 1;
  }

  // ---- public API ----------------------------------------------------------------------------

  tick(): void {
    if (this.ticksSinceStart < this.voteHoldTicks) this.ticksSinceStart++;
    if (this.role === Role.Leader) this.tickLeader();
    else this.tickElection();
  }

  /** Starts an election now (as if the election timeout fired); a node still holding its votes does not. */
  campaign(): void {
    if (!this.promotable() || this.role === Role.Leader || this.holdsVotes()) return;
    this.startCampaign(this.cfg.preVote ? 'pre-vote' : 'vote');
  }

  /** Appends `data` as a new entry; returns where it will commit if it commits. */
  propose(data: Uint8Array): { index: number; term: number } {
    this.checkCanPropose(data.length);
    const e = this.appendEntry(EntryType.Normal, data);
    return { index: e.index, term: e.term };
  }

  /** Proposes one membership change; at most one is pending at a time. */
  proposeConfChange(cc: ConfChange, context: Uint8Array = new Uint8Array(0)): { index: number; term: number } {
    const data = encodeConfChange(cc, context);
    this.checkCanPropose(data.length);
    if (this.pendingConfIndex > this.log.applied) {
      throw new CairnError(ErrorCode.ConfChangePending, `a membership change at index ${this.pendingConfIndex} is still pending`);
    }
    validateConfChange(this.confState(), cc);
    const e = this.appendEntry(EntryType.ConfChange, data);
    this.pendingConfIndex = e.index;
    return { index: e.index, term: e.term };
  }

  /** Asks for a linearizable read; a ReadState with `context` comes out of a later Ready. */
  readIndex(context: Uint8Array): void {
    if (this.bugs.has('stale-read')) {
      this.readStates.push({ index: this.log.committed, context });
      return;
    }
    if (this.role === Role.Leader) {
      this.leaderReadIndex(this.id, context);
      return;
    }
    if (this.leader === 0) throw this.notLeader();
    this.send({ type: MessageType.ReadIndex, to: this.leader, term: 0, context });
  }

  /** Hands leadership to `to` once its log is caught up (TimeoutNow). */
  transferLeader(to: NodeId): void {
    if (this.role !== Role.Leader) throw this.notLeader();
    if (to === this.id) return;
    if (!this.voters.has(to)) throw new CairnError(ErrorCode.InvalidArgument, `node ${to} is not a voter`);
    if (this.transferee === to) return;
    this.transferee = to;
    this.electionElapsed = 0;
    const pr = this.progress.get(to)!;
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(to);
    else this.sendAppend(to);
  }

  step(m: Message): void {
    if (!this.stepTerm(m)) return;
    switch (m.type) {
      case MessageType.PreVote:
      case MessageType.Vote:
        this.handleVoteRequest(m);
        return;
    }
    if (this.role === Role.Leader) this.stepLeader(m);
    else if (this.role === Role.Follower) this.stepFollower(m);
    else this.stepCandidate(m);
  }

  /**
   * Records a snapshot the state machine took at `index` (<= applied) and drops log entries up to
   * `index - keepEntries`, so slightly lagging followers still catch up from the log.
   */
  compact(index: number, data: SnapshotData, keepEntries = 0): void {
    if (this.log.snapshot !== undefined && index <= this.log.snapshot.meta.index) return;
    this.log.snapshot = { meta: this.snapshotMeta(index), data };
    this.log.compactTo(Math.max(this.log.offsetIndex, index - keepEntries));
    this.confHistory = this.confHistory.filter((_h, i) => i === this.confHistory.length - 1 || this.confHistory[i + 1].index > this.log.offsetIndex);
  }

  /** What a snapshot of the state machine at `index` (<= applied, not compacted) records. */
  snapshotMeta(index: number): SnapshotMeta {
    assert(index <= this.log.applied, `snapshot at ${index} beyond applied ${this.log.applied}`);
    const term = this.log.term(index);
    assert(term !== undefined, `snapshot at compacted index ${index}`);
    return { index, term, conf: this.confAt(index) };
  }

  /**
   * Swaps the bytes behind the current snapshot for an identical copy (the durable file, once a
   * received snapshot is written), so the chunks it arrived in can be freed. False if it moved on.
   */
  replaceSnapshotData(index: number, data: SnapshotData): boolean {
    const snap = this.log.snapshot;
    if (snap === undefined || snap.meta.index !== index || snap.data.byteLength !== data.byteLength) return false;
    this.log.snapshot = { meta: snap.meta, data };
    return true;
  }

  hasReady(): boolean {
    if (this.inFlightReady !== undefined) return false;
    return (
      this.msgs.length > 0 ||
      this.needAppendFlush ||
      this.readOnly.needsBroadcast() ||
      this.readStates.length > 0 ||
      this.log.hasUnstable() ||
      this.log.pendingSnapshot !== undefined ||
      this.log.committed > this.log.applied ||
      this.term !== this.prevHardState.term ||
      this.vote !== this.prevHardState.vote ||
      this.log.committed !== this.prevHardState.commit ||
      this.leader !== this.prevSoftState.leader ||
      this.role !== this.prevSoftState.role
    );
  }

  ready(): Ready {
    assert(this.inFlightReady === undefined, 'ready() called again before advance()');
    this.flushLeaderSends();
    const entries = this.log.unstableEntries();
    const snapshot = this.log.pendingSnapshot;
    const committed = this.log.nextCommitted(this.cfg.applyBytesMax);
    const hs = this.hardState();
    const ss = this.softState();
    const rd: Ready = {
      entries,
      committed,
      messages: this.msgs,
      readStates: this.readStates,
      mustSync: true,
      sendBeforePersist: false,
    };
    if (!sameHardState(hs, this.prevHardState)) rd.hardState = hs;
    if (!sameSoftState(ss, this.prevSoftState)) rd.softState = ss;
    if (snapshot !== undefined) rd.snapshot = snapshot;
    // A moved commit index alone need not be synced: it can be learned again from the leader.
    const voteChanged = hs.term !== this.prevHardState.term || hs.vote !== this.prevHardState.vote;
    rd.mustSync = voteChanged || entries.length > 0 || snapshot !== undefined;
    rd.sendBeforePersist = this.role === Role.Leader && !voteChanged && snapshot === undefined;
    this.msgs = [];
    this.readStates = [];
    const last = entries.length > 0 ? entries[entries.length - 1] : undefined;
    this.inFlightReady = {
      lastIndex: last?.index ?? 0,
      lastTerm: last?.term ?? 0,
      applied: committed.length > 0 ? committed[committed.length - 1].index : 0,
      snapshot: snapshot !== undefined,
      voteChanged,
    };
    this.prevHardState = hs;
    this.prevSoftState = ss;
    return rd;
  }

  /**
   * What a read barrier waits for, taken out of the next Ready to be handled at once, even while a
   * Ready's write is in flight: heartbeats (a leader's, with a round for the reads since the last
   * one), their answers (a follower's), and the reads they confirmed. They say only "term T,
   * leader L", so a read need not wait for anyone's fsync. Nothing is taken while this node's term
   * or vote is not yet durable (changed since the last Ready, or by the Ready being written).
   */
  takeReadPath(): { messages: Message[]; readStates: ReadState[] } {
    const none = { messages: [], readStates: [] };
    if (this.term !== this.prevHardState.term || this.vote !== this.prevHardState.vote || this.inFlightReady?.voteChanged === true) return none;
    const kind = this.role === Role.Leader ? MessageType.Heartbeat : MessageType.HeartbeatResp;
    if (this.role === Role.Leader && this.readOnly.needsBroadcast()) this.bcastHeartbeat(); // reads since the last round
    const readStates = this.readStates;
    this.readStates = [];
    if (!this.msgs.some((m) => m.type === kind)) return { messages: [], readStates };
    const messages = this.msgs.filter((m) => m.type === kind);
    this.msgs = this.msgs.filter((m) => m.type !== kind);
    return { messages, readStates };
  }

  /** The driver has persisted, sent and applied the last Ready. */
  advance(): void {
    const done = this.inFlightReady;
    assert(done !== undefined, 'advance() without ready()');
    this.inFlightReady = undefined;
    if (done.snapshot) {
      this.log.pendingSnapshot = undefined;
      this.log.applied = Math.max(this.log.applied, this.log.offsetIndex);
    }
    if (done.lastIndex > 0) this.log.stableTo(done.lastIndex, done.lastTerm);
    if (done.applied > 0) this.log.appliedTo(done.applied);
    if (this.role === Role.Leader) {
      const self = this.progress.get(this.id);
      if (self !== undefined && self.maybeUpdate(this.log.stabled)) this.maybeCommit();
    }
  }

  status(): RaftStatus {
    const progress = new Map<NodeId, ProgressStatus>();
    if (this.role === Role.Leader) {
      for (const [id, pr] of this.progress) {
        progress.set(id, { match: pr.match, next: pr.next, state: pr.state, learner: pr.isLearner, inflight: pr.inflights.count() });
      }
    }
    return {
      id: this.id,
      term: this.term,
      vote: this.vote,
      role: this.role,
      leader: this.leader,
      commit: this.log.committed,
      applied: this.log.applied,
      firstIndex: this.log.firstIndex(),
      lastIndex: this.log.lastIndex(),
      conf: this.confState(),
      transferee: this.transferee,
      progress,
    };
  }

  /** Whether a node is a voter or a learner of the configuration this node holds. */
  isMember(id: NodeId): boolean {
    return this.voters.has(id) || this.learners.has(id);
  }

  confState(): ConfState {
    return { voters: [...this.voters].sort((a, b) => a - b), learners: [...this.learners].sort((a, b) => a - b) };
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  softState(): SoftState {
    return { leader: this.leader, role: this.role };
  }

  // ---- roles ---------------------------------------------------------------------------------

  private becomeFollower(term: number, leader: NodeId): void {
    if (this.role === Role.Leader) {
      // Queued heartbeats and appends of a deposed leader would only extend followers' lease of it.
      this.msgs = this.msgs.filter((m) => m.type !== MessageType.Heartbeat && m.type !== MessageType.App);
    }
    this.reset(term);
    this.role = Role.Follower;
    this.leader = leader;
  }

  private becomePreCandidate(): void {
    assert(this.role !== Role.Leader, 'a leader cannot become a pre-candidate');
    // A pre-vote changes neither the term nor the vote, so a partitioned node cannot disrupt the cluster.
    this.votes = new Map();
    this.role = Role.PreCandidate;
    this.leader = 0;
  }

  private becomeCandidate(): void {
    assert(this.role !== Role.Leader, 'a leader cannot become a candidate');
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = Role.Candidate;
  }

  private becomeLeader(): void {
    assert(this.role === Role.Candidate, 'only a candidate becomes leader');
    this.reset(this.term);
    this.role = Role.Leader;
    this.leader = this.id;
    const self = this.progress.get(this.id);
    if (self !== undefined) {
      self.becomeReplicate();
      self.maybeUpdate(this.log.stabled);
    }
    // An empty entry of the new term commits everything before it (Raft §5.4.2) and lets reads start.
    this.appendEntry(EntryType.Normal, new Uint8Array(0));
    this.pendingConfIndex = this.log.lastIndex();
  }

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = 0;
    }
    this.leader = 0;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout = this.cfg.electionTicks + this.rand(this.cfg.electionTicks);
    this.votes = new Map();
    this.transferee = 0;
    this.uncommittedBytes = 0;
    this.needAppendFlush = false;
    this.readOnly.reset();
    this.progress = new Map();
    for (const id of [...this.voters, ...this.learners]) this.addProgress(id);
  }

  private addProgress(id: NodeId): void {
    const pr = new Progress(this.log.lastIndex() + 1, this.learners.has(id), this.cfg.inflightMsgsMax, this.cfg.inflightBytesMax);
    this.progress.set(id, pr);
  }

  private promotable(): boolean {
    return this.voters.has(this.id) && this.log.pendingSnapshot === undefined;
  }

  // ---- ticks ---------------------------------------------------------------------------------

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.campaign();
    }
  }

  private tickLeader(): void {
    this.tickCount++;
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.cfg.electionTicks) {
      this.electionElapsed = 0;
      if (this.cfg.checkQuorum && !this.quorumActive()) {
        this.becomeFollower(this.term, 0);
        return;
      }
      this.transferee = 0; // a transfer that did not finish within an election timeout is abandoned
    }
    if (this.heartbeatElapsed >= this.cfg.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.bcastHeartbeat();
    }
    this.tickSnapshotTransfers();
  }

  /** Check-quorum: a leader that has not heard from a majority in an election timeout steps down. */
  private quorumActive(): boolean {
    let active = 0;
    for (const id of this.voters) {
      const pr = this.progress.get(id)!;
      if (id === this.id || pr.recentActive) active++;
      pr.recentActive = false;
    }
    return active >= Math.floor(this.voters.size / 2) + 1;
  }

  private tickSnapshotTransfers(): void {
    for (const [id, pr] of this.progress) {
      if (pr.state !== ProgressState.Snapshot || pr.snapshot === undefined) continue;
      if (++pr.snapshot.idleTicks >= this.cfg.electionTicks) {
        pr.snapshot.idleTicks = 0;
        this.sendSnapshotChunk(id, pr);
      }
    }
  }

  // ---- elections -----------------------------------------------------------------------------

  private startCampaign(kind: CampaignKind): void {
    if (kind === 'pre-vote') this.becomePreCandidate();
    else this.becomeCandidate();
    const term = kind === 'pre-vote' ? this.term + 1 : this.term;
    this.votes.set(this.id, true);
    if (this.tallyAndMaybeWin(kind)) return;
    const type = kind === 'pre-vote' ? MessageType.PreVote : MessageType.Vote;
    for (const id of this.voters) {
      if (id === this.id) continue;
      const m: Message = { type, to: id, term, from: this.id, index: this.log.lastIndex(), logTerm: this.log.lastTerm() };
      if (kind === 'transfer') m.force = true;
      this.msgs.push(m);
    }
  }

  /** Returns true when the election is decided (won or lost). */
  private tallyAndMaybeWin(kind: CampaignKind): boolean {
    const result = tallyVotes([...this.voters], this.votes);
    if (result === VoteResult.Won) {
      if (kind === 'pre-vote') this.startCampaign('vote');
      else this.becomeLeader();
      return true;
    }
    if (result === VoteResult.Lost) {
      this.becomeFollower(this.term, 0);
      return true;
    }
    return false;
  }

  private handleVoteRequest(m: Message): void {
    const pre = m.type === MessageType.PreVote;
    const canVote =
      (!this.holdsVotes() || m.force === true) &&
      (this.bugs.has('vote-twice') ||
        this.vote === m.from ||
        (this.vote === 0 && this.leader === 0) ||
        (pre && m.term > this.term));
    const upToDate = this.log.isUpToDate(m.index ?? 0, m.logTerm ?? 0);
    const respType = pre ? MessageType.PreVoteResp : MessageType.VoteResp;
    if (canVote && upToDate) {
      // A granted pre-vote answers with the future term so the candidate counts it.
      this.send({ type: respType, to: m.from, term: m.term, reject: false });
      if (!pre) {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send({ type: respType, to: m.from, term: this.term, reject: true });
    }
  }

  /**
   * Handles the message's term against ours; returns false when the message is to be dropped.
   */
  private stepTerm(m: Message): boolean {
    if (m.term === 0) return true; // local or term-less (ReadIndex forwarding)
    if (m.term > this.term) {
      const isVote = m.type === MessageType.Vote || m.type === MessageType.PreVote;
      if (isVote && !m.force && this.inLease()) return false;
      // A vote this node holds back does not raise its term either (an answer at our older term
      // would not count); a held pre-vote goes on to be refused, which the pre-candidate counts.
      if (m.type === MessageType.Vote && !m.force && this.holdsVotes()) return false;
      if (m.type === MessageType.PreVote) return true;
      if (m.type === MessageType.PreVoteResp && !m.reject) return true;
      const fromLeader = m.type === MessageType.App || m.type === MessageType.Heartbeat || m.type === MessageType.Snap;
      this.becomeFollower(m.term, fromLeader ? m.from : 0);
      return true;
    }
    if (m.term < this.term) {
      if ((this.cfg.checkQuorum || this.cfg.preVote) && (m.type === MessageType.Heartbeat || m.type === MessageType.App)) {
        // Tell a stale leader of the newer term so that it steps down.
        this.send({ type: MessageType.AppResp, to: m.from, term: this.term });
      } else if (m.type === MessageType.PreVote) {
        this.send({ type: MessageType.PreVoteResp, to: m.from, term: this.term, reject: true });
      }
      return false;
    }
    return true;
  }

  /**
   * A node that just started refuses votes for an election timeout: before it went down it may have
   * acknowledged a leader whose lease still counts on it (see leaseValid).
   */
  private holdsVotes(): boolean {
    return this.ticksSinceStart < this.voteHoldTicks;
  }

  /** A node that heard from a leader within the election timeout refuses to help depose it. */
  private inLease(): boolean {
    return this.cfg.checkQuorum && this.leader !== 0 && this.electionElapsed < this.cfg.electionTicks;
  }

  private stepCandidate(m: Message): void {
    const myResp = this.role === Role.PreCandidate ? MessageType.PreVoteResp : MessageType.VoteResp;
    switch (m.type) {
      case MessageType.App:
      case MessageType.Heartbeat:
      case MessageType.Snap:
        this.becomeFollower(m.term, m.from);
        this.stepFollower(m);
        return;
      case myResp:
        this.votes.set(m.from, !m.reject);
        this.tallyAndMaybeWin(this.role === Role.PreCandidate ? 'pre-vote' : 'vote');
        return;
      case MessageType.TimeoutNow:
        return;
    }
  }

  // ---- follower ------------------------------------------------------------------------------

  private stepFollower(m: Message): void {
    switch (m.type) {
      case MessageType.App:
        this.electionElapsed = 0;
        this.leader = m.from;
        this.handleAppend(m);
        return;
      case MessageType.Heartbeat:
        this.electionElapsed = 0;
        this.leader = m.from;
        this.commitTo(Math.min(m.commit ?? 0, this.log.lastIndex()));
        this.send({ type: MessageType.HeartbeatResp, to: m.from, term: this.term, readSeq: m.readSeq, hbTick: m.hbTick });
        return;
      case MessageType.Snap:
        this.electionElapsed = 0;
        this.leader = m.from;
        this.handleSnapshotChunk(m);
        return;
      case MessageType.TimeoutNow:
        if (this.promotable()) this.startCampaign('transfer');
        return;
      case MessageType.ReadIndexResp:
        this.readStates.push({ index: m.index ?? 0, context: m.context ?? new Uint8Array(0) });
        return;
    }
  }

  private handleAppend(m: Message): void {
    const prevIndex = m.index ?? 0;
    if (prevIndex < this.log.committed) {
      this.send({ type: MessageType.AppResp, to: m.from, term: this.term, index: this.log.committed });
      return;
    }
    const entries = m.entries ?? [];
    const appended = this.log.maybeAppend(prevIndex, m.logTerm ?? 0, entries);
    if (appended !== undefined) {
      const lastNew = appended.lastNew;
      if (appended.conflict !== 0) this.confChangedFrom(appended.conflict, entries);
      this.commitTo(Math.min(m.commit ?? 0, lastNew));
      this.send({ type: MessageType.AppResp, to: m.from, term: this.term, index: lastNew });
      return;
    }
    const hint = this.log.findConflictByTerm(Math.min(prevIndex, this.log.lastIndex()), m.logTerm ?? 0);
    this.send({
      type: MessageType.AppResp,
      to: m.from,
      term: this.term,
      index: prevIndex,
      reject: true,
      rejectHint: hint.index,
      logTerm: hint.term,
    });
  }

  private handleSnapshotChunk(m: Message): void {
    const meta = m.snapshot!;
    if (meta.index <= this.log.committed && !this.bugs.has('install-old-snapshot')) {
      this.dropIncomingSnapshot();
      this.send({ type: MessageType.AppResp, to: m.from, term: this.term, index: this.log.committed });
      return;
    }
    const offset = m.snapOffset ?? 0;
    const total = m.snapTotalBytes ?? 0;
    if (total > this.cfg.snapshotBytesMax) {
      // Refused, not ignored: the leader backs off instead of resending the first chunk forever.
      this.send({ type: MessageType.SnapResp, to: m.from, term: this.term, index: meta.index, snapOffset: 0, reject: true });
      return;
    }
    let data: SnapshotData;
    try {
      const inc = this.receiveSnapshotChunk(m, meta, offset, total);
      if (inc === undefined) return;
      data = inc.data.complete();
    } catch {
      // The sink failed (a full disk, say): drop this snapshot and refuse it, so the leader backs off.
      this.dropIncomingSnapshot();
      this.send({ type: MessageType.SnapResp, to: m.from, term: this.term, index: meta.index, snapOffset: 0, reject: true });
      return;
    }
    this.restoreSnapshot({ meta, data });
    // Acknowledge the snapshot's index only: entries we hold beyond it are not vouched for here.
    this.send({ type: MessageType.AppResp, to: m.from, term: this.term, index: meta.index });
  }

  /** Takes one chunk; returns the snapshot once its last chunk is in, or undefined (answered already). */
  private receiveSnapshotChunk(m: Message, meta: SnapshotMeta, offset: number, total: number): IncomingSnapshot | undefined {
    if (offset === 0) {
      this.dropIncomingSnapshot();
      const data = this.snapshotSink.begin(meta, total);
      this.incomingSnapshot = { index: meta.index, term: meta.term, totalBytes: total, data, receivedBytes: 0 };
    }
    const inc = this.incomingSnapshot;
    if (inc === undefined || inc.index !== meta.index || inc.term !== meta.term || inc.receivedBytes !== offset) {
      const expected = inc !== undefined && inc.index === meta.index && inc.term === meta.term ? inc.receivedBytes : 0;
      this.send({ type: MessageType.SnapResp, to: m.from, term: this.term, index: meta.index, snapOffset: expected });
      return undefined;
    }
    const chunk = m.snapData ?? new Uint8Array(0);
    inc.data.write(chunk);
    inc.receivedBytes += chunk.length;
    if (!m.snapDone) {
      this.send({ type: MessageType.SnapResp, to: m.from, term: this.term, index: meta.index, snapOffset: inc.receivedBytes });
      return undefined;
    }
    this.incomingSnapshot = undefined;
    if (inc.receivedBytes !== inc.totalBytes) {
      inc.data.abort();
      this.send({ type: MessageType.SnapResp, to: m.from, term: this.term, index: meta.index, snapOffset: 0 });
      return undefined;
    }
    return inc;
  }

  private dropIncomingSnapshot(): void {
    this.incomingSnapshot?.data.abort();
    this.incomingSnapshot = undefined;
  }

  private restoreSnapshot(snap: Snapshot): void {
    if (this.log.matchTerm(snap.meta.index, snap.meta.term)) {
      // We hold the snapshot's last entry: only the commit index moves.
      this.commitTo(snap.meta.index);
      return;
    }
    this.log.restore(snap);
    this.confHistory = [{ index: snap.meta.index, conf: snap.meta.conf }];
    this.setConf(snap.meta.conf);
  }

  // ---- leader --------------------------------------------------------------------------------

  private stepLeader(m: Message): void {
    const pr = this.progress.get(m.from);
    switch (m.type) {
      case MessageType.ReadIndex:
        this.leaderReadIndex(m.from, m.context ?? new Uint8Array(0));
        return;
    }
    if (pr === undefined) return; // not a member (any more)
    switch (m.type) {
      case MessageType.AppResp:
        pr.recentActive = true;
        this.handleAppendResponse(m, pr);
        return;
      case MessageType.HeartbeatResp:
        pr.recentActive = true;
        pr.probeSent = false;
        if (m.hbTick !== undefined && m.hbTick > pr.heardAtTick) pr.heardAtTick = m.hbTick;
        // Appends in a full window may have been lost: free one so the next append goes out and a
        // rejection (a gap) brings the follower back to probing.
        if (pr.state === ProgressState.Replicate && pr.inflights.full()) pr.inflights.freeFirst();
        if (pr.match < this.log.lastIndex()) this.sendAppend(m.from);
        if (m.readSeq !== undefined && !pr.isLearner) this.ackRead(m.from, m.readSeq);
        return;
      case MessageType.SnapResp:
        pr.recentActive = true;
        this.handleSnapshotResponse(m, pr);
        return;
    }
  }

  private handleAppendResponse(m: Message, pr: Progress): void {
    const index = m.index ?? 0;
    if (m.reject) {
      let nextProbe = m.rejectHint ?? index;
      if ((m.logTerm ?? 0) > 0) nextProbe = this.log.findConflictByTerm(nextProbe, m.logTerm ?? 0).index;
      if (pr.maybeDecrTo(index, nextProbe)) {
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        this.sendAppend(m.from);
      }
      return;
    }
    if (m.index === undefined) return; // a term notice, handled by stepTerm
    const wasPaused = pr.isPaused();
    if (!pr.maybeUpdate(index)) return;
    if (pr.state === ProgressState.Probe) pr.becomeReplicate();
    else if (pr.state === ProgressState.Snapshot && pr.match >= this.log.offsetIndex) {
      pr.becomeProbe();
      pr.becomeReplicate();
    } else if (pr.state === ProgressState.Replicate) pr.inflights.freeLE(index);

    this.maybeCommit();
    if (wasPaused || pr.state === ProgressState.Replicate) this.needAppendFlush = true;
    if (m.from === this.transferee && pr.match === this.log.lastIndex()) {
      this.sendTimeoutNow(m.from);
    }
  }

  private sendTimeoutNow(to: NodeId): void {
    this.leaseBlockedUntilTick = this.tickCount + 2 * this.cfg.electionTicks;
    this.send({ type: MessageType.TimeoutNow, to, term: this.term });
  }

  private handleSnapshotResponse(m: Message, pr: Progress): void {
    const tr = pr.snapshot;
    if (pr.state !== ProgressState.Snapshot || tr === undefined || tr.index !== m.index) return;
    tr.offsetAcked = m.snapOffset ?? 0;
    tr.idleTicks = 0;
    if (m.reject) return; // the follower cannot take it now; the stall timer retries later
    this.sendSnapshotChunk(m.from, pr);
  }

  /**
   * Advances the commit index to what a majority holds, counting only entries of this term; the
   * followers hear of it in the next batch of appends.
   */
  private maybeCommit(): void {
    if (this.role !== Role.Leader) return;
    const mci = committedIndex(this.voters, (id) => this.progress.get(id)?.match ?? 0);
    if (mci <= this.log.committed) return;
    if (this.log.term(mci) !== this.term && !this.bugs.has('commit-old-term')) return;
    this.commitTo(mci);
    this.needAppendFlush = true;
    this.commitAnnounce = true;
  }

  private commitTo(index: number): void {
    const before = this.log.committed;
    if (index <= before) return;
    this.log.commitTo(index);
    if (this.role === Role.Leader) {
      for (let i = before + 1; i <= index; i++) this.uncommittedBytes -= this.log.entry(i)?.data.length ?? 0;
      if (this.uncommittedBytes < 0) this.uncommittedBytes = 0;
    }
    this.releaseCommittedReads();
    const lastConf = this.confHistory[this.confHistory.length - 1];
    if (this.role === Role.Leader && !this.voters.has(this.id) && index >= lastConf.index) {
      // A leader that removed itself leads until the removal commits (thesis §4.2.2), then steps down.
      this.becomeFollower(this.term, 0);
    }
  }

  private appendEntry(type: EntryType, data: Uint8Array): Entry {
    const e: Entry = { term: this.term, index: this.log.lastIndex() + 1, type, data };
    this.log.append([e]);
    this.uncommittedBytes += data.length;
    this.needAppendFlush = true;
    if (type === EntryType.ConfChange) this.confChangedFrom(e.index, [e]);
    return e;
  }

  private checkCanPropose(sizeBytes: number): void {
    if (this.role !== Role.Leader) throw this.notLeader();
    if (this.transferee !== 0) {
      throw new CairnError(ErrorCode.TransferInProgress, `leadership is moving to node ${this.transferee}; retry`);
    }
    if (sizeBytes > this.cfg.entryBytesMax) {
      throw new CairnError(ErrorCode.EntryTooLarge, `entry of ${sizeBytes} bytes exceeds entryBytesMax ${this.cfg.entryBytesMax}`);
    }
    if (this.uncommittedBytes + sizeBytes > this.cfg.uncommittedBytesMax) {
      throw new CairnError(ErrorCode.Busy, `${this.uncommittedBytes} uncommitted bytes pending; retry later`);
    }
  }

  private notLeader(): CairnError {
    return new CairnError(ErrorCode.NotLeader, `node ${this.id} is not the leader`, { leader: this.leader });
  }

  /** Sends appends and read heartbeats batched since the last Ready. */
  private flushLeaderSends(): void {
    if (this.role !== Role.Leader) {
      this.needAppendFlush = false; // a leader that just stepped down has nothing to flush
      this.commitAnnounce = false;
      return;
    }
    if (this.needAppendFlush) {
      const announce = this.commitAnnounce;
      this.needAppendFlush = false;
      this.commitAnnounce = false;
      for (const id of this.progress.keys()) if (id !== this.id) this.sendAppendsWhileRoom(id, announce);
    }
    if (this.readOnly.needsBroadcast()) this.bcastHeartbeat();
  }

  /**
   * Pipelines appends to a replicating follower until its window fills or the log is sent; with
   * `sendIfEmpty` at least one message goes out to carry the new commit index.
   */
  private sendAppendsWhileRoom(to: NodeId, sendIfEmpty: boolean): void {
    const pr = this.progress.get(to)!;
    for (let i = 0; i < this.cfg.inflightMsgsMax; i++) {
      if (!this.sendAppend(to, sendIfEmpty && i === 0)) return;
      if (pr.state !== ProgressState.Replicate || pr.next > this.log.lastIndex()) return;
    }
  }

  /** Sends one append (or starts a snapshot); returns whether a message went out. */
  private sendAppend(to: NodeId, sendIfEmpty = true): boolean {
    const pr = this.progress.get(to)!;
    if (pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    const entries = this.log.slice(pr.next, this.log.lastIndex(), this.cfg.appendBytesMax);
    if (prevTerm === undefined || entries === undefined) return this.startSnapshot(to, pr);
    if (entries.length === 0 && !sendIfEmpty) return false;
    this.send({ type: MessageType.App, to, term: this.term, index: prevIndex, logTerm: prevTerm, entries, commit: this.log.committed });
    if (entries.length > 0 && pr.state === ProgressState.Replicate) {
      const last = entries[entries.length - 1].index;
      pr.next = last + 1;
      pr.inflights.add(last, entries.reduce((n, e) => n + e.data.length, 0));
    } else if (pr.state === ProgressState.Probe) {
      pr.probeSent = true;
    }
    return true;
  }

  private startSnapshot(to: NodeId, pr: Progress): boolean {
    if (!pr.recentActive) return false; // do not stream a snapshot to a node that may be down
    const snap = this.log.snapshot;
    assert(snap !== undefined, 'log was compacted without a snapshot');
    pr.becomeSnapshot(snap.meta.index);
    this.sendSnapshotChunk(to, pr);
    return true;
  }

  private sendSnapshotChunk(to: NodeId, pr: Progress): void {
    const snap = this.log.snapshot!;
    const tr = pr.snapshot!;
    if (tr.index !== snap.meta.index) {
      pr.becomeSnapshot(snap.meta.index); // a newer snapshot replaced the one in transfer
    }
    const offset = pr.snapshot!.offsetAcked;
    const total = snap.data.byteLength;
    if (offset >= total && total > 0) return; // all sent: waiting for the install
    const end = Math.min(offset + this.cfg.snapshotChunkBytes, total);
    this.send({
      type: MessageType.Snap,
      to,
      term: this.term,
      snapshot: snap.meta,
      snapOffset: offset,
      snapData: snap.data.read(offset, end - offset),
      snapDone: end === total,
      snapTotalBytes: total,
    });
  }

  private bcastHeartbeat(): void {
    const readSeq = this.readOnly.lastSeq();
    this.readOnly.markBroadcast();
    for (const [id, pr] of this.progress) {
      if (id === this.id) continue;
      const m: Message = { type: MessageType.Heartbeat, from: this.id, to: id, term: this.term, commit: Math.min(pr.match, this.log.committed), hbTick: this.tickCount };
      if (readSeq > 0) m.readSeq = readSeq;
      this.msgs.push(m);
    }
  }

  // ---- reads ---------------------------------------------------------------------------------

  private leaderReadIndex(from: NodeId, context: Uint8Array): void {
    if (!this.readOnly.hasRoom()) return; // the caller times out and retries
    const committedInTerm = this.log.term(this.log.committed) === this.term;
    if (!committedInTerm) {
      this.readOnly.deferUntilCommitted(from, context);
      return;
    }
    const onlyVoter = this.voters.size === 1 && this.voters.has(this.id);
    if (onlyVoter || (this.cfg.leaseRead && this.leaseValid())) {
      this.answerRead(from, this.log.committed, context);
      return;
    }
    this.readOnly.add(from, context, this.log.committed, this.id);
  }

  /**
   * The leader lease: a majority answered a heartbeat sent at tick T, so none of them votes for
   * another leader before electionTicks of its own ticks after it arrived (more than
   * electionTicks - 1 tick periods), not even after a restart (holdsVotes). The window is that,
   * shrunk by the clock drift bound (leaseWindowTicks), and a leadership transfer (whose forced
   * votes ignore leases) voids it for two timeouts.
   */
  private leaseValid(): boolean {
    if (this.transferee !== 0 || this.tickCount < this.leaseBlockedUntilTick) return false;
    const heard = [...this.voters].map((id) => (id === this.id ? this.tickCount : (this.progress.get(id)?.heardAtTick ?? -Infinity)));
    heard.sort((a, b) => b - a);
    const leaseStart = heard[Math.floor(this.voters.size / 2)];
    const ticksAgo = this.tickCount - leaseStart;
    // With the bug, the lease assumes every clock runs at one rate.
    const window = leaseWindowTicks(this.cfg.electionTicks, this.bugs.has('lease-ignores-drift') ? 0 : this.cfg.clockDriftMax);
    return ticksAgo < window && (this.leaseHolds?.(ticksAgo, window) ?? true);
  }

  private ackRead(from: NodeId, seq: number): void {
    // With the bug, a read is confirmed by one node fewer than a majority.
    const quorum = Math.floor(this.voters.size / 2) + (this.bugs.has('read-quorum-short') ? 0 : 1);
    for (const r of this.readOnly.ack(from, seq, quorum)) this.answerRead(r.from, r.index, r.context);
  }

  /** Reads deferred until this term committed an entry can now start. */
  private releaseCommittedReads(): void {
    if (this.role !== Role.Leader || this.log.term(this.log.committed) !== this.term) return;
    for (const r of this.readOnly.takeDeferred()) this.leaderReadIndex(r.from, r.context);
  }

  private answerRead(from: NodeId, index: number, context: Uint8Array): void {
    if (from === this.id) this.readStates.push({ index, context });
    else this.send({ type: MessageType.ReadIndexResp, to: from, term: this.term, index, context });
  }

  // ---- membership ----------------------------------------------------------------------------

  /** The log changed from `index` on (new or replaced entries): recompute membership if it may differ. */
  private confChangedFrom(index: number, entries: Entry[]): void {
    const lastConf = this.confHistory[this.confHistory.length - 1];
    const touchesConf = lastConf.index >= index || entries.some((e) => e.index >= index && e.type === EntryType.ConfChange);
    if (touchesConf) this.rebuildConfFrom(index);
  }

  /** Drops memberships recorded from `index` on and replays the conf changes in the log from there. */
  private rebuildConfFrom(index: number): void {
    while (this.confHistory.length > 1 && this.confHistory[this.confHistory.length - 1].index >= index) this.confHistory.pop();
    let conf = this.confHistory[this.confHistory.length - 1].conf;
    for (let i = Math.max(index, this.log.offsetIndex + 1); i <= this.log.lastIndex(); i++) {
      const e = this.log.entry(i)!;
      if (e.type !== EntryType.ConfChange) continue;
      conf = nextConf(conf, decodeConfChange(e.data));
      this.confHistory.push({ index: i, conf });
    }
    this.setConf(conf);
  }

  private setConf(conf: ConfState): void {
    this.voters = new Set(conf.voters);
    this.learners = new Set(conf.learners);
    assert(![...this.voters].some((id) => this.learners.has(id)), 'a node is both voter and learner');
    this.syncProgressWithConf();
  }

  private syncProgressWithConf(): void {
    if (this.role !== Role.Leader) return;
    for (const id of [...this.voters, ...this.learners]) {
      const pr = this.progress.get(id);
      if (pr === undefined) this.addProgress(id);
      else pr.isLearner = this.learners.has(id);
    }
    for (const id of [...this.progress.keys()]) {
      if (!this.voters.has(id) && !this.learners.has(id)) this.progress.delete(id);
    }
    if (this.transferee !== 0 && !this.voters.has(this.transferee)) this.transferee = 0;
    this.maybeCommit(); // a smaller quorum may already hold more
  }

  /** Membership as of the conf changes in the log up to `index` (for snapshots and checkers). */
  confAt(index: number): ConfState {
    let conf = this.confHistory[0].conf;
    for (const h of this.confHistory) if (h.index <= index) conf = h.conf;
    return conf;
  }

  private send(m: Omit<Message, 'from'>): void {
    const msg = m as Message;
    msg.from = this.id; // callers pass fresh objects: stamp, do not copy
    this.msgs.push(msg);
  }
}

/**
 * Ticks a lease lasts on the leader's clock: a follower's promise lasts more than
 * electionTicks - 1 of its tick periods, and the leader's clock may run slower than the follower's
 * by a factor of up to (1 + drift) / (1 - drift). 8 for 10 election ticks and drift up to 5.8%.
 */
export function leaseWindowTicks(electionTicks: number, clockDriftMax: number): number {
  return Math.floor(((electionTicks - 1) * (1 - clockDriftMax)) / (1 + clockDriftMax));
}

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

function sameSoftState(a: SoftState, b: SoftState): boolean {
  return a.leader === b.leader && a.role === b.role;
}

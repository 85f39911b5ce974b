// The embedded Raft journal: a RaftDriver (core + WAL) whose messages travel over cairn's RPC,
// with promises for proposals, ReadIndex barriers, membership changes, leadership transfer and
// periodic checkpoints (state-machine snapshots that let the WAL shrink).

import { CairnError, ErrorCode } from '../../errors.ts';
import { decodeConfChange, type RaftConfig } from '../../raft/index.ts';
import { ConfChangeType, EntryType, MessageType, Role, type Entry, type Raft, type Message, type ReadState, type Ready, type Snapshot } from '../../raft/index.ts';
import type { Clock, Connection, Disk, Timer, Transport } from '../../io/index.ts';
import type { Journal, JournalStatus, MemberStatus, NodeInfo, ProposeOptions, StateMachine } from '../journal.ts';
import { RaftDriver, type DriverBug } from './driver.ts';
import type { WalBug } from './wal.ts';
import { JournalError, JournalErrorCode } from './errors.ts';
import { decodeMemberFrame, encodeMemberFrame } from './member-frame.ts';
import { checkMessages } from './message-check.ts';
import { framePieces, readFrames } from './snapshot-frames.ts';
import { noJournalMetrics, type JournalMetrics } from '../metrics.ts';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface RaftJournalOptions {
  id: number;
  dir: string;
  /** This master's RPC address, as peers reach it. */
  address: string;
  /** Founding members (id → address) of a new cluster; empty when joining an existing one. */
  founders: Map<number, string>;
  /** Serves this master's Raft messages and reaches its peers. */
  transport: Transport;
  disk: Disk;
  clock: Clock;
  tickMs?: number;
  heartbeatTicks?: number;
  electionTicks?: number;
  /** Take a checkpoint after this many entries are applied since the last one. */
  checkpointEveryEntries?: number;
  /** Entries kept in the log behind a checkpoint, so briefly lagging peers need no snapshot. */
  checkpointKeepEntries?: number;
  proposalTimeoutMs?: number;
  /** Serve reads on the leader's lease (checked in real time) instead of a heartbeat round per read. */
  leaseRead?: boolean;
  /**
   * Free bytes kept in reserve on the journal's disk: below it the master takes no writes (they
   * fail with CAIRN_DISK_FULL) and a leader hands leadership to a follower; it resumes by itself
   * once space is freed.
   */
  diskReserveBytes?: number;
  /** How often free space is checked. */
  diskCheckMs?: number;
  /**
   * A leader below its reserve hands leadership over at most this often. Masters replicate one log,
   * so their disks tend to fill together: a peer that is full too hands it back, and without a pause
   * they would pass it to and fro every check, with no leader long enough to collect garbage.
   */
  diskFullHandOffEveryMs?: number;
  log?: (level: 'info' | 'warn' | 'error', msg: string, ctx?: object) => void;
  /** Called when the journal can no longer go on (a disk write failed, an invariant broke). */
  onFatal?: (err: unknown) => void;
  /** Sees every Ready and every applied entry: the simulator's checkers. */
  observer?: JournalObserver;
  /** Broken rules, for the simulator only (see driverBugNames, walBugNames). */
  bugs?: ReadonlySet<DriverBug | WalBug>;
  /** WAL segment size (the default is for production; tests and the simulator roll segments sooner). */
  walSegmentBytesMax?: number;
  /** Counts proposals, WAL syncs, leader changes, checkpoints and messages by peer (/metrics). */
  metrics?: JournalMetrics;
  /** Core settings beyond the journal's own (flow control, chunk sizes, pre-vote): tests and the simulator. */
  raftTuning?: Partial<Omit<RaftConfig, 'id' | 'voters' | 'rand' | 'leaseHolds'>>;
}

export interface JournalObserver {
  onReady(rd: Ready): void;
  /** Every entry, as it is applied (conf changes and empty entries too). */
  onApply(e: Entry): void;
  /** The state machine was replaced by a snapshot's. */
  onRestore(snap: Snapshot): void;
}

/** LAN defaults: heartbeats every 50 ms, elections after 300-600 ms of silence. */
export const raftJournalDefaults = {
  tickMs: 25,
  heartbeatTicks: 2,
  electionTicks: 12,
  checkpointEveryEntries: 50_000,
  checkpointKeepEntries: 5_000,
  proposalTimeoutMs: 10_000,
  diskReserveBytes: 32 * 1024 * 1024,
  diskCheckMs: 1_000,
  diskFullHandOffEveryMs: 5 * 60_000,
};

/** The largest journal entry: metadata commands are far smaller; backup chunks come close. */
export const entryBytesMax = 8 << 20;
/**
 * The largest snapshot a follower accepts from the leader. Its chunks go to a file as they arrive
 * (the driver's snapshot sink), so this bounds disk, not memory; the metadata it carries is held in
 * memory anyway once restored.
 */
const incomingSnapshotBytesMax = 16 * 2 ** 30;
/** Bytes of Raft messages to one peer in a single RPC call. */
const sendBatchBytesMax = 4 << 20;
const readsPendingMax = 4096;
/** Distinct strangers (senders outside the configuration) whose dropped messages are logged. */
const strangersLoggedMax = 16;

interface Pending {
  term: number;
  resolve(v: unknown): void;
  reject(e: unknown): void;
  timer: Timer;
}


/** What a leader sends its followers. */
const leaderTraffic: ReadonlySet<MessageType> = new Set([MessageType.App, MessageType.Heartbeat, MessageType.Snap]);

export class RaftJournal implements Journal {
  private readonly opts: RaftJournalOptions & typeof raftJournalDefaults;
  private driver: RaftDriver | undefined;
  private sm: StateMachine | undefined;
  private readonly addresses = new Map<number, string>();
  /**
   * Ids removed from the cluster, never to be added again: a server that comes back under an id
   * must still hold that id's votes and log (docs/masters.md, 'Rebuilding a master'). Kept from
   * applied entries and snapshots, so every replica holds the same set at the same index.
   */
  private readonly removedIds = new Set<number>();
  /** Senders outside the configuration whose messages were dropped (logged once each, a few at most). */
  private readonly strangersHeard = new Set<number>();
  /** Removed ids whose messages were dropped, each logged once. */
  private readonly removedHeard = new Set<number>();
  private readonly peers = new Map<number, Connection>();
  private readonly outbox = new Map<number, Message[]>();
  private readonly pending = new Map<number, Pending>();
  private readonly reads = new Map<number, { resolve(): void; reject(e: unknown): void; timer: Timer }>();
  private readonly readsReady: { index: number; resolve(): void }[] = [];
  /**
   * The last index handed to the state machine. The core's own applied index moves only when its
   * Ready is advanced, after the entries of that Ready were applied here: a read answered in the
   * same Ready must be compared with this one, or it waits for an entry that was already applied.
   */
  private appliedHere = 0;
  private readonly appliedWaiters: { index: number; resolve(): void }[] = [];
  private nextReadId = 1;
  private appliedSinceCheckpoint = 0;
  private checkpointing: Promise<number> | undefined;
  private membershipChain: Promise<void> = Promise.resolve();
  private stopped = false;
  /** Why the disk counts as full (free space below the reserve, or a write that found no space); undefined when not. */
  /** Why writes are refused, and whether it is the reserve (removals still go through) or no space at all. */
  private diskFull: { why: string; kind: 'reserve' | 'no space' } | undefined;
  private diskTimer: Timer | undefined;
  private handingOff = false;
  /** When this master last handed leadership over for want of disk space (cleared once space is back). */
  private diskFullHandOffAtMs: number | undefined;
  private readonly metrics: JournalMetrics;
  /** The last leader this node heard of (0: none yet), to count changes. */
  private leaderSeen = 0;

  constructor(opts: RaftJournalOptions) {
    this.opts = { ...raftJournalDefaults, ...stripUndefined(opts) } as RaftJournalOptions & typeof raftJournalDefaults;
    this.metrics = opts.metrics ?? noJournalMetrics;
    for (const [id, addr] of opts.founders) this.addresses.set(id, addr);
    this.addresses.set(opts.id, opts.address);
  }

  async start(sm: StateMachine): Promise<void> {
    this.sm = sm;
    this.opts.transport.handle('raft.step', async (body) => {
      const msgs = checkMessages(body); // all or nothing: a bad message rejects the whole call
      const b = body as { from?: unknown; address?: unknown };
      // A peer's own word for its address, in case no entry has told us yet (a new member).
      if (typeof b.from === 'number' && typeof b.address === 'string' && !this.addresses.has(b.from) && !this.removedIds.has(b.from)) this.addresses.set(b.from, b.address);
      // Only known members become a peer label: an id made up by a sender does not.
      if (msgs.length > 0 && this.addresses.has(msgs[0].from)) this.metrics.received(msgs[0].from, msgs.length);
      const raft = this.driver?.raft;
      // A node of the configuration takes messages from its members alone: a stranger's term
      // would otherwise become this node's (and force an election). A node not yet in one (it
      // joins) takes the leader's, which it does not know yet. The exceptions are at takesStranger.
      const strict = raft?.isMember(this.opts.id) === true;
      for (const m of msgs) {
        if (m.to !== this.opts.id) continue;
        if (this.removedIds.has(m.from)) this.droppedFromRemoved(m.from, b.address);
        else if (strict && !raft!.isMember(m.from) && !this.takesStranger(raft!, m)) this.droppedFromStranger(m.from, b.address);
        else this.driver?.step(m);
      }
      return {};
    }, { internal: true });
    this.driver = await RaftDriver.start({
      disk: this.opts.disk,
      clock: this.opts.clock,
      dir: this.opts.dir,
      bugs: this.opts.bugs,
      walSegmentBytesMax: this.opts.walSegmentBytesMax,
      metrics: this.metrics,
      onReady: this.opts.observer?.onReady,
      raft: {
        id: this.opts.id,
        voters: [...this.opts.founders.keys()].sort((a, b) => a - b),
        // Founders' addresses ride in the bootstrap entries, so a master that joins later learns them.
        founderContext: (id) => encoder.encode(this.opts.founders.get(id) ?? ''),
        electionTicks: this.opts.electionTicks,
        heartbeatTicks: this.opts.heartbeatTicks,
        entryBytesMax: entryBytesMax,
        snapshotBytesMax: incomingSnapshotBytesMax,
        leaseRead: this.opts.leaseRead === true,
        ...this.opts.raftTuning,
      },
      tickMs: this.opts.tickMs,
      send: (m) => this.enqueue(m),
      apply: (e) => this.applyEntry(e),
      restore: (snap) => this.restoreSnapshot(snap),
      onSoftState: (s) => {
        this.log('info', `role ${s.role}, leader ${s.leader || 'unknown'}`, { term: this.driver?.raft.term });
        if (s.leader !== 0 && s.leader !== this.leaderSeen) {
          this.leaderSeen = s.leader;
          this.metrics.leaderChanged();
        }
        if (s.role !== Role.Leader) this.failPendingReads();
      },
      onReadState: (r) => this.onReadState(r),
      onDiskFull: (_err, attempt) => this.noteDiskFull(`a write found no space on the device (try ${attempt})`, 'no space'),
      onError: (err) => {
        // A failed write or apply leaves the node's state unknown: stop serving rather than guess.
        this.log('error', `raft driver failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
        this.stopped = true;
        this.opts.onFatal?.(err);
      },
    });
    this.driver.kick();
    this.diskTimer = this.opts.clock.every(this.opts.diskCheckMs, () => void this.checkDiskSpace());
    if (this.driver.repair !== undefined) {
      const r = this.driver.repair;
      this.log('warn', `WAL tail repaired: ${r.truncatedBytes} bytes cut from ${r.segment}: ${r.problem}`);
    }
    for (const s of this.driver.skippedSnapshots) this.log('warn', `snapshot skipped: ${s}`);
    // The WAL replay above may have applied more than a checkpoint's worth of entries.
    this.maybeCheckpoint();
  }

  /** The Raft core, once started: for status and the simulator's checkers. Do not drive it directly. */
  core(): RaftDriver['raft'] | undefined {
    return this.driver?.raft;
  }

  /** What this journal's startup repaired, for operators and tests. */
  repairs(): { walTruncatedBytes: number; problem?: string } {
    const r = this.driver?.repair;
    return r === undefined ? { walTruncatedBytes: 0 } : { walTruncatedBytes: r.truncatedBytes, problem: r.problem };
  }

  // ---- proposals -----------------------------------------------------------------------------

  propose(entry: Uint8Array, opts: ProposeOptions = {}): Promise<unknown> {
    const raft = this.raft();
    this.refuseIfDiskFull(opts.onReserve === true);
    const { index, term } = this.guard(() => raft.propose(entry));
    this.metrics.proposed();
    this.driver!.kick();
    return new Promise((resolve, reject) => {
      const timer = this.opts.clock.after(this.opts.proposalTimeoutMs, () => {
        this.pending.delete(index);
        reject(new CairnError(ErrorCode.Timeout, `proposal at index ${index} not committed within ${this.opts.proposalTimeoutMs} ms`));
      });
      this.pending.set(index, { term, resolve, reject, timer });
    });
  }

  private applyEntry(e: Entry): void {
    let result: unknown;
    if (e.type === EntryType.ConfChange) this.applyConfChange(e);
    else if (e.data.length > 0) result = this.sm!.apply(e.index, e.data);
    this.opts.observer?.onApply(e);
    const p = this.pending.get(e.index);
    if (p !== undefined) {
      this.pending.delete(e.index);
      p.timer.cancel();
      if (p.term === e.term) p.resolve(result);
      else p.reject(new CairnError(ErrorCode.ProposalDropped, `entry ${e.index} was replaced by another leader's; retry`));
    }
    this.appliedSinceCheckpoint++;
    this.releaseApplied(e.index);
    this.maybeCheckpoint();
  }

  /** Starts a checkpoint once enough entries were applied; none while the driver is still replaying the WAL. */
  private maybeCheckpoint(): void {
    if (this.appliedSinceCheckpoint < this.opts.checkpointEveryEntries || this.checkpointing !== undefined) return;
    queueMicrotask(() => {
      if (this.driver === undefined || this.stopped) return;
      void this.checkpoint().catch((err: unknown) => this.log('error', `checkpoint failed: ${String(err)}`));
    });
  }

  private applyConfChange(e: Entry): void {
    const cc = decodeConfChange(e.data);
    if (cc.type === ConfChangeType.Remove) {
      this.removedIds.add(cc.node);
      this.peers.get(cc.node)?.close();
      this.peers.delete(cc.node);
      return;
    }
    // addMember refuses removed ids; an add after a removal comes from a log written before that
    // rule (the old rebuild reused ids), and the member it made is a member, whose messages count.
    this.removedIds.delete(cc.node);
    if (cc.context.length > 0) this.addresses.set(cc.node, decoder.decode(cc.context));
  }

  /**
   * Whether a member takes a message from a node outside its configuration. Its newest
   * configuration may be an entry that never committed (a removal proposed by a leader that then
   * crashed), or it may lag behind the entry that added a member: then the stranger may be the
   * leader, or a candidate the cluster needs (with one member lost, a majority of 4 needs every
   * other vote), and only the leader's log brings it the membership it lacks. Dropping them kept
   * such a member out for good, or the cluster without a leader (simulator: meta seeds 212, 618
   * and 2538, kv seed 295). So a member that knows no leader takes a stranger's messages (an
   * election is under way anyway), and one that follows the stranger takes its appends,
   * heartbeats and snapshots; a member that follows a leader of its own configuration still drops
   * a stranger's messages, whatever their term, and so does a leader. A removed node cannot win
   * an election nor lead a new term (single-server changes leave it no majority); one of an
   * older term gets only a term notice back.
   */
  private takesStranger(raft: Raft, m: Message): boolean {
    const lead = raft.softState().leader;
    return lead === 0 || (lead === m.from && leaderTraffic.has(m.type));
  }

  /**
   * A removed node that still runs (it missed its removal, or an old machine came back with its
   * disk) must not take part: its votes and acknowledgements speak for a log the cluster let go.
   */
  private droppedFromStranger(from: number, address: unknown): void {
    if (this.strangersHeard.has(from)) return;
    if (this.strangersHeard.size >= strangersLoggedMax) return;
    this.strangersHeard.add(from);
    this.log('warn', `messages from node ${from}, which is not a member of this node's configuration, are dropped`, { from, address });
  }

  private droppedFromRemoved(from: number, address: unknown): void {
    if (this.removedHeard.has(from)) return;
    this.removedHeard.add(from);
    this.log('warn', `messages from node ${from}, removed from the cluster, are dropped; stop that process`, { from, address });
  }

  private releaseApplied(index: number): void {
    this.appliedHere = Math.max(this.appliedHere, index);
    for (let i = this.appliedWaiters.length - 1; i >= 0; i--) {
      if (this.appliedWaiters[i].index <= index) {
        this.appliedWaiters[i].resolve();
        this.appliedWaiters.splice(i, 1);
      }
    }
    for (let i = this.readsReady.length - 1; i >= 0; i--) {
      if (this.readsReady[i].index <= index) {
        this.readsReady[i].resolve();
        this.readsReady.splice(i, 1);
      }
    }
  }

  // ---- disk space ----------------------------------------------------------------------------

  private async checkDiskSpace(): Promise<void> {
    let free: number;
    try {
      free = (await this.opts.disk.statfs(this.opts.dir)).bytesFree;
    } catch (err) {
      this.log('warn', `cannot read the free space of ${this.opts.dir}: ${String(err)}`);
      return;
    }
    if (this.stopped) return;
    const reserve = this.opts.diskReserveBytes;
    if (free < reserve) this.noteDiskFull(`${free} bytes free in ${this.opts.dir}, ${reserve} kept in reserve`, this.diskFull?.kind === 'no space' ? 'no space' : 'reserve');
    else if (this.diskFull !== undefined) {
      this.log('info', `disk space is back (${free} bytes free): taking writes again`);
      this.diskFull = undefined;
      this.diskFullHandOffAtMs = undefined;
    }
  }

  /**
   * Refuses writes from now on (below the reserve, all but those marked onReserve); a leader hands
   * leadership to the follower that holds most of its log, at most once in diskFullHandOffEveryMs:
   * leadership that comes back sooner (the others' disks are full too) is kept, to serve reads,
   * removals and the cluster's own entries.
   */
  private noteDiskFull(why: string, kind: 'reserve' | 'no space'): void {
    if (this.diskFull === undefined) this.log('error', `disk full: ${why}; no writes until space is freed${kind === 'reserve' ? ' (removals still go through, on the reserve)' : ''}`);
    this.diskFull = { why, kind };
    const raft = this.driver?.raft;
    if (raft === undefined || raft.role !== Role.Leader || this.handingOff) return;
    const now = this.opts.clock.now();
    if (this.diskFullHandOffAtMs !== undefined && now - this.diskFullHandOffAtMs < this.opts.diskFullHandOffEveryMs) return;
    const st = raft.status();
    let best: number | undefined;
    for (const id of st.conf.voters) {
      if (id === st.id) continue;
      if (best === undefined || (st.progress.get(id)?.match ?? 0) > (st.progress.get(best)?.match ?? 0)) best = id;
    }
    if (best === undefined) return;
    this.handingOff = true;
    this.diskFullHandOffAtMs = now;
    this.log('warn', `disk full: handing leadership to node ${best} (if it comes back within ${Math.round(this.opts.diskFullHandOffEveryMs / 1000)} s, this master keeps it: their disks are full too)`);
    this.transferLeader(best)
      .catch((err: unknown) => this.log('warn', `leadership hand-off to node ${best} failed: ${String(err)}`))
      .finally(() => (this.handingOff = false));
  }

  private refuseIfDiskFull(onReserve = false): void {
    if (this.diskFull === undefined || (onReserve && this.diskFull.kind === 'reserve')) return;
    throw new JournalError(JournalErrorCode.DiskFull, `master ${this.opts.id} takes no writes: its disk is full (${this.diskFull.why}); free space on it (removing files goes through), or retry on another master`);
  }

  // ---- reads ---------------------------------------------------------------------------------

  readBarrier(): Promise<void> {
    const raft = this.raft();
    if (raft.role !== Role.Leader) throw this.notLeader();
    if (this.reads.size >= readsPendingMax) throw new CairnError(ErrorCode.Busy, `${readsPendingMax} reads are waiting; retry`);
    const id = this.nextReadId++;
    const ctx = new Uint8Array(4);
    new DataView(ctx.buffer).setUint32(0, id);
    // The waiter goes in first: a lease read is answered within kick(), before this returns.
    const done = new Promise<void>((resolve, reject) => {
      const timer = this.opts.clock.after(this.opts.proposalTimeoutMs, () => {
        this.reads.delete(id);
        reject(new CairnError(ErrorCode.Timeout, 'read barrier: leadership not confirmed in time'));
      });
      this.reads.set(id, { resolve, reject, timer });
    });
    try {
      raft.readIndex(ctx);
    } catch (err) {
      this.reads.get(id)?.timer.cancel();
      this.reads.delete(id);
      throw err;
    }
    this.driver!.kick();
    return done;
  }

  /** Reads waiting for this node's leadership to be confirmed fail at once when it ends: the client retries elsewhere. */
  private failPendingReads(): void {
    if (this.reads.size === 0) return;
    const err = this.notLeader();
    for (const r of this.reads.values()) {
      r.timer.cancel();
      r.reject(err);
    }
    this.reads.clear();
  }

  private onReadState(r: ReadState): void {
    const id = new DataView(r.context.buffer, r.context.byteOffset, r.context.byteLength).getUint32(0);
    const waiter = this.reads.get(id);
    if (waiter === undefined) return;
    this.reads.delete(id);
    waiter.timer.cancel();
    if (Math.max(this.appliedHere, this.raft().log.applied) >= r.index) waiter.resolve();
    else this.readsReady.push({ index: r.index, resolve: waiter.resolve });
  }

  // ---- transport -----------------------------------------------------------------------------

  private enqueue(m: Message): void {
    const q = this.outbox.get(m.to);
    if (q !== undefined) {
      q.push(m);
      return;
    }
    this.outbox.set(m.to, [m]);
    // Messages of one Ready to one peer go out as one call, in order, on one connection.
    queueMicrotask(() => this.flush(m.to));
  }

  private flush(to: number): void {
    const msgs = this.outbox.get(to) ?? [];
    this.outbox.delete(to);
    const client = this.peer(to);
    if (client === undefined || this.stopped) return;
    let batch: Message[] = [];
    let bytes = 0;
    const send = (): void => {
      const body = { from: this.opts.id, address: this.opts.address, msgs: batch };
      // One-way: Raft tolerates loss (a lost message is resent by the protocol itself) and its
      // answers are messages of their own, so a response per call would only cost system calls.
      try {
        client.notify('raft.step', body);
        this.metrics.sent(to, batch.length, bytes);
      } catch (err) {
        this.log('error', `messages to node ${to} cannot be sent: ${(err as Error).message}`);
      }
      batch = [];
      bytes = 0;
    };
    for (const m of msgs) {
      batch.push(m);
      bytes += (m.entries?.reduce((n, e) => n + e.data.length + 24, 0) ?? 0) + (m.snapData?.length ?? 0) + 64;
      if (bytes >= sendBatchBytesMax) send();
    }
    if (batch.length > 0) send();
  }

  private peer(id: number): Connection | undefined {
    let c = this.peers.get(id);
    if (c !== undefined) return c;
    const addr = this.addresses.get(id);
    if (addr === undefined) {
      this.log('warn', `no address known for node ${id}; message dropped`);
      return undefined;
    }
    c = this.opts.transport.connect(addr);
    this.peers.set(id, c);
    return c;
  }

  // ---- snapshots -----------------------------------------------------------------------------

  /** Snapshots the state machine at the applied index and lets the WAL drop what it covers. */
  checkpoint(): Promise<number> {
    if (this.checkpointing !== undefined) return this.checkpointing;
    // Frame 0 is the member addresses and removed ids, then the state machine's own chunks, streamed to the file.
    const takeData = (): Iterable<Uint8Array> => {
      this.appliedSinceCheckpoint = 0;
      return framePieces(this.snapshotFrames());
    };
    this.checkpointing = this.driver!.checkpoint(takeData, this.opts.checkpointKeepEntries).finally(() => {
      this.checkpointing = undefined;
    });
    return this.checkpointing;
  }

  private *snapshotFrames(): Generator<Uint8Array> {
    yield encodeMemberFrame({ addresses: [...this.addresses], removedIds: [...this.removedIds].sort((a, b) => a - b) });
    yield* this.sm!.snapshot();
  }

  private restoreSnapshot(snap: Snapshot): void {
    const frames = readFrames(snap.data);
    const first = frames.next();
    if (first.done === true) throw new JournalError(JournalErrorCode.SnapshotCorrupt, `snapshot at ${snap.meta.index} has no member list`);
    const members = decodeMemberFrame(first.value);
    for (const [id, addr] of members.addresses) this.addresses.set(id, addr);
    this.removedIds.clear();
    for (const id of members.removedIds) this.removedIds.add(id);
    this.sm!.restore(frames);
    this.opts.observer?.onRestore(snap);
    this.releaseApplied(snap.meta.index);
  }

  // ---- membership and leadership -------------------------------------------------------------

  /**
   * Adds a node as a learner, waits for it to catch up, then makes it a voter. Idempotent, so a
   * client may retry after a timeout or failover: a voter at the same address is already done.
   */
  addMember(id: number, address: string): Promise<void> {
    return this.serializeMembership(async () => {
      await this.settleLog();
      if (this.removedIds.has(id)) throw this.idRemoved(id);
      const st = this.raft().status();
      if (st.conf.voters.includes(id)) {
        const known = this.addresses.get(id);
        if (known !== undefined && known !== address) throw new CairnError(ErrorCode.InvalidArgument, `node ${id} is already a voter, at ${known}`);
        return;
      }
      if (!st.conf.learners.includes(id)) await this.changeConf({ type: ConfChangeType.AddLearner, node: id }, encoder.encode(address));
      await this.waitCaughtUp(id);
      await this.changeConf({ type: ConfChangeType.AddVoter, node: id }, encoder.encode(address));
    });
  }

  /**
   * A removed id never comes back (as etcd never reuses a removed member's id): an empty server
   * under an old id would take the cluster's first entries for the current membership. The
   * bootstrap entries make id 1 a voter at index 1, so a rebuilt master 1 that has received only
   * that entry counts itself a cluster of one, elects itself, and overwrites committed entries.
   */
  private idRemoved(id: number): CairnError {
    const { conf } = this.raft().status();
    const unused = Math.max(id, ...conf.voters, ...conf.learners, ...this.removedIds) + 1;
    return new CairnError(
      ErrorCode.IdRemoved,
      `master ${id} was removed from this cluster and a removed id is never added back: start the rebuilt master with a new --id, such as ${unused}, and add that id`,
      { id, unused },
    );
  }

  /** Removes a node; removing one that is not a member is already done. */
  removeMember(id: number): Promise<void> {
    return this.serializeMembership(async () => {
      await this.settleLog();
      const { conf } = this.raft().status();
      if (!conf.voters.includes(id) && !conf.learners.includes(id)) return;
      await this.changeConf({ type: ConfChangeType.Remove, node: id });
    });
  }

  /** One membership operation at a time on this master: a retried call waits for the first. */
  private serializeMembership(op: () => Promise<void>): Promise<void> {
    const run = this.membershipChain.then(op);
    this.membershipChain = run.catch(() => undefined);
    return run;
  }

  /**
   * Waits until everything in this leader's log is applied, so that the membership it reports is
   * the committed one: an uncommitted change (a former leader's, say) may still be cut off.
   */
  private async settleLog(): Promise<void> {
    const raft = this.raft();
    if (raft.role !== Role.Leader) throw this.notLeader();
    const last = raft.log.lastIndex();
    await this.waitUntil(() => this.raft().log.applied >= last, 'the log to be applied');
  }

  /** Proposes a conf change once the previous one (perhaps a former leader's) is applied. */
  private async changeConf(cc: { type: ConfChangeType; node: number }, context?: Uint8Array): Promise<void> {
    this.refuseIfDiskFull();
    let at = { index: 0, term: 0 };
    await this.waitUntil(() => {
      try {
        at = this.guard(() => this.raft().proposeConfChange(cc, context));
        return true;
      } catch (err) {
        if (err instanceof CairnError && err.code === ErrorCode.ConfChangePending) return false;
        throw err;
      }
    }, 'the previous membership change to be applied');
    await this.waitApplied(at.index);
    // Another leader's entry may have taken the index: then the change did not happen.
    const term = this.raft().log.term(at.index);
    if (term !== undefined && term !== at.term) throw new CairnError(ErrorCode.ProposalDropped, `the membership change at index ${at.index} was replaced by another leader's entry; retry`);
  }

  async transferLeader(id: number): Promise<void> {
    const raft = this.raft();
    this.guard(() => raft.transferLeader(id));
    this.driver!.kick();
    await this.waitUntil(() => raft.leader === id, `leadership to move to node ${id}`);
  }

  private async waitCaughtUp(id: number): Promise<void> {
    await this.waitUntil(() => {
      const st = this.raft().status();
      if (st.role !== Role.Leader) throw this.notLeader();
      return (st.progress.get(id)?.match ?? 0) >= st.commit;
    }, `node ${id} to catch up`);
  }

  private waitApplied(index: number): Promise<void> {
    this.driver!.kick();
    if (this.raft().log.applied >= index) return Promise.resolve();
    return new Promise((resolve) => this.appliedWaiters.push({ index, resolve }));
  }

  private async waitUntil(cond: () => boolean, what: string): Promise<void> {
    const deadline = this.opts.clock.now() + this.opts.proposalTimeoutMs * 3;
    while (!cond()) {
      if (this.opts.clock.now() > deadline) throw new CairnError(ErrorCode.Timeout, `timed out waiting for ${what}`);
      await this.opts.clock.sleep(this.opts.tickMs);
    }
  }

  // ---- status --------------------------------------------------------------------------------

  isLeader(): boolean {
    return this.driver?.raft.role === Role.Leader;
  }

  leader(): NodeInfo | undefined {
    const id = this.driver?.raft.leader ?? 0;
    if (id === 0) return undefined;
    return { id, address: this.addresses.get(id) ?? '' };
  }

  status(): JournalStatus {
    const st = this.raft().status();
    const members: MemberStatus[] = [];
    const add = (id: number, role: 'voter' | 'learner'): void => {
      const m: MemberStatus = { id, address: this.addresses.get(id) ?? '', role };
      const pr = st.progress.get(id);
      if (pr !== undefined) {
        m.matchIndex = pr.match;
        m.lagEntries = Math.max(0, st.lastIndex - pr.match);
      }
      members.push(m);
    };
    for (const id of st.conf.voters) add(id, 'voter');
    for (const id of st.conf.learners) add(id, 'learner');
    const isLearner = st.conf.learners.includes(st.id);
    return {
      backend: 'raft',
      id: st.id,
      role: isLearner ? 'learner' : st.role,
      leader: this.leader(),
      term: st.term,
      commitIndex: st.commit,
      appliedIndex: st.applied,
      firstIndex: st.firstIndex,
      lastIndex: st.lastIndex,
      snapshotIndex: this.raft().log.snapshot?.meta.index ?? 0,
      members,
      removedIds: [...this.removedIds].sort((a, b) => a - b),
    };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.diskTimer?.cancel();
    await this.driver?.stop();
    for (const c of this.peers.values()) c.close();
    this.peers.clear();
    const stopped = new CairnError(ErrorCode.Unavailable, 'journal stopped');
    for (const p of this.pending.values()) {
      p.timer.cancel();
      p.reject(stopped);
    }
    this.pending.clear();
    for (const r of this.reads.values()) {
      r.timer.cancel();
      r.reject(stopped);
    }
    this.reads.clear();
  }

  // ---- helpers -------------------------------------------------------------------------------

  private raft(): RaftDriver['raft'] {
    if (this.driver === undefined || this.stopped) throw new CairnError(ErrorCode.Unavailable, 'journal is not running');
    return this.driver.raft;
  }

  /** Runs a core call, turning NOT_LEADER into an error that carries the leader's address. */
  private guard<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      if (err instanceof CairnError && err.code === ErrorCode.NotLeader) throw this.notLeader();
      throw err;
    }
  }

  private notLeader(): CairnError {
    const leader = this.leader();
    const where = leader === undefined ? 'no leader is known yet; retry' : `the leader is node ${leader.id} at ${leader.address}`;
    return new CairnError(ErrorCode.NotLeader, `master ${this.opts.id} is not the leader: ${where}`, { leader });
  }

  private log(level: 'info' | 'warn' | 'error', msg: string, ctx?: object): void {
    this.opts.log?.(level, msg, { node: this.opts.id, ...ctx });
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

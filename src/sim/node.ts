// One simulated master: the production RaftJournal (its RaftDriver, WAL and snapshot files) on a
// simulated disk, clock and transport, replicating the workload's state machine and answering the
// simulated clients through the journal's own propose and read barrier.

import { CodedError, ErrorCode } from '../errors.ts';
import type { Entry, Raft, RaftBug, Ready, Snapshot } from '../raft/index.ts';
import { RaftBugs, Role } from '../raft/index.ts';
import { RaftJournal, type RaftJournalOptions } from '../journal/raft/raft-journal.ts';
import type { DriverBug } from '../journal/raft/driver.ts';
import type { WalBug } from '../journal/raft/wal.ts';
import { DurableLog } from './durable-log.ts';
import type { Prng } from './prng.ts';
import { StallQueue } from './stall-queue.ts';
import type { EventText } from './event-trace.ts';
import { SimClock } from './sim-clock.ts';
import { SimFs, type SimFsOp } from './sim-fs.ts';
import { SimTransport, simAddress, type SimWire } from './sim-transport.ts';
import type { ReplicatedMachine, SimWorkload } from './workload.ts';

/** Virtual milliseconds per tick. */
export const tickMs = 10;

export type JournalBug = DriverBug | WalBug;
/** A disk that acknowledges fsyncs it did not do (70% of them): not a rule of cairn's, but the checkers must see it. */
export type DiskBug = 'no-fsync';

/** One attempt of a client operation; a write's retries carry the same seq. */
export interface ClientRequest<I> {
  opId: number;
  attempt: number;
  client: number;
  seq: number;
  input: I;
}

export type ClientReply<O> =
  | { opId: number; attempt: number; ok: true; output: O }
  | { opId: number; attempt: number; ok: false; leader: number; code: string };

/** What the simulation observes of a node, for its checkers. */
export interface NodeObserver {
  onReady(node: AnySimNode, rd: Ready): void;
  onApply(node: AnySimNode, e: Entry): void;
  /** The state machine holds everything up to `index`: after applying it, or after restoring a snapshot of it. */
  onStateAt(node: AnySimNode, index: number): void;
  onRestart(node: AnySimNode, tornBytes: number): void;
  /** The journal gave up (a failed fsync): the process exits, as a master does. */
  onFatal(node: AnySimNode, err: unknown): void;
  /** The node refused to start (damaged data it cannot repair alone). */
  onRefused(node: AnySimNode, err: unknown): void;
  /** Production code threw something it should not have: a bug. */
  onBug(node: AnySimNode, err: unknown): void;
}

export interface SimNodeEnv<I, O> {
  prng: Prng;
  now(): number;
  /** Schedules an event of the simulation (counted and traced as `what`). */
  after(delayMs: number, what: EventText, run: () => void): void;
  wire: SimWire;
  reply(client: number, r: ClientReply<O>): void;
  syncLatencyMs(node: AnySimNode): number;
  syncFails(node: AnySimNode, path: string): boolean;
  onDiskOp(node: AnySimNode, op: SimFsOp, path: string): void;
  workload: SimWorkload<unknown, I, O>;
  observer: NodeObserver;
  /** Founding voters (id → address) of a node that starts a cluster; empty for one that joins later. */
  founders(id: number): Map<number, string>;
  journal: Pick<RaftJournalOptions, 'electionTicks' | 'heartbeatTicks' | 'checkpointEveryEntries' | 'checkpointKeepEntries' | 'proposalTimeoutMs' | 'leaseRead' | 'raftTuning' | 'walSegmentBytesMax' | 'diskReserveBytes' | 'diskCheckMs'>;
  bugs: ReadonlySet<RaftBug | JournalBug | DiskBug>;
  /** How far clock rates may stray from 1 in this run (the default bound when absent). */
  clockDriftMax?: number;
}

/** A node as the checkers see it: what they look at does not depend on the workload's types. */
export type AnySimNode = SimNode<unknown, unknown>;

export class SimNode<I, O> {
  readonly id: number;
  readonly dir: string;
  readonly fs = new SimFs();
  /** What a crash now would leave of the log: the checkers' view of this node's disk. */
  readonly durable: DurableLog;
  readonly clockRate: number;
  private readonly clockOriginMs: number;
  journal: RaftJournal | undefined;
  sm: ReplicatedMachine<I, O>;
  /** Its data was wiped after it refused to start: it joins again empty, to be added by the leader. */
  rebuilt = false;
  /** The process runs (it may still be opening its journal). */
  alive = false;
  /** The last index the state machine holds. */
  smIndex = 0;
  /** Bumped on every start and crash, so that work scheduled by an earlier process is dropped. */
  incarnation = 0;
  private readonly env: SimNodeEnv<I, O>;
  /** While stalled (a GC pause, SIGSTOP) the node runs nothing: what arrives waits, in order. */
  private readonly stalls = new StallQueue();
  transport: SimTransport | undefined;
  /** The running process's clock: the proposing master stamps its own wall time into commands. */
  private clock: SimClock | undefined;

  constructor(id: number, env: SimNodeEnv<I, O>, clockRate: number, clockOriginMs: number) {
    this.id = id;
    this.env = env;
    this.dir = `/n${id}`;
    this.durable = new DurableLog(this.fs, this.dir);
    this.clockRate = clockRate;
    this.clockOriginMs = clockOriginMs;
    this.sm = env.workload.newMachine();
  }

  /** The Raft core, while the journal runs. */
  get raft(): Raft {
    const core = this.journal?.core();
    if (core === undefined) throw new Error(`invariant violated: n${this.id} has no running core`);
    return core;
  }

  /** Up, with its journal open. */
  running(): boolean {
    return this.alive && this.journal?.core() !== undefined;
  }

  start(): void {
    const inc = ++this.incarnation;
    this.alive = true;
    this.stalls.clear();
    const live = (): boolean => this.alive && this.incarnation === inc;
    const disk = this.fs.attach({
      later: (ms, fn) => this.later(inc, ms, 'disk', fn, 2),
      syncLatencyMs: () => this.env.syncLatencyMs(this),
      syncFails: (path) => this.env.syncFails(this, path),
      syncLies: () => this.env.bugs.has('no-fsync') && !this.env.prng.chance(0.3),
      onOp: (op, path) => this.env.onDiskOp(this, op, path),
    });
    const clock = (this.clock = new SimClock({ nowMs: () => this.env.now(), later: (ms, fn) => this.later(inc, ms, 'timer', fn, 0) }, this.clockRate, this.clockOriginMs, this.env.prng, this.env.clockDriftMax));
    this.transport = new SimTransport(this.env.wire, this.id, live);
    this.sm = this.env.workload.newMachine();
    this.smIndex = 0;
    const obs = this.env.observer;
    const journal = new RaftJournal({
      ...this.env.journal,
      id: this.id,
      dir: this.dir,
      address: simAddress(this.id),
      founders: this.rebuilt ? new Map() : this.env.founders(this.id),
      transport: this.transport,
      disk,
      clock,
      tickMs,
      bugs: new Set([...this.env.bugs].filter((b): b is JournalBug => !isRaftBug(b) && b !== 'no-fsync')),
      raftTuning: { ...this.env.journal.raftTuning, bugs: new Set([...this.env.bugs].filter(isRaftBug)) },
      observer: {
        onReady: (rd) => live() && obs.onReady(this, rd),
        onApply: (e) => live() && this.applied(e),
        onRestore: (snap) => live() && this.restored(snap),
      },
      onFatal: (err) => live() && obs.onFatal(this, err),
    });
    this.journal = journal;
    journal.start(this.sm).then(
      () => live() && obs.onRestart(this, journal.repairs().walTruncatedBytes),
      (err: unknown) => live() && obs.onRefused(this, err),
    );
  }

  private applied(e: Entry): void {
    this.smIndex = e.index;
    this.env.observer.onApply(this, e);
    this.env.observer.onStateAt(this, e.index);
  }

  private restored(snap: Snapshot): void {
    this.smIndex = snap.meta.index;
    this.env.observer.onStateAt(this, snap.meta.index);
  }

  /** The process dies: what it had not synced is lost, the last writes perhaps torn. */
  crash(tear: boolean): void {
    this.alive = false;
    this.incarnation++;
    this.journal = undefined;
    this.transport = undefined;
    this.fs.crash(this.env.prng, tear);
  }

  /**
   * Stops the node for `ms` of virtual time, as a process paused by the OS or a long GC: no ticks,
   * no messages handled, no disk completions. Then the work that piled up runs: timers first (as
   * Node runs timers before I/O), then client requests, then the rest, each in arrival order.
   */
  stall(ms: number): void {
    if (!this.alive || this.stalled()) return;
    this.stalls.begin(this.env.now(), ms);
    const inc = this.incarnation;
    this.env.after(ms, () => `n${this.id} resumes`, () => {
      if (!this.alive || this.incarnation !== inc) return;
      const work = this.stalls.end();
      // Each piece is a callback of its own, as in Node's event loop: what it sets off (promise
      // continuations) runs before the next one.
      for (const w of work) {
        this.env.after(0, () => `n${this.id} resumed work`, () => {
          if (this.alive && this.incarnation === inc) w();
        });
      }
    });
  }

  stalled(): boolean {
    return this.stalls.stalled(this.env.now());
  }

  /** Runs `fn` after `ms` in the process `inc`, unless it died: timers rank 0, client requests 1, the rest 2. */
  private later(inc: number, ms: number, what: string, fn: () => void, rank: 0 | 1 | 2): void {
    this.env.after(ms, () => `n${this.id} ${what}`, () => {
      if (!this.alive || this.incarnation !== inc) return;
      this.runOrQueue(fn, rank);
    });
  }

  /** Runs `fn` on the current process after `ms` (an RPC deadline of the transport). */
  laterCurrent(ms: number, fn: () => void): void {
    if (this.alive) this.later(this.incarnation, ms, 'deadline', fn, 0);
  }

  /** A message arrives: handled now, or when a stall ends. */
  deliver(fn: () => void): void {
    if (this.alive) this.runOrQueue(fn, 2);
  }

  private runOrQueue(fn: () => void, rank: number): void {
    this.stalls.runOrQueue(this.env.now(), fn, rank);
  }

  handleClient(req: ClientRequest<I>): void {
    if (!this.alive) return;
    this.runOrQueue(() => this.serveClient(req), 1);
  }

  /** As a master serves a client: writes through propose, reads after a read barrier. */
  private serveClient(req: ClientRequest<I>): void {
    const journal = this.journal;
    const inc = this.incarnation;
    const live = (): boolean => this.alive && this.incarnation === inc;
    if (journal === undefined || journal.core() === undefined) {
      this.fail(req, ErrorCode.Unavailable, 0);
      return;
    }
    const { workload } = this.env;
    const isRead = workload.isRead(req.input);
    let done: Promise<unknown>;
    try {
      if (isRead) done = journal.readBarrier();
      else done = journal.propose(workload.entry(req.input, { clientId: req.client, seq: req.seq, nowMs: this.clock!.wallNow() }));
    } catch (err) {
      this.failWith(req, err);
      return;
    }
    done.then(
      (result) => {
        if (!live()) return;
        const output = isRead ? this.sm.read(req.input) : workload.writeOutput(req.input, result);
        this.env.reply(req.client, { opId: req.opId, attempt: req.attempt, ok: true, output });
      },
      (err: unknown) => live() && this.failWith(req, err),
    );
  }

  private failWith(req: ClientRequest<I>, err: unknown): void {
    if (!(err instanceof CodedError)) {
      this.env.observer.onBug(this, err);
      return;
    }
    const leader = (err.details.leader as { id?: number } | undefined)?.id ?? 0;
    this.fail(req, err.code, leader);
  }

  private fail(req: ClientRequest<I>, code: string, leader: number): void {
    this.env.reply(req.client, { opId: req.opId, attempt: req.attempt, ok: false, leader, code });
  }

  isLeader(): boolean {
    return this.running() && this.raft.role === Role.Leader;
  }
}

const raftBugNames: ReadonlySet<string> = new Set(RaftBugs);

function isRaftBug(b: string): b is RaftBug {
  return raftBugNames.has(b);
}

// One simulated master: the Raft core driven the way the real journal drives it (persist, sync,
// send, apply, advance), a simulated disk, and the workload's state machine clients talk to.

import { CairnError } from '../errors.ts';
import { Raft, readAllSnapshotData, snapshotBytes, type RaftBug, type RaftConfig } from '../raft/index.ts';
import { EntryType, Role, type Entry, type Message, type Ready } from '../raft/index.ts';
import { TickClock } from '../journal/raft/tick-clock.ts';
import { SimDisk } from './disk.ts';
import type { Prng } from './prng.ts';
import type { ReplicatedMachine, SimWorkload } from './workload.ts';

/** Ready cycles without a disk wait in a row; more means the core never settles. */
const readyCyclesMax = 100;
/** Virtual milliseconds per tick. */
const tickMs = 10;

/** Rules of the driver that tests can switch off, beside the Raft core's own. */
export const driverBugs = ['no-fsync', 'no-snapshot-restore', 'lease-ticks-only'] as const;
export type DriverBug = (typeof driverBugs)[number];

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
}

export interface SimNodeEnv<I, O> {
  prng: Prng;
  now(): number;
  after(delayMs: number, run: () => void): void;
  send(m: Message): void;
  reply(client: number, r: ClientReply<O>): void;
  diskLatencyMs(node: AnySimNode): number;
  workload: SimWorkload<unknown, I, O>;
  observer: NodeObserver;
  raftConfig(id: number): Omit<RaftConfig, 'id' | 'rand'>;
  bugs: ReadonlySet<RaftBug | DriverBug>;
  /** Take a snapshot once this many entries were applied since the last one. */
  snapshotEveryEntries: number;
  trace?: (line: string) => void;
}

/** A node as the checkers see it: what they look at does not depend on the workload's types. */
export type AnySimNode = SimNode<unknown, unknown>;

export class SimNode<I, O> {
  readonly id: number;
  readonly disk = new SimDisk();
  raft!: Raft;
  sm: ReplicatedMachine<I, O>;
  alive = false;
  /** The last index the state machine holds; ahead of the core's applied index while a write is in flight. */
  smIndex = 0;
  /** Bumped on every crash, so that events scheduled before it are ignored after it. */
  incarnation = 0;
  private busy = false;
  private readonly env: SimNodeEnv<I, O>;
  private proposals = new Map<number, { term: number; req: ClientRequest<I> }[]>();
  private reads = new Map<number, ClientRequest<I>>();
  private readsWaiting: { index: number; req: ClientRequest<I> }[] = [];
  private nextReadId = 1;
  /** The real (virtual) time of recent ticks, for the lease check of the real driver. */
  private clock = new TickClock(tickMs, 1024, () => 0);
  /** While stalled (a GC pause, SIGSTOP) the node runs nothing: what arrives waits, in order. */
  private stalledUntil = 0;
  private stalledWork: { rank: number; run: () => void }[] = [];

  constructor(id: number, env: SimNodeEnv<I, O>) {
    this.id = id;
    this.env = env;
    this.sm = env.workload.newMachine();
  }

  start(): void {
    const { restored, tornBytes } = this.disk.load();
    this.clock = new TickClock(tickMs, 1024, () => this.env.now());
    const clock = this.clock;
    const cfg: RaftConfig = {
      ...this.env.raftConfig(this.id),
      id: this.id,
      // With the bug, the lease is counted in ticks only, which stop while the node stalls.
      leaseHolds: this.env.bugs.has('lease-ticks-only') ? undefined : (ticksAgo, windowTicks) => clock.within(ticksAgo, windowTicks),
      rand: (n) => this.env.prng.int(n),
      bugs: new Set([...this.env.bugs].filter((b): b is RaftBug => !(driverBugs as readonly string[]).includes(b))),
    };
    this.raft = new Raft(cfg, restored);
    this.sm = this.env.workload.newMachine();
    this.smIndex = this.raft.log.applied;
    // With the bug, a restarted node forgets to load its snapshot and applies the later entries to an empty state.
    if (restored.snapshot !== undefined && !this.env.bugs.has('no-snapshot-restore')) this.sm.restore(readAllSnapshotData(restored.snapshot.data));
    this.alive = true;
    this.busy = false;
    this.stalledUntil = 0;
    this.stalledWork = [];
    this.proposals.clear();
    this.reads.clear();
    this.readsWaiting = [];
    this.env.observer.onRestart(this, tornBytes);
    this.scheduleTick();
  }

  crash(tear: boolean): void {
    this.alive = false;
    this.incarnation++;
    this.disk.crash(this.env.prng, tear);
  }

  /**
   * Stops the node for `ms` of virtual time, as a process paused by the OS or a long GC: no ticks,
   * no messages handled, no disk completions. Then the work that piled up runs: the tick first (as
   * Node runs timers before I/O), then client requests, then the rest, each in arrival order (the
   * order in which a resumed process reads its sockets is not the order bytes arrived in; client
   * requests first is the order that tests a stale leader hardest).
   */
  stall(ms: number): void {
    if (!this.alive || this.stalled()) return;
    this.stalledUntil = this.env.now() + ms;
    const inc = this.incarnation;
    this.env.after(ms, () => {
      if (!this.alive || this.incarnation !== inc) return;
      this.stalledUntil = 0;
      const work = this.stalledWork;
      this.stalledWork = [];
      for (const w of work) w.run();
    });
  }

  stalled(): boolean {
    return this.env.now() < this.stalledUntil;
  }

  /** Runs `fn` now, or when the stall ends (`rank` 0 first: the tick, 1: client requests, 2: the rest). */
  private whenRunning(fn: () => void, rank: 0 | 1 | 2 = 2): boolean {
    if (!this.stalled()) return true;
    const at = this.stalledWork.findIndex((w) => w.rank > rank);
    this.stalledWork.splice(at === -1 ? this.stalledWork.length : at, 0, { rank, run: fn });
    return false;
  }

  receive(m: Message): void {
    if (!this.alive || !this.whenRunning(() => this.receive(m))) return;
    this.raft.step(m);
    this.pump();
  }

  handleClient(req: ClientRequest<I>): void {
    if (!this.alive || !this.whenRunning(() => this.handleClient(req), 1)) return;
    try {
      if (this.env.workload.isRead(req.input)) this.startRead(req);
      else this.proposeWrite(req);
    } catch (err) {
      if (!(err instanceof CairnError)) throw err;
      this.env.reply(req.client, { opId: req.opId, attempt: req.attempt, ok: false, leader: this.raft.leader, code: err.code });
    }
    this.pump();
  }

  /** The proposing node stamps the write with its clock, as a real master does; here the clock is virtual. */
  private proposeWrite(req: ClientRequest<I>): void {
    const data = this.env.workload.entry(req.input, { clientId: req.client, seq: req.seq, nowMs: this.env.now() });
    const { index, term } = this.raft.propose(data);
    const list = this.proposals.get(index) ?? [];
    list.push({ term, req });
    this.proposals.set(index, list);
  }

  private startRead(req: ClientRequest<I>): void {
    const id = this.nextReadId++;
    const ctx = new Uint8Array(4);
    new DataView(ctx.buffer).setUint32(0, id);
    this.raft.readIndex(ctx);
    this.reads.set(id, req);
  }

  private scheduleTick(): void {
    const inc = this.incarnation;
    this.env.after(tickMs, () => {
      if (!this.alive || this.incarnation !== inc) return;
      const tick = (): void => {
        this.clock.tick();
        this.raft.tick();
        this.pump();
        this.scheduleTick();
      };
      // A stalled interval timer fires once when the process resumes, before any I/O.
      if (this.whenRunning(tick, 0)) tick();
    });
  }

  /** Runs ready cycles while they are due: those that must sync wait for the disk, others run now. */
  pump(): void {
    for (let cycles = 0; this.alive && !this.busy && this.raft.hasReady(); cycles++) {
      if (cycles >= readyCyclesMax) throw new Error(`invariant violated: n${this.id} ready loop did not settle`);
      const rd = this.raft.ready();
      this.env.observer.onReady(this, rd);
      const noFsync = this.env.bugs.has('no-fsync');
      // As the real driver: a leader replicates while its own write is in flight, and committed
      // entries are applied without waiting for this node's write (the state machine is rebuilt
      // from snapshot and log after a crash). A moved commit index alone is not persisted.
      const early = noFsync || rd.sendBeforePersist;
      if (early) this.sendAll(rd.messages);
      this.apply(rd);
      if (!rd.mustSync) {
        this.finishReady(rd, noFsync, early);
        continue;
      }
      if (rd.snapshot !== undefined) this.disk.saveSnapshot(rd.snapshot);
      this.disk.write(rd.hardState, rd.entries);
      this.busy = true;
      const inc = this.incarnation;
      this.env.after(this.env.diskLatencyMs(this), () => {
        if (!this.alive || this.incarnation !== inc) return;
        const done = (): void => {
          this.finishReady(rd, noFsync, early);
          this.pump();
        };
        if (this.whenRunning(done)) done();
      });
    }
  }

  private finishReady(rd: Ready, noFsync: boolean, sent: boolean): void {
    // With the bug, the page cache reaches the disk only now and then.
    if (rd.mustSync && (!noFsync || this.env.prng.chance(0.3))) this.disk.sync();
    if (!sent) this.sendAll(rd.messages);
    this.raft.advance();
    this.busy = false;
    this.maybeSnapshot();
  }

  private sendAll(messages: Message[]): void {
    for (const m of messages) this.env.send(m);
  }

  private apply(rd: Ready): void {
    if (rd.snapshot !== undefined) {
      this.sm.restore(readAllSnapshotData(rd.snapshot.data));
      this.env.trace?.(`n${this.id} restored snapshot at ${rd.snapshot.meta.index}`);
      this.env.observer.onStateAt(this, rd.snapshot.meta.index);
    }
    if (rd.snapshot !== undefined) this.smIndex = rd.snapshot.meta.index;
    for (const e of rd.committed) {
      this.smIndex = e.index;
      this.env.observer.onApply(this, e);
      const result = e.type === EntryType.Normal && e.data.length > 0 ? this.sm.apply(e.index, e.data) : undefined;
      this.env.observer.onStateAt(this, e.index);
      this.answerProposals(e, result);
    }
    for (const rs of rd.readStates) {
      const id = new DataView(rs.context.buffer, rs.context.byteOffset, rs.context.byteLength).getUint32(0);
      const req = this.reads.get(id);
      if (req === undefined) continue;
      this.reads.delete(id);
      this.readsWaiting.push({ index: rs.index, req });
    }
    const applied = rd.committed.length > 0 ? rd.committed[rd.committed.length - 1].index : this.raft.log.applied;
    this.answerReads(Math.max(applied, rd.snapshot?.meta.index ?? 0));
  }

  private answerProposals(e: Entry, result: unknown): void {
    const list = this.proposals.get(e.index);
    if (list === undefined) return;
    this.proposals.delete(e.index);
    for (const p of list) {
      // Another leader's entry took this index: the proposal is lost, the client times out and retries.
      if (p.term !== e.term) continue;
      const output = this.env.workload.writeOutput(p.req.input, result);
      this.env.reply(p.req.client, { opId: p.req.opId, attempt: p.req.attempt, ok: true, output });
    }
  }

  private answerReads(applied: number): void {
    const still: { index: number; req: ClientRequest<I> }[] = [];
    for (const w of this.readsWaiting) {
      if (w.index > applied) {
        still.push(w);
        continue;
      }
      this.env.reply(w.req.client, { opId: w.req.opId, attempt: w.req.attempt, ok: true, output: this.sm.read(w.req.input) });
    }
    this.readsWaiting = still;
  }

  private maybeSnapshot(): void {
    const log = this.raft.log;
    const last = log.snapshot?.meta.index ?? 0;
    if (log.applied - last < this.env.snapshotEveryEntries) return;
    const keep = this.env.prng.int(8);
    this.raft.compact(log.applied, snapshotBytes(this.sm.snapshot()), keep);
    this.disk.saveSnapshot(log.snapshot!);
    if (this.env.bugs.has('no-fsync')) return;
    this.disk.sync();
    this.disk.compact(this.raft.hardState());
  }

  isLeader(): boolean {
    return this.alive && this.raft.role === Role.Leader;
  }
}

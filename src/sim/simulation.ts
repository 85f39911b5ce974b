// One deterministic simulation run: N Raft nodes replicating a workload's state machine (a key-value
// store, or the masters' metadata state machine), clients issuing its operations, and a seeded
// schedule of faults (crashes, torn writes, partitions, loss, slow disks, membership changes and
// leadership transfers). Checkers run on every step and at the end; the first violation stops the run.

import { CodedError, ErrorCode } from '../errors.ts';
import { isErrno } from '../io/index.ts';
import { driverBugNames } from '../journal/raft/driver.ts';
import { walBugNames } from '../journal/raft/wal.ts';
import { JournalErrorCode } from '../journal/raft/errors.ts';
import type { RaftBug } from '../raft/index.ts';
import { ConfChangeType, EntryType, RaftBugs, Role, decodeConfChange, type Entry, type HardState, type Message, type Ready } from '../raft/index.ts';
import { quorumSize } from '../raft/quorum.ts';
import { EventQueue } from './event-queue.ts';
import { EventTrace, type EventText } from './event-trace.ts';
import { kvWorkload } from './kv-workload.ts';
import { checkLinearizable, type Operation } from './linearizability.ts';
import { metaWorkload } from './meta-workload.ts';
import { SimNetwork, calmNetwork } from './network.ts';
import { SimNode, type AnySimNode, type ClientReply, type ClientRequest, type DiskBug, type JournalBug, type NodeObserver, type SimNodeEnv } from './node.ts';
import { Prng } from './prng.ts';
import { runEventsQuiescing } from './quiesce.ts';
import { clockDriftBound } from './sim-clock.ts';
import type { DurableLog } from './durable-log.ts';
import type { SimFs, SimFsOp } from './sim-fs.ts';
import { simAddress, type SimWire } from './sim-transport.ts';
import type { Handler } from '../rpc/handler.ts';
import { workloadForSeed, type SimWorkload, type WorkloadName } from './workload.ts';
import { runDataSimulation, type DataStats } from './data-simulation.ts';
import { replicaBugNames, type ReplicaBug } from '../worker/replication.ts';

export type SimBug = RaftBug | JournalBug | DiskBug | ReplicaBug;
/** Every rule the simulator can break: the core's, the driver's and the WAL's, a lying disk, and the data path's (the data workload's). */
export const simBugs: readonly SimBug[] = [...RaftBugs, 'no-fsync', ...driverBugNames, ...walBugNames, ...replicaBugNames];

export interface SimOptions {
  seed: number;
  /** Absent: the seed picks (workloadForSeed). */
  workload?: WorkloadName;
  bug?: SimBug;
  /** Virtual time with faults, then a calm phase in which the cluster must recover. */
  faultMs?: number;
  calmMs?: number;
  trace?: (line: string) => void;
}

export interface SimResult {
  seed: number;
  workload: WorkloadName;
  ok: boolean;
  /** The violated property and what showed it. */
  violation?: string;
  nodes: number;
  clientOps: number;
  committed: number;
  events: number;
  traceHash: string;
  lastEvents: string[];
  stats: SimStats;
  /** The data workload's own counts (its `stats` stay empty). */
  dataStats?: DataStats;
}

/** How often each fault and feature occurred: tests assert that the bounded runs exercise them all. */
export interface SimStats {
  elections: number;
  crashes: number;
  stalls: number;
  tornTailsRepaired: number;
  fsyncErrors: number;
  crashesMidRoll: number;
  crashesMidSnapshot: number;
  crashesMidRelease: number;
  bitFlips: number;
  disksFilled: number;
  diskFullHandoffs: number;
  refusedStarts: number;
  rebuilds: number;
  partitions: number;
  oneWayCuts: number;
  transfers: number;
  membershipChanges: number;
  snapshotsInstalled: number;
  readsServed: number;
  writesAcked: number;
}

export const emptyStats: SimStats = {
  elections: 0,
  crashes: 0,
  stalls: 0,
  tornTailsRepaired: 0,
  fsyncErrors: 0,
  crashesMidRoll: 0,
  crashesMidSnapshot: 0,
  crashesMidRelease: 0,
  bitFlips: 0,
  disksFilled: 0,
  diskFullHandoffs: 0,
  refusedStarts: 0,
  rebuilds: 0,
  partitions: 0,
  oneWayCuts: 0,
  transfers: 0,
  membershipChanges: 0,
  snapshotsInstalled: 0,
  readsServed: 0,
  writesAcked: 0,
};

class Violation extends Error {}

const clientTimeoutMs = 300;
/** Replicas' state hashes are compared at every index that is a multiple of this (and at the end). */
const stateHashEveryEntries = 16;

interface ClientState<I, O> {
  id: number;
  seq: number;
  op: Operation<I, O> | undefined;
  req: ClientRequest<I> | undefined;
  leaderGuess: number;
  completedAfterCalm: number;
  /** Reads only when a fault sends it (see probeStalledLeader), and has no operation loop of its own. */
  probe?: boolean;
}

export function runSimulation(opts: SimOptions): Promise<SimResult> {
  const name = opts.workload ?? workloadForSeed(opts.seed);
  if (name === 'data') return runDataSimulation(opts);
  return name === 'meta' ? runWorkload(opts, metaWorkload) : runWorkload(opts, kvWorkload);
}

/** Runs one seed with the given workload (tests pass a deliberately broken one to see the checkers fail). */
export function runWorkload<S, I, O>(opts: SimOptions, workload: SimWorkload<S, I, O>): Promise<SimResult> {
  return new Simulation(opts, workload).run();
}

class Simulation<S, I, O> implements NodeObserver, SimWire {
  private readonly workload: SimWorkload<S, I, O>;
  private readonly prng: Prng;
  private readonly faultPrng: Prng;
  private readonly queue = new EventQueue();
  private readonly net: SimNetwork;
  private readonly nodes = new Map<number, SimNode<I, O>>();
  private readonly clients: ClientState<I, O>[] = [];
  private readonly history: Operation<I, O>[] = [];
  private readonly opts: Required<Omit<SimOptions, 'bug' | 'trace' | 'workload'>> & SimOptions;
  private readonly bugs: ReadonlySet<RaftBug | JournalBug | DiskBug>;
  private readonly slowDisk = new Set<number>();
  private nextOpId = 1;
  private readonly stats: SimStats = { ...emptyStats };
  private bootstrapEntries = 0;
  /** The last events, as a ring: their texts are built only when a report or a trace needs them. */
  private readonly trace: EventTrace;
  /** The first violation found; kept here too because a check may fail inside production code that catches errors. */
  private violation: Violation | undefined;
  /** Nodes whose disk is full now. */
  private readonly filled = new Set<number>();
  /** Nodes whose next fsync fails with EIO. */
  private readonly fsyncFailing = new Set<number>();
  /** Nodes to crash at the next disk operation of a kind: in a segment roll, a snapshot write, a segment release. */
  private readonly crashPoints = new Map<number, CrashPoint>();
  /** What each crashed node left on its disk: a restart must find at least this (term, vote, log). */
  private readonly durableAtCrash = new Map<number, { hardState: HardState; last: { index: number; term: number } }>();
  /**
   * A rotted node's log as it was before the bit flipped: its acknowledgements were honest, the
   * flip lost a replica (the fault), not a promise, so the checkers count what it held.
   */
  private readonly beforeRot = new Map<number, ReturnType<DurableLog['freeze']>>();
  /** Nodes whose disk rotted while down, with the file hit: they may refuse to start, naming it. */
  private readonly damaged = new Map<number, string>();
  /** Nodes that refused to start: the cluster removes them, they are wiped and added back (docs/masters.md). */
  private readonly refused = new Set<number>();
  /** Rebuilt nodes (under new ids) not yet voters. */
  private readonly rejoining = new Set<number>();
  /** Ids removed from the cluster: never added again (a removed id is never reused). */
  private readonly removedIds = new Set<number>();
  /** Refused nodes whose removal is being proposed, and those whose removal has committed. */
  private readonly removing = new Map<number, { node: AnySimNode; incarnation: number }>();
  private readonly adding = new Map<number, { node: AnySimNode; incarnation: number }>();
  private readonly removalCommitted = new Set<number>();
  /** Nodes whose data was set aside after a refused start: never started again. */
  private readonly retired = new Set<number>();
  /** The newest acknowledged write, and which node acknowledged it. */
  private lastWrite: { input: I; at: number; node: number } | undefined;
  /** Clients that read from stalled leaders (probeStalledLeader). */
  private readonly probes: ClientState<I, O>[] = [];
  /** With the clock-drift family: a client that writes through a new leader and two that read from the old one (probeIsolatedLeader). */
  private readonly driftProbes: ClientState<I, O>[] = [];
  /** Starts a node with a new id (set up by run()). */
  private newNode: (id: number) => SimNode<I, O> = () => {
    throw new Error('invariant violated: newNode before run');
  };

  // what the checkers know
  private leaderOfTerm = new Map<number, number>();
  private committedTerm: number[] = [0];
  /** The term of the node that committed each index, as first seen (a follower's may be later). */
  private committedInTerm: number[] = [0];
  private appliedData = new Map<number, Uint8Array>();
  private checkedCommit = new Map<number, number>();
  /** The state hash of the first replica seen at an index, and which node it was. */
  private stateAt = new Map<number, { node: number; hash: string }>();
  /** The leader's commit index shortly before the end: every member must have applied it. */
  private commitMark = 0;
  private calmAtMs: number;
  /** Longest pause between two faults: some seeds are storms, some drizzle. */
  private faultGapMs = 300;
  /** The targeted fault family of this seed, if any (gapFamilyFor), and its own random stream. */
  private readonly family: GapFamily | undefined;
  private readonly gapPrng: Prng;
  /** With the snapshot-replay family: the chunks of the newest snapshot transfer to each node, to deliver again later. */
  private readonly snapStreams = new Map<number, { index: number; delivers: (() => void)[] }>();
  /** A partition that a targeted fault needs to last: heals by other faults leave it in place. */
  private heldPartition: { a: number[]; b: number[]; untilMs: number } | undefined;
  /** No other faults until then: a targeted scenario is playing out. */
  private scenarioUntilMs = 0;

  constructor(opts: SimOptions, workload: SimWorkload<S, I, O>) {
    this.workload = workload;
    this.opts = { ...opts, faultMs: opts.faultMs ?? 6000, calmMs: opts.calmMs ?? 4000 };
    this.prng = new Prng(opts.seed);
    this.faultPrng = this.prng.fork();
    this.net = new SimNetwork(this.queue, this.prng.fork());
    this.trace = new EventTrace(() => this.queue.nowMs, opts.trace);
    // The data path's bugs have nothing to break here.
    this.bugs = new Set(opts.bug !== undefined && !(replicaBugNames as readonly string[]).includes(opts.bug) ? [opts.bug as RaftBug | JournalBug | DiskBug] : []);
    this.calmAtMs = this.opts.faultMs;
    this.family = gapFamilyFor(opts.seed);
    this.gapPrng = new Prng(gapSeed(opts.seed));
  }

  async run(): Promise<SimResult> {
    const family = this.family;
    let nodeCount = this.prng.range(3, 7);
    let voterCount = nodeCount >= 5 && this.prng.chance(0.5) ? 5 : 3;
    // A read quorum one short only shows with 5 voters (with 3, one answer is a majority either way).
    if (family === 'minority-stall') [nodeCount, voterCount] = [Math.max(nodeCount, 5), 5];
    const founders = new Map(Array.from({ length: voterCount }, (_, i) => [i + 1, simAddress(i + 1)] as const));
    this.bootstrapEntries = voterCount;
    const nodeEnvPrng = this.prng.fork();
    // Small appends split batches, so that acks cover old-term entries without the new leader's own.
    const appendBytesMax = this.prng.pick([1, 1, 256, 4096]);
    // Check-quorum stays on: without it a removed node that never heard of its removal disrupts
    // the cluster forever with ever higher terms (Raft thesis §4.2.3).
    // A follower cut off with a stalled leader stays in its term only with pre-vote; and without it,
    // a fast clock with a stale log keeps raising the term before a slow one with the newest log campaigns.
    const preVote = this.prng.chance(0.7) || family === 'minority-stall' || family === 'clock-drift';
    const leaseRead = family === 'minority-stall' ? false : family === 'clock-drift' || this.prng.chance(0.5);
    const clockDriftMax = family === 'clock-drift' ? driftFamilyBound : clockDriftBound;
    this.faultGapMs = this.prng.pick([80, 150, 300, 600]);
    const checkpointKeepEntries = this.prng.int(8);
    // Small segments, so that rolls, releases and their crashes happen in every run.
    const walSegmentBytesMax = this.prng.pick([512, 2048, 16384]);
    const journal: SimNodeEnv<I, O>['journal'] = {
      electionTicks: 10,
      heartbeatTicks: 2,
      // More checkpoints, so that a follower has compacted past a snapshot delivered again.
      checkpointEveryEntries: family === 'snapshot-replay' ? 16 : 40,
      checkpointKeepEntries,
      proposalTimeoutMs: 1000,
      leaseRead,
      walSegmentBytesMax,
      diskReserveBytes: diskReserveBytes,
      diskCheckMs: 50,
      raftTuning: { snapshotChunkBytes: 256, appendBytesMax, preVote, inflightMsgsMax: 8, clockDriftMax },
    };
    this.newNode = (id) => {
      const drift = this.prng.float() * 2 - 1;
      const rate = 1 + (family === 'clock-drift' ? driftFamilyDrift(id, drift) : drift) * clockDriftMax;
      const env: SimNodeEnv<I, O> = {
        prng: nodeEnvPrng,
        workload: this.workload,
        now: () => this.queue.nowMs,
        after: (d, what, run) => this.queue.after(d, () => this.event(what, run, id)),
        wire: this,
        reply: (client, r) => this.sendReply(id, client, r),
        syncLatencyMs: (n) => (this.slowDisk.has(n.id) ? this.prng.range(20, 80) : this.prng.range(1, 4)),
        syncFails: (n) => this.fsyncFailing.delete(n.id),
        onDiskOp: (n, op, path) => this.onDiskOp(n, op, path),
        observer: this,
        founders: (nid) => (nid <= voterCount ? founders : new Map()),
        journal,
        bugs: this.bugs,
        clockDriftMax,
      };
      const node = new SimNode<I, O>(id, env, rate, this.prng.range(0, 1_000_000));
      this.nodes.set(id, node);
      node.start();
      return node;
    };
    for (let id = 1; id <= nodeCount; id++) this.newNode(id);
    const clientCount = this.prng.range(2, 5);
    for (let c = 1; c <= clientCount; c++) {
      const client: ClientState<I, O> = { id: c, seq: 0, op: undefined, req: undefined, leaderGuess: 0, completedAfterCalm: 0 };
      this.clients.push(client);
      this.queue.after(this.prng.range(0, 50), () => this.event(`c${c}`, () => this.nextOp(client)));
    }
    for (let i = 1; i <= probeClients; i++) {
      const probe: ClientState<I, O> = { id: clientCount + i, seq: 0, op: undefined, req: undefined, leaderGuess: 0, completedAfterCalm: 0, probe: true };
      this.probes.push(probe);
      this.clients.push(probe);
    }
    for (let i = 1; family === 'clock-drift' && i <= probeClients; i++) {
      const probe: ClientState<I, O> = { id: this.clients.length + 1, seq: 0, op: undefined, req: undefined, leaderGuess: 0, completedAfterCalm: 0, probe: true };
      this.driftProbes.push(probe);
      this.clients.push(probe);
    }
    this.scheduleFault();
    this.queue.at(this.calmAtMs, () => this.event('calm', () => this.calm()));
    const endMs = this.opts.faultMs + this.opts.calmMs;
    this.queue.at(endMs - 1000, () => this.event('mark commit', () => (this.commitMark = this.leaderNode()?.raft.log.committed ?? 0)));
    try {
      await runEventsQuiescing(() => this.violation === undefined && this.queue.runNext(endMs));
      if (this.violation !== undefined) throw this.violation;
      this.checkEnd();
      return this.result(undefined);
    } catch (err) {
      const v = this.violation ?? err;
      if (v instanceof Violation) return this.result(v.message);
      const e = v as Error;
      return this.result(`crash: ${e.stack ?? e.message}`);
    }
  }

  private result(violation: string | undefined): SimResult {
    return {
      seed: this.opts.seed,
      workload: this.workload.name,
      ok: violation === undefined,
      violation,
      nodes: this.nodes.size,
      clientOps: this.history.length,
      committed: this.committedTerm.length - 1,
      events: this.trace.events,
      traceHash: this.trace.hashHex(),
      lastEvents: this.trace.recentEvents(),
      stats: this.stats,
    };
  }

  /**
   * Every event goes through here: it is counted, hashed into the trace, and traced. An event whose
   * text is built lazily (messages, timers: most events) is hashed by its time and `key` instead.
   */
  private event(what: EventText, run: () => void, key = 0): void {
    this.trace.event(what, key);
    run();
  }

  private remember(what: EventText): void {
    this.trace.remember(what);
  }

  private count(name: keyof SimStats): void {
    this.stats[name]++;
  }

  private fail(property: string, detail: string): never {
    throw this.report(property, detail);
  }

  /** Records a violation without throwing: for callbacks that run inside the production code's promises. */
  private report(property: string, detail: string): Violation {
    const v = new Violation(`${property}: ${detail}`);
    this.violation ??= v;
    return v;
  }

  // ---- network -------------------------------------------------------------------------------

  send(from: number, to: number, what: () => string, deliver: () => void): void {
    const node = this.nodes.get(to);
    if (node === undefined) return;
    if (this.family === 'snapshot-replay') this.recordSnapshotChunk(to, what(), deliver);
    this.net.send(from, to, () => this.event(() => `n${from}->n${to} ${what()}`, () => node.deliver(deliver), from * 1024 + to));
  }

  handler(node: number, method: string): Handler | undefined {
    const n = this.nodes.get(node);
    return n?.alive ? n.transport?.handlers.get(method) : undefined;
  }

  later(node: number, ms: number, fn: () => void): void {
    this.nodes.get(node)?.laterCurrent(ms, fn);
  }

  describe(method: string, body: unknown): string {
    const msgs = (body as { msgs?: Message[] } | undefined)?.msgs;
    return method === 'raft.step' && Array.isArray(msgs) ? msgs.map(describeMessage).join(', ') : method;
  }

  private sendReply(from: number, client: number, r: ClientReply<O>): void {
    // Clients sit outside the partitions but their links still lose and delay messages.
    this.queue.after(this.prng.range(1, 5), () => {
      if (this.prng.chance(this.net.conditions.dropRate / 2)) return;
      this.event(`n${from}->c${client} reply op${r.opId}${r.ok ? ' ok' : ` ${r.code}`}`, () => this.onReply(this.clients[client - 1], r, from));
    });
  }

  // ---- clients -------------------------------------------------------------------------------

  private nextOp(c: ClientState<I, O>): void {
    const opId = this.nextOpId++;
    const input = this.workload.nextInput(this.prng, c);
    // Only writes take a seq: one op in flight per client, so seq n+1 goes out once seq n is answered.
    if (!this.workload.isRead(input)) c.seq++;
    c.op = { clientId: c.id, input, call: this.queue.nowMs, ret: Infinity, output: undefined };
    this.history.push(c.op);
    c.req = { opId, attempt: 0, client: c.id, seq: c.seq, input };
    this.sendRequest(c);
  }

  private sendRequest(c: ClientState<I, O>): void {
    const req = c.req!;
    req.attempt++;
    const ids = [...this.nodes.keys()].filter((id) => !this.retired.has(id));
    // Reads sometimes go to any node (a follower answers NOT_LEADER); a probe's first try goes where it was sent.
    const spread = this.workload.isRead(req.input) && this.prng.chance(0.3) && !(c.probe === true && req.attempt === 1);
    const target = c.leaderGuess !== 0 && !spread ? c.leaderGuess : this.prng.pick(ids);
    const node = this.nodes.get(target)!;
    const sent = { ...req };
    const what = `c${c.id}->n${target} ${this.workload.describe(req.input)} op${req.opId}#${req.attempt}`;
    this.queue.after(this.prng.range(1, 5), () => this.event(what, () => node.handleClient(sent)));
    const attempt = req.attempt;
    this.queue.after(clientTimeoutMs, () =>
      this.event(`c${c.id} timeout op${req.opId}#${attempt}`, () => {
        if (c.req?.opId !== req.opId || c.req.attempt !== attempt) return;
        c.leaderGuess = 0;
        this.sendRequest(c);
      }),
    );
  }

  private onReply(c: ClientState<I, O>, r: ClientReply<O>, from: number): void {
    const req = c.req;
    if (req === undefined || req.opId !== r.opId) return; // an answer to an op already done
    if (!r.ok) {
      if (r.attempt !== req.attempt) return;
      c.leaderGuess = r.code === ErrorCode.NotLeader ? r.leader : 0;
      this.queue.after(r.leader === 0 ? 20 : 1, () => this.event(`c${c.id} retry op${req.opId}`, () => this.retryIfCurrent(c, req.opId, r.attempt)));
      return;
    }
    const op = c.op!;
    op.ret = this.queue.nowMs;
    op.output = r.output;
    c.op = undefined;
    c.req = undefined;
    if (op.call >= this.calmAtMs) c.completedAfterCalm++;
    this.count(this.workload.isRead(req.input) ? 'readsServed' : 'writesAcked');
    if (!this.workload.isRead(req.input)) this.lastWrite = { input: req.input, at: this.queue.nowMs, node: from };
    if (c.probe) return;
    this.queue.after(this.prng.range(0, 20), () => this.event(`c${c.id} next`, () => this.nextOp(c)));
  }

  private retryIfCurrent(c: ClientState<I, O>, opId: number, attempt: number): void {
    if (c.req?.opId === opId && c.req.attempt === attempt) this.sendRequest(c);
  }

  // ---- faults --------------------------------------------------------------------------------

  private scheduleFault(): void {
    const p = this.faultPrng;
    this.queue.after(p.range(this.faultGapMs / 10, this.faultGapMs), () => {
      if (this.queue.nowMs >= this.calmAtMs) return;
      this.event('fault', () => this.injectFault());
      this.scheduleFault();
    });
  }

  private injectFault(): void {
    // A targeted scenario plays out undisturbed.
    if (this.queue.nowMs < this.scenarioUntilMs) return;
    if (this.family !== undefined && this.gapPrng.chance(gapFaultShare)) {
      this.injectGapFault(this.family);
      return;
    }
    const p = this.faultPrng;
    const roll = p.int(100);
    if (roll < 13) this.crash(this.randomNode());
    else if (roll < 26) this.crash(this.leaderNode() ?? this.randomNode());
    else if (roll < 35) this.randomPartition();
    else if (roll < 48) this.isolateLeader();
    else if (roll < 57) this.degradeNetwork();
    else if (roll < 63) this.slowDownDisk();
    else if (roll < 70) this.transferLeader();
    else if (roll < 78) this.stall(this.faultPrng.chance(0.7) ? (this.leaderNode() ?? this.randomNode()) : this.randomNode());
    else if (roll < 82) this.failFsync(this.faultPrng.chance(0.5) ? (this.leaderNode() ?? this.randomNode()) : this.randomNode());
    else if (roll < 88) this.armCrashPoint(this.faultPrng.chance(0.5) ? (this.leaderNode() ?? this.randomNode()) : this.randomNode());
    else if (roll < 93) this.rot();
    else if (roll < 96) this.fillDisk(this.faultPrng.chance(0.6) ? (this.leaderNode() ?? this.randomNode()) : this.randomNode());
    else this.changeMembership();
  }

  /**
   * Now and then a new leader fails right after taking writes, leaving entries of its term on too
   * few nodes: the raw material of the cases Raft §5.4.2 is about (Figure 8).
   */
  private maybeCutShortLeadership(node: AnySimNode): void {
    const p = this.faultPrng;
    if (this.queue.nowMs >= this.calmAtMs || !p.chance(0.3)) return;
    const inc = node.incarnation;
    this.queue.after(p.range(0, 15), () =>
      this.event(`cut short n${node.id}`, () => {
        if (node.incarnation !== inc || this.queue.nowMs >= this.calmAtMs) return;
        if (p.chance(0.3)) this.crash(node);
        else {
          const others = [...this.nodes.keys()].filter((id) => id !== node.id);
          this.net.partition([node.id], others);
          this.remember(`isolate new leader n${node.id}`);
          this.scheduleHeal();
        }
      }),
    );
  }

  private randomNode(): SimNode<I, O> {
    return this.faultPrng.pick([...this.nodes.values()]);
  }

  /** Pauses a node (GC, SIGSTOP): long enough, often, for the others to elect a new leader. */
  private stall(node: AnySimNode): void {
    const ms = this.faultPrng.range(20, 800);
    this.remember(`stall n${node.id} for ${ms}ms`);
    this.count('stalls');
    const wasLeader = node.isLeader();
    node.stall(ms);
    if (wasLeader && ms > 300) for (const c of this.probes) this.probeStalledLeader(c, node, ms);
  }

  /**
   * While a leader is stalled long enough for another to be elected and take writes, a client that
   * still trusts it (idle since its last answer, say) sends it a read: when it resumes, its lease
   * must have run out in real time, or the read returns what the new leader has overwritten.
   */
  private probeStalledLeader(c: ClientState<I, O>, node: AnySimNode, stallMs: number): void {
    if (c.op !== undefined) return;
    const stalledAt = this.queue.nowMs;
    const at = this.faultPrng.range(250, stallMs - 20);
    this.queue.after(at, () =>
      this.event(`c${c.id} probes n${node.id}`, () => {
        if (c.op !== undefined) return;
        // It reads what the newest write acknowledged by another node changed, if one came in the stall.
        const w = this.lastWrite;
        let input: I | undefined = w !== undefined && w.at > stalledAt && w.node !== node.id ? this.workload.readAfter(w.input) : undefined;
        for (let i = 0; i < 32 && input === undefined; i++) {
          const x = this.workload.nextInput(this.faultPrng, c);
          if (this.workload.isRead(x)) input = x;
        }
        if (input === undefined) return;
        this.sendProbe(c, node, input);
      }),
    );
  }

  /** A probe client sends `input` to `node`, as one that trusts it as the leader. */
  private sendProbe(c: ClientState<I, O>, node: AnySimNode, input: I): void {
    if (!this.workload.isRead(input)) c.seq++;
    c.op = { clientId: c.id, input, call: this.queue.nowMs, ret: Infinity, output: undefined };
    this.history.push(c.op);
    c.req = { opId: this.nextOpId++, attempt: 0, client: c.id, seq: c.seq, input };
    c.leaderGuess = node.id;
    this.sendRequest(c);
  }

  // ---- targeted fault families ---------------------------------------------------------------

  private injectGapFault(family: GapFamily): void {
    if (family === 'minority-stall') this.stallOnMinority();
    else if (family === 'snapshot-replay') this.replaySnapshot();
    else this.isolateSlowLeader();
  }

  /**
   * Stalls the leader while it and followers, one short of a majority, are cut off from the other
   * voters (a GC pause during a partition). The followers, with pre-vote, stay in the leader's
   * term; when the leader resumes, probe clients read from it what the majority side wrote
   * meanwhile: a read that side confirms is stale.
   */
  private stallOnMinority(): void {
    const p = this.gapPrng;
    const leader = this.leaderNode();
    if (leader === undefined) return;
    const voters = leader.raft.confState().voters;
    const followers = voters.filter((v) => v !== leader.id && this.nodes.get(v)!.running());
    // The largest minority, with every other voter up to elect a leader and take writes meanwhile
    // (with an even number of voters, one short of a majority is half, which leaves the rest short too).
    if (voters.length < 5 || voters.length % 2 === 0 || followers.length < voters.length - 1) return;
    const side = [leader.id];
    while (side.length < Math.floor(voters.length / 2)) side.push(followers.splice(p.int(followers.length), 1)[0]);
    const others = [...this.nodes.keys()].filter((id) => !side.includes(id));
    const ms = p.range(450, 800);
    this.holdPartition(side, others, ms + p.range(100, 400));
    this.count('partitions');
    this.remember(`stall n${leader.id} for ${ms}ms, cut off with its followers: [${side}] | [${others}]`);
    this.count('stalls');
    leader.stall(ms);
    for (const c of this.probes) this.probeStalledLeader(c, leader, ms);
  }

  /** Keeps the messages of the newest snapshot transfer to each node (a transfer that starts over replaces them). */
  private recordSnapshotChunk(to: number, what: string, deliver: () => void): void {
    const m = /snap@(\d+)\+(\d+)/.exec(what);
    if (m === null) return;
    const index = Number(m[1]);
    let s = this.snapStreams.get(to);
    if (s === undefined || s.index !== index || m[2] === '0') this.snapStreams.set(to, (s = { index, delivers: [] }));
    if (s.delivers.length < snapshotReplayChunksMax) s.delivers.push(deliver);
  }

  /**
   * The network delivers a whole snapshot transfer to a node again, late (delayed duplicates):
   * by then the node has usually applied and compacted past it, and must not install it.
   */
  private replaySnapshot(): void {
    const targets = [...this.snapStreams].filter(([id]) => this.nodes.get(id)!.running());
    if (targets.length === 0) return;
    const [id, stream] = this.gapPrng.pick(targets);
    this.snapStreams.delete(id);
    const node = this.nodes.get(id)!;
    this.remember(`deliver ${stream.delivers.length} snapshot messages (snap@${stream.index}) to n${id} again`);
    stream.delivers.forEach((d, i) => this.queue.after(1 + i, () => this.event(`n${id} gets snap@${stream.index} again`, () => node.deliver(d))));
  }

  /**
   * Cuts off a lease-read leader whose clock runs slow (at the edge of the bound), and moves
   * leadership to such a node when the leader's runs fast. A client that learned of the new leader
   * writes through it, and the probe clients, which still trust the old one, then read from it
   * what that write changed: its lease must have run out by then on the fastest follower's clock.
   */
  private isolateSlowLeader(): void {
    const p = this.gapPrng;
    const leader = this.leaderNode();
    if (leader === undefined) return;
    if (leader.clockRate >= 1) {
      const slow = leader.raft.confState().voters.filter((v) => this.nodes.get(v)!.clockRate < 1 && this.nodes.get(v)!.running());
      if (slow.length === 0) return;
      const to = p.pick(slow);
      this.remember(`transfer leader n${leader.id} -> n${to} (slow clock)`);
      this.count('transfers');
      leader.journal!.transferLeader(to).catch((err: unknown) => this.expectCoded(leader, err));
      // Once it leads and its lease stands, it is cut off.
      const ms = p.range(100, 300);
      this.scenarioUntilMs = this.queue.nowMs + ms;
      this.queue.after(ms, () => this.event('isolate slow-clock leader?', () => this.queue.nowMs < this.calmAtMs && this.leaderNode()?.clockRate! < 1 && this.isolateSlowLeader()));
      return;
    }
    // The others must be able to elect a leader at once.
    const voters = leader.raft.confState().voters;
    if (voters.filter((v) => v !== leader.id && this.nodes.get(v)!.running()).length < Math.floor(voters.length / 2) + 1) return;
    const others = [...this.nodes.keys()].filter((id) => id !== leader.id);
    this.holdPartition([leader.id], others, p.range(300, 600));
    this.remember(`isolate slow-clock leader n${leader.id}: [${leader.id}] | [${others}]`);
    this.count('partitions');
    this.probeIsolatedLeader(leader, this.queue.nowMs, isolatedProbePolls);
  }

  /**
   * Every few ms: while another node leads, the first probe writes through it, again and again
   * (many namespace operations fail and change nothing); after each write acknowledged by another
   * node, the other probes read from `old` what it changed.
   */
  private probeIsolatedLeader(old: AnySimNode, since: number, polls: number, readAfterMs = since): void {
    const [writer, ...readers] = this.driftProbes;
    this.queue.after(isolatedProbePollMs, () =>
      this.event(`probes watch n${old.id}`, () => {
        const w = this.lastWrite;
        let readFor = readAfterMs;
        if (w !== undefined && w.at > readFor && w.node !== old.id) {
          readFor = w.at;
          const input = this.workload.readAfter(w.input);
          for (const c of readers) if (c.op === undefined) this.sendProbe(c, old, input);
        }
        const leader = this.leaderNode();
        if (leader !== undefined && leader !== old && writer.op === undefined) {
          for (let i = 0; i < 32; i++) {
            const x = this.workload.nextInput(this.gapPrng, writer);
            if (this.workload.isRead(x)) continue;
            this.sendProbe(writer, leader, x);
            break;
          }
        }
        if (polls > 1 && this.queue.nowMs < this.calmAtMs) this.probeIsolatedLeader(old, since, polls - 1, readFor);
      }),
    );
  }

  private crash(node: AnySimNode, tearable = true): void {
    const p = this.faultPrng;
    if (!node.alive) return;
    const tear = tearable && p.chance(0.5);
    this.remember(`crash n${node.id}${tear ? ' (torn write)' : ''}`);
    this.count('crashes');
    // What was synced before the crash: a torn write may leave more, but nothing of it was promised.
    this.durableAtCrash.set(node.id, { hardState: node.durable.hardState(), last: node.durable.lastDurable() });
    node.crash(tear);
    this.crashPoints.delete(node.id);
    const inc = node.incarnation;
    this.queue.after(p.range(20, 1500), () =>
      this.event(`restart n${node.id}`, () => {
        if (!node.alive && node.incarnation === inc && !this.refused.has(node.id) && !this.retired.has(node.id)) node.start();
      }),
    );
  }

  /** The node crashes at its next disk operation of a kind: mid segment roll, mid snapshot write (checkpoint or install), mid release. */
  private armCrashPoint(node: AnySimNode): void {
    if (!node.running()) return;
    const point = this.faultPrng.pick(crashPointDraws);
    this.remember(`n${node.id} will crash in its next ${point}`);
    this.crashPoints.set(node.id, point);
  }

  private onDiskOp(node: AnySimNode, op: SimFsOp, path: string): void {
    const point = this.crashPoints.get(node.id);
    if (point === undefined || !matchesCrashPoint(point, op, path)) return;
    this.crashPoints.delete(node.id);
    this.count(point === 'roll' ? 'crashesMidRoll' : point === 'snapshot' ? 'crashesMidSnapshot' : 'crashesMidRelease');
    const inc = node.incarnation;
    // The operation itself goes ahead; the process dies before anything after it.
    this.queue.after(0, () => this.event(`crash n${node.id} during ${op} ${path}`, () => node.incarnation === inc && this.crash(node)));
  }

  /**
   * A node's disk fills up (another tenant, a runaway log), leaving less than the journal's reserve
   * or nothing at all, then space comes back. The node must refuse writes with CAIRN_DISK_FULL and,
   * if it leads, hand leadership over; it must lose nothing and resume by itself.
   */
  private fillDisk(node: AnySimNode): void {
    if (this.filled.has(node.id)) return;
    const free = this.faultPrng.chance(0.5) ? 0 : this.faultPrng.int(diskReserveBytes);
    node.fs.fill(free);
    this.filled.add(node.id);
    this.remember(`disk of n${node.id} full (${free} bytes free)`);
    this.count('disksFilled');
    this.queue.after(this.faultPrng.range(200, 1500), () => this.event(`disk of n${node.id} has space again`, () => this.unfill(node)));
  }

  private unfill(node: AnySimNode): void {
    node.fs.unfill();
    this.filled.delete(node.id);
  }

  /**
   * A bit flips at rest on a node that is down: in a WAL segment (not in the last record of the
   * last one, where damage cannot be told from a torn write) or a snapshot file. The node must find
   * it: start without it (an older snapshot), or refuse to start naming the file.
   */
  private rot(): void {
    const p = this.faultPrng;
    // One damaged node at a time: losing the data of a majority is beyond what any quorum system survives.
    if (this.damaged.size > 0 || this.refused.size > 0 || this.rejoining.size > 0) return;
    const down = [...this.nodes.values()].filter((n) => !n.alive);
    if (down.length === 0) return;
    const node = p.pick(down);
    const targets = flippable(node.fs, node.dir);
    if (targets.length === 0) return;
    // Half the time the last segment, where damage must not be taken for a torn tail.
    const lastSegment = targets.filter((t) => t.last);
    const t = lastSegment.length > 0 && p.chance(0.5) ? lastSegment[0] : p.pick(targets);
    const offset = p.int(t.bytes);
    this.beforeRot.set(node.id, node.durable.freeze());
    node.fs.flipBit(t.path, offset, p.int(8));
    this.damaged.set(node.id, t.path);
    this.remember(`bit flip in ${t.path} at ${offset} (n${node.id} is down)`);
    this.count('bitFlips');
  }

  /** Removes a node that refused to start, wipes it, starts it empty and adds it back: the documented rebuild. */
  private scheduleRebuild(): void {
    this.queue.after(100, () => this.event('rebuild', () => this.rebuildStep()));
  }

  /**
   * A membership call for `id` is in flight on the current leader's process. One on a process that
   * died never settles, and one on a deposed leader only times out: then the current leader is asked.
   */
  private settling(calls: Map<number, { node: AnySimNode; incarnation: number }>, id: number, leader: AnySimNode): boolean {
    const c = calls.get(id);
    return c !== undefined && c.node === leader && c.node.alive && c.node.incarnation === c.incarnation;
  }

  private rebuildStep(): void {
    if (this.refused.size === 0 && this.rejoining.size === 0) return;
    this.scheduleRebuild();
    const leader = this.leaderNode();
    if (leader === undefined) return;
    for (const id of this.refused) {
      // Only a committed removal counts (a removal the leader has only proposed may be rolled back).
      if (!this.removalCommitted.has(id)) {
        // A call on a process that died since never settles: then ask the current leader again.
        if (this.settling(this.removing, id, leader)) continue;
        this.removing.set(id, { node: leader, incarnation: leader.incarnation });
        leader
          .journal!.removeMember(id)
          .then(
            () => this.removalCommitted.add(id),
            (err: unknown) => {
              this.remember(`removing n${id} failed: ${err instanceof Error ? err.message : String(err)}`);
              this.expectCoded(leader, err);
            },
          )
          .finally(() => this.removing.delete(id));
        continue;
      }
      // Its disk is set aside for good; the machine comes back empty under a new id.
      this.refused.delete(id);
      this.retired.add(id);
      const fresh = this.newNode(Math.max(...this.nodes.keys()) + 1);
      this.rejoining.add(fresh.id);
      this.remember(`rebuild n${id}: removed; its data is set aside; n${fresh.id} starts empty in its place`);
      this.count('rebuilds');
    }
    const { conf } = leader.raft.status();
    for (const id of this.rejoining) {
      if (conf.voters.includes(id)) this.rejoining.delete(id);
      else if (this.nodes.get(id)!.running() && !this.settling(this.adding, id, leader)) {
        this.adding.set(id, { node: leader, incarnation: leader.incarnation });
        leader
          .journal!.addMember(id, simAddress(id))
          .catch((err: unknown) => this.expectCoded(leader, err))
          .finally(() => this.adding.delete(id));
      }
    }
  }

  private randomPartition(): void {
    const p = this.faultPrng;
    const ids = [...this.nodes.keys()];
    const shuffled = [...ids].sort(() => p.float() - 0.5);
    const cut = p.range(1, ids.length - 1);
    const a = shuffled.slice(0, cut);
    const b = shuffled.slice(cut);
    if (p.chance(0.3)) {
      const from = p.pick(a);
      const to = p.pick(b);
      this.net.cutLink(from, to);
      this.remember(`cut link n${from}>n${to}`);
      this.count('oneWayCuts');
    } else {
      this.net.partition(a, b);
      this.remember(`partition [${a}] | [${b}]`);
      this.count('partitions');
    }
    this.scheduleHeal();
  }

  /** Cuts the leader (and perhaps one follower) off: it keeps taking writes it cannot commit. */
  private isolateLeader(): void {
    const leader = this.leaderNode();
    if (leader === undefined) return;
    const others = [...this.nodes.keys()].filter((id) => id !== leader.id);
    const side = [leader.id];
    if (others.length > 3 && this.faultPrng.chance(0.5)) side.push(others.splice(this.faultPrng.int(others.length), 1)[0]);
    this.net.partition(side, others);
    this.remember(`isolate leader: [${side}] | [${others}]`);
    this.count('partitions');
    this.scheduleHeal();
  }

  private scheduleHeal(): void {
    this.queue.after(this.faultPrng.range(100, 2000), () => this.event('heal', () => this.heal()));
  }

  /** Heals the network, except a partition a targeted fault holds until its scenario has played out. */
  private heal(): void {
    this.net.heal();
    const held = this.heldPartition;
    if (held === undefined) return;
    if (this.queue.nowMs < held.untilMs) this.net.partition(held.a, held.b);
    else this.heldPartition = undefined;
  }

  /** Cuts `a` off from `b` until `ms` from now, whatever other faults heal meanwhile. */
  private holdPartition(a: number[], b: number[], ms: number): void {
    this.net.partition(a, b);
    this.heldPartition = { a, b, untilMs: this.queue.nowMs + ms };
    this.scenarioUntilMs = this.queue.nowMs + ms;
    this.queue.after(ms, () => this.event('heal', () => this.heal()));
  }

  private degradeNetwork(): void {
    const p = this.faultPrng;
    const c = { delayMinMs: 1, delayMaxMs: p.range(5, 60), dropRate: p.float() * 0.25, dupRate: p.float() * 0.05 };
    this.net.conditions = c;
    this.remember(`network delay<=${c.delayMaxMs}ms drop=${c.dropRate.toFixed(2)} dup=${c.dupRate.toFixed(2)}`);
  }

  private slowDownDisk(): void {
    const id = this.randomNode().id;
    this.slowDisk.add(id);
    this.remember(`slow disk n${id}`);
    this.queue.after(this.faultPrng.range(200, 1500), () => this.event(`fast disk n${id}`, () => this.slowDisk.delete(id)));
  }

  private leaderNode(): SimNode<I, O> | undefined {
    let best: SimNode<I, O> | undefined;
    for (const n of this.nodes.values()) if (n.isLeader() && (best === undefined || n.raft.term > best.raft.term)) best = n;
    return best;
  }

  private transferLeader(): void {
    const leader = this.leaderNode();
    if (leader === undefined) return;
    const voters = leader.raft.confState().voters.filter((v) => v !== leader.id);
    if (voters.length === 0) return;
    const to = this.faultPrng.pick(voters);
    this.remember(`transfer leader n${leader.id} -> n${to}`);
    this.count('transfers');
    leader.journal!.transferLeader(to).catch((err: unknown) => this.expectCoded(leader, err));
  }

  /**
   * Adds a node (as a learner, then a voter once caught up) or removes a voter (keeping 3 or more),
   * through the journal's own membership calls, as `cairn admin journal add|remove` does.
   */
  private changeMembership(): void {
    const leader = this.leaderNode();
    if (leader === undefined) return;
    const st = leader.raft.status();
    const members = new Set([...st.conf.voters, ...st.conf.learners]);
    const outsiders = [...this.nodes.keys()].filter((id) => !members.has(id) && !this.removedIds.has(id) && !this.rejoining.has(id) && !this.refused.has(id) && !this.retired.has(id));
    const p = this.faultPrng;
    const journal = leader.journal!;
    if (outsiders.length > 0 && p.chance(0.6)) {
      const id = p.pick(outsiders);
      this.remember(`add member n${id} on n${leader.id}`);
      journal.addMember(id, simAddress(id)).catch((err: unknown) => this.expectCoded(leader, err));
    } else if (st.conf.voters.length > 3) {
      const id = p.pick(st.conf.voters);
      this.remember(`remove member n${id} on n${leader.id}`);
      journal.removeMember(id).catch((err: unknown) => this.expectCoded(leader, err));
    }
  }

  /** The next fsync on a node fails with EIO: its journal must stop, and a restart recovers what is durable. */
  private failFsync(node: AnySimNode): void {
    if (!node.running()) return;
    this.remember(`fsync of n${node.id} will fail (EIO)`);
    this.fsyncFailing.add(node.id);
  }

  private calm(): void {
    this.heldPartition = undefined;
    this.net.heal();
    this.net.conditions = calmNetwork;
    this.slowDisk.clear();
    this.crashPoints.clear();
    this.fsyncFailing.clear();
    for (const id of this.filled) this.unfill(this.nodes.get(id)!);
    for (const n of this.nodes.values()) if (!n.alive && !this.refused.has(n.id) && !this.retired.has(n.id)) n.start();
    this.remember('calm: faults stop, all nodes up');
  }

  // ---- checkers ------------------------------------------------------------------------------

  onFatal(node: AnySimNode, err: unknown): void {
    if (!causedBy(err, 'EIO')) {
      this.report('journal failed', `n${node.id}'s journal stopped on its own check: ${describeError(err)}`);
      return;
    }
    // As a master does: the process exits, and is started again later.
    this.remember(`n${node.id} stops after a failed fsync`);
    this.count('fsyncErrors');
    this.crash(node, false);
  }

  onRefused(node: AnySimNode, err: unknown): void {
    // A failed fsync while opening (repairing a torn tail, say) is not a refusal: the start fails and is tried again.
    if (causedBy(err, 'EIO') || causedBy(err, 'ENOSPC')) {
      this.remember(`n${node.id} could not start: ${describeError(err).split('\n')[0]}`);
      this.crash(node, false);
      return;
    }
    const file = this.damaged.get(node.id);
    if (file === undefined) {
      this.report('recovery', `n${node.id} refused to start though its disk was never damaged: ${describeError(err)}`);
      return;
    }
    const code = err instanceof CodedError ? err.code : '';
    const message = err instanceof Error ? err.message : String(err);
    if ((code !== JournalErrorCode.WalCorrupt && code !== JournalErrorCode.SnapshotCorrupt) || !message.includes(file.slice(0, file.lastIndexOf('/')))) {
      this.report('recovery', `n${node.id} refused to start over the damaged ${file} without naming it: ${describeError(err)}`);
      return;
    }
    this.remember(`n${node.id} refused to start: ${code}`);
    this.count('refusedStarts');
    node.crash(false);
    this.refused.add(node.id);
    this.scheduleRebuild();
  }

  /** A membership change or transfer may fail under faults (lost leadership, timeouts) with a coded error; anything else is a bug. */
  private expectCoded(node: AnySimNode, err: unknown): void {
    if (!(err instanceof CodedError)) this.onBug(node, err);
  }

  onBug(node: AnySimNode, err: unknown): void {
    this.report('crash', `n${node.id}: ${describeError(err)}`);
  }

  /** What a node holds for sure: its disk now, or for a rotted one, what it held before. */
  private durableView(id: number): Pick<DurableLog, 'hasDurable' | 'lastDurable'> | undefined {
    return this.beforeRot.get(id) ?? this.nodes.get(id)?.durable;
  }

  onRestart(node: AnySimNode, tornBytes: number): void {
    this.beforeRot.delete(node.id);
    // Runs in a promise callback of the node's start: a violation is recorded, not thrown.
    try {
      this.checkRecovered(node);
    } catch (err) {
      if (!(err instanceof Violation)) throw err;
      return;
    }
    this.checkedCommit.set(node.id, node.raft.log.committed);
    if (tornBytes > 0) {
      this.remember(`n${node.id} repaired a torn WAL tail of ${tornBytes} bytes`);
      this.count('tornTailsRepaired');
    }
  }

  onReady(node: AnySimNode, rd: Ready): void {
    const raft = node.raft;
    if (rd.snapshot !== undefined) this.count('snapshotsInstalled');
    if (rd.softState !== undefined && rd.softState.role !== Role.Leader && this.filled.has(node.id) && this.leaderOfTerm.get(raft.term - 1) === node.id) {
      this.count('diskFullHandoffs');
    }
    if (rd.softState?.role === Role.Leader) {
      this.checkElectionSafety(node.id, raft.term);
      this.checkLeaderCompleteness(node);
      this.remember(`n${node.id} is leader of term ${raft.term}`);
      this.count('elections');
      this.maybeCutShortLeadership(node);
    }
    if (rd.hardState !== undefined) {
      if (raft.role === Role.Leader) this.checkCommitDurable(node, rd.hardState.commit);
      this.checkedCommit.set(node.id, rd.hardState.commit);
    }
  }

  onApply(node: AnySimNode, e: Entry): void {
    if (e.type === EntryType.ConfChange && e.index > this.bootstrapEntries && !this.appliedData.has(e.index)) {
      this.count('membershipChanges');
      const cc = decodeConfChange(e.data);
      if (cc.type === ConfChangeType.Remove) this.removedIds.add(cc.node);
    }
    const seen = this.appliedData.get(e.index);
    if (seen === undefined) {
      this.appliedData.set(e.index, e.data);
      if (this.committedTerm[e.index] === undefined) this.committedTerm[e.index] = e.term;
      this.committedInTerm[e.index] ??= node.raft.term;
    } else if (!sameBytes(seen, e.data)) {
      this.fail('state machine safety', `n${node.id} applied different data at index ${e.index}`);
    }
    if (this.committedTerm[e.index] !== undefined && this.committedTerm[e.index] !== e.term) {
      this.fail('state machine safety', `n${node.id} applied term ${e.term} at index ${e.index}, committed was term ${this.committedTerm[e.index]}`);
    }
  }

  /** A restart finds everything its disk held at the crash: the term and vote never go back, no durable entry is lost. */
  private checkRecovered(node: AnySimNode): void {
    const before = this.durableAtCrash.get(node.id);
    this.durableAtCrash.delete(node.id);
    if (before === undefined) return;
    const raft = node.raft;
    const { term, vote } = before.hardState;
    if (raft.term < term) this.fail('recovery', `n${node.id} restarted at term ${raft.term}, its disk held term ${term}`);
    if (raft.term === term && vote !== 0 && raft.hardState().vote !== vote) {
      this.fail('recovery', `n${node.id} restarted with vote ${raft.hardState().vote} in term ${term}, its disk held a vote for ${vote}`);
    }
    const { index, term: lastTerm } = before.last;
    const log = raft.log;
    // A newer leader's entry at that index is no loss: a torn write after the sync can keep the
    // entries a follower appended from it (not yet its term), and they replace an uncommitted tail.
    const now = log.term(index);
    if (index > log.offsetIndex && (now === undefined || now < lastTerm)) {
      this.fail('recovery', `n${node.id} restarted without entry ${index} (term ${lastTerm}) that was on its disk (its log ends at ${log.lastIndex()})`);
    }
  }

  private checkElectionSafety(id: number, term: number): void {
    const other = this.leaderOfTerm.get(term);
    if (other !== undefined && other !== id) this.fail('election safety', `n${other} and n${id} both led term ${term}`);
    this.leaderOfTerm.set(term, id);
  }

  /**
   * A new leader's log holds every entry committed in an earlier term. Entries committed in its
   * own term or later are not its business: a leader that stalled may resume (and only then act as
   * leader) after a later term committed entries it never heard of.
   */
  private checkLeaderCompleteness(node: AnySimNode): void {
    const log = node.raft.log;
    for (let i = log.offsetIndex + 1; i < this.committedTerm.length; i++) {
      const want = this.committedTerm[i];
      if (want === undefined || (this.committedInTerm[i] ?? Infinity) >= node.raft.term) continue;
      const have = log.term(i);
      if (have !== want) this.fail('leader completeness', `leader n${node.id} (term ${node.raft.term}) has term ${have} at committed index ${i} (term ${want})`);
    }
  }

  /**
   * A leader commits only entries that a majority holds on disk, and never two terms at one index.
   * The majority is of the membership the leader used when the entry committed: one of those in
   * its log between the last commit index seen and its last entry.
   */
  private checkCommitDurable(node: AnySimNode, commit: number): void {
    const raft = node.raft;
    const prevCommit = Math.max(raft.log.offsetIndex, this.checkedCommit.get(node.id) ?? 0);
    for (let i = prevCommit + 1; i <= commit; i++) {
      const term = raft.log.term(i);
      if (term === undefined) continue;
      const prev = this.committedTerm[i];
      if (prev !== undefined && prev !== term) this.fail('committed entry lost', `n${node.id} committed term ${term} at index ${i}, earlier committed term ${prev}`);
      this.committedTerm[i] = term;
      this.committedInTerm[i] ??= raft.term;
      // A leader counts with the newest membership in its log, so any of those since the last commit may have decided.
      const confs = [prevCommit, i - 1, i, raft.log.lastIndex()].map((j) => raft.confAt(j).voters);
      const holders = (voters: readonly number[]): number => voters.filter((v) => this.durableView(v)?.hasDurable(i, term)).length;
      if (!confs.some((voters) => holders(voters) >= quorumSize(voters.length))) {
        const last = confs[confs.length - 1];
        this.fail('commit durability', `n${node.id} committed index ${i} (term ${term}) held on disk by ${holders(last)} of ${last.length} voters [${last}]`);
      }
      this.checkCommittedEntrySafe(node, i, term);
    }
  }

  /**
   * No voter that lacks a committed entry can win an election: its log must be less up to date
   * than a majority's (the premise of leader completeness, checked when the entry commits rather
   * than when a bad leader is elected).
   */
  private checkCommittedEntrySafe(leader: AnySimNode, index: number, term: number): void {
    const voters = leader.raft.confState().voters;
    const views = new Map(voters.map((id) => [id, this.logView(id)]));
    for (const [x, vx] of views) {
      if (vx.has(index, term)) continue;
      const electors = voters.filter((y) => {
        const vy = views.get(y)!;
        return vx.lastTerm > vy.lastTerm || (vx.lastTerm === vy.lastTerm && vx.lastIndex >= vy.lastIndex);
      });
      if (electors.length >= Math.floor(voters.length / 2) + 1) {
        this.fail(
          'committed entry at risk',
          `n${leader.id} committed index ${index} (term ${term}), but n${x} lacks it and its log (last ${vx.lastIndex}@t${vx.lastTerm}) could win votes from [${electors}]`,
        );
      }
    }
  }

  /** A node's log as it would campaign with now: in memory while up, on disk while down. */
  private logView(id: number): { has(index: number, term: number): boolean; lastIndex: number; lastTerm: number } {
    const n = this.nodes.get(id)!;
    if (n.running()) {
      const log = n.raft.log;
      return { has: (i, t) => i <= log.offsetIndex || log.term(i) === t, lastIndex: log.lastIndex(), lastTerm: log.lastTerm() };
    }
    const view = this.durableView(id)!;
    const last = view.lastDurable();
    return { has: (i, t) => view.hasDurable(i, t), lastIndex: last.index, lastTerm: last.term };
  }

  /** Logs agree: the same (index, term) means the same entry and the same history before it. */
  private checkLogMatching(): void {
    const alive = [...this.nodes.values()].filter((n) => n.running());
    for (let a = 0; a < alive.length; a++) {
      for (let b = a + 1; b < alive.length; b++) {
        const la = alive[a].raft.log;
        const lb = alive[b].raft.log;
        const lo = Math.max(la.offsetIndex, lb.offsetIndex) + 1;
        const hi = Math.min(la.lastIndex(), lb.lastIndex());
        let matched = false;
        for (let i = hi; i >= lo; i--) {
          const ea = la.entry(i)!;
          const eb = lb.entry(i)!;
          if (ea.term === eb.term) matched = true;
          if (matched && (ea.term !== eb.term || !sameBytes(ea.data, eb.data))) {
            this.fail('log matching', `n${alive[a].id} and n${alive[b].id} agree above index ${i} but differ at it`);
          }
        }
      }
    }
  }

  onStateAt(node: AnySimNode, index: number): void {
    if (index % stateHashEveryEntries === 0) this.checkStateAt(node, index);
  }

  /** Replicas that hold the same prefix of the log hold the same state (by the state machine's own hash). */
  private checkStateAt(node: AnySimNode, index: number): void {
    const hash = node.sm.stateHash();
    const first = this.stateAt.get(index);
    if (first === undefined) this.stateAt.set(index, { node: node.id, hash });
    else if (first.hash !== hash) {
      this.fail('state machine safety', `n${node.id} has state ${hash.slice(0, 16)} at index ${index}, n${first.node} had ${first.hash.slice(0, 16)}`);
    }
  }

  private checkEnd(): void {
    this.checkLogMatching();
    for (const n of this.nodes.values()) if (n.running()) this.checkStateAt(n, n.smIndex);
    this.checkLiveness();
    const lin = checkLinearizable(this.workload.model, this.history, { stepBudget: 2_000_000 });
    if (lin.result === 'illegal') this.fail('linearizability', lin.explanation);
    // An inconclusive check proves nothing: it fails too, rather than passing unseen.
    if (lin.result === 'unknown') this.fail('linearizability', `check inconclusive: ${lin.reason}`);
  }

  /** Once faults stop, a leader serves, every member converges, and every client makes progress. */
  private checkLiveness(): void {
    const leader = this.leaderNode();
    if (leader === undefined) this.fail('liveness', `no leader ${this.opts.calmMs}ms after faults stopped`);
    const st = leader.raft.status();
    for (const id of [...st.conf.voters, ...st.conf.learners]) {
      const n = this.nodes.get(id)!;
      if (!n.running()) this.fail('liveness', `member n${id} is not running at the end`);
      if (n.raft.log.applied < this.commitMark) {
        this.fail('liveness', `n${id} applied ${n.raft.log.applied}, the leader had committed ${this.commitMark} a second before the end`);
      }
    }
    for (const c of this.clients) {
      if (c.completedAfterCalm === 0 && !c.probe) this.fail('liveness', `client ${c.id} completed no operation after faults stopped`);
    }
  }
}

function describeMessage(m: Message): string {
  let s = `n${m.from}->n${m.to} ${m.type} t${m.term}`;
  if (m.index !== undefined) s += ` i${m.index}`;
  if (m.logTerm !== undefined) s += ` lt${m.logTerm}`;
  if (m.entries !== undefined && m.entries.length > 0) s += ` +${m.entries.length}`;
  if (m.commit !== undefined) s += ` c${m.commit}`;
  if (m.reject) s += ' reject';
  if (m.snapshot !== undefined) s += ` snap@${m.snapshot.index}+${m.snapOffset}`;
  return s;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}


function causedBy(err: unknown, code: string): boolean {
  for (let e: unknown = err, depth = 0; e !== undefined && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    if (isErrno(e, code)) return true;
  }
  return false;
}

function describeError(err: unknown): string {
  return err instanceof Error ? (err.stack ?? err.message) : String(err);
}

/** Clients that read from a stalled leader, at different moments of its stall. */
const probeClients = 3;

/**
 * Fault families aimed at rules the general schedule reaches too rarely (docs/raft.md, "What the
 * seeds reach"): a leader stalled with one follower on the minority side of 5 voters with ReadIndex
 * reads; snapshot transfers delivered again late; clock rates at the edges of a wide bound with a
 * lease-read leader cut off.
 */
type GapFamily = 'minority-stall' | 'snapshot-replay' | 'clock-drift';
const gapFamilies: readonly GapFamily[] = ['minority-stall', 'snapshot-replay', 'clock-drift'];
/** Each family runs in one seed of this many; the other seeds run the general schedule alone, as before the families. */
const gapFamilyOneIn = 8;
/** In a family's seed, the share of faults that are the family's. */
const gapFaultShare = 0.3;
/** The clock-drift family's bound: rates within ±50% (the lease is sized for it: 3 of 10 election ticks). */
const driftFamilyBound = 0.5;
const snapshotReplayChunksMax = 256;
const isolatedProbePollMs = 3;
const isolatedProbePolls = 100;

/** A stream of its own, so that the general schedule's draws stay as they were. */
function gapSeed(seed: number): number {
  return (Math.imul(seed, 0x9e3779b1) ^ 0x7f4a7c15) >>> 0;
}

function gapFamilyFor(seed: number): GapFamily | undefined {
  return gapFamilies[new Prng(gapSeed(seed) ^ 0x2545f491).int(gapFamilyOneIn)];
}

/** n1's clock runs slow, the others' fast, each near the bound: `drift` in [-1, 1) only moves it a little. */
function driftFamilyDrift(id: number, drift: number): number {
  const edge = 0.9 + 0.1 * Math.abs(drift);
  return id === 1 ? -edge : edge;
}
/** The journal's free-space reserve on the simulated disks: small, so a filled disk crosses it. */
const diskReserveBytes = 1024;
type CrashPoint = 'roll' | 'snapshot' | 'release';
/** Releases come only after a checkpoint, so they get the most chances. */
const crashPointDraws: readonly CrashPoint[] = ['roll', 'snapshot', 'release', 'release'];

function matchesCrashPoint(point: CrashPoint, op: SimFsOp, path: string): boolean {
  if (point === 'roll') return op === 'create' && path.endsWith('.wal') && !path.endsWith('/0000000000000000.wal');
  if (point === 'snapshot') return op === 'write' && path.includes('/snap/') && path.endsWith('.tmp');
  return op === 'unlink' && path.endsWith('.wal');
}

/** Files a bit may flip in, and how many of their leading bytes: all of a snapshot, a WAL segment but its last record. */
function flippable(fs: SimFs, dir: string): { path: string; bytes: number; last: boolean }[] {
  const out: { path: string; bytes: number; last: boolean }[] = [];
  const segments = fs.durableFiles(`${dir}/wal`).filter((f) => f.name.endsWith('.wal'));
  segments.forEach((f, i) => {
    const last = i === segments.length - 1;
    const bytes = last ? lastFrameStart(f.bytes) : f.bytes.length;
    if (bytes > 0) out.push({ path: `${dir}/wal/${f.name}`, bytes, last });
  });
  for (const f of fs.durableFiles(`${dir}/snap`)) {
    if (f.name.endsWith('.snap') && f.bytes.length > 0) out.push({ path: `${dir}/snap/${f.name}`, bytes: f.bytes.length, last: false });
  }
  return out;
}

/** Where the last whole frame (u32 length, u32 crc, payload) of a segment starts. */
function lastFrameStart(bytes: Uint8Array): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let last = 0;
  for (let off = 0; off + 8 <= bytes.length; ) {
    const next = off + 8 + view.getUint32(off, true);
    if (next > bytes.length) break;
    last = off;
    off = next;
  }
  return last;
}

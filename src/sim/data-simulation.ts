// The data-path simulation (`--workload data`): three masters (the production RaftJournal,
// metadata state machine and ClusterManager), four or five storage workers (the production
// StorageWorker: chunk stores, CRAQ chains, resync) with one or two targets each, and clients
// (the production DataClient) writing and reading whole chunks of a few files, under seeded
// worker faults: crashes with torn writes, kills in the middle of a write at the head, middle or
// tail, partitions, stalls past the offline timeout, full disks, failed fsyncs and bit flips at
// rest; in half the runs a worker joins late and chain members move onto it. Each chunk is a
// register whose values carry a unique id; the history is checked per chunk
// for linearizability, every read's bytes against what was written, and at the end every chain
// must serve from all its members, which must hold the same chunks. See docs/data-path-sim.md.

import { crc32c } from '@node-rs/crc32';
import { CairnError, CodedError, ErrorCode } from '../errors.ts';
import { defaultChainTableId, type RoutingInfo } from '../meta/namespace-state.ts';
import type { Layout } from '../meta/commands.ts';
import { TargetState } from '../meta/commands.ts';
import { Routing } from '../meta/routing.ts';
import { chunkFileName, fanoutDirName } from '../worker/chunk-file.ts';
import { WorkerErrorCode } from '../worker/errors.ts';
import { WorkerMethod, type ReadReply, type ReadRequest } from '../worker/protocol.ts';
import { replicaBugNames, type ReplicaBug } from '../worker/replication.ts';
import type { Handler } from '../rpc/handler.ts';
import { EventQueue } from './event-queue.ts';
import { checkLinearizable, type Operation } from './linearizability.ts';
import { kvModel, type KvInput, type KvOutput } from './models.ts';
import { SimNetwork, calmNetwork } from './network.ts';
import { ClientProcess, MasterProcess, SimProcess, WorkerProcess, codeOf, type ProcessEnv } from './data-nodes.ts';
import { Prng } from './prng.ts';
import { runEventsQuiescing } from './quiesce.ts';
import { clockDriftBound } from './sim-clock.ts';
import type { SimFsOp } from './sim-fs.ts';
import { simAddress, type SimWire } from './sim-transport.ts';
import { EventTrace, type EventText } from './event-trace.ts';
import { emptyStats, type SimOptions, type SimResult } from './simulation.ts';

/** How often each data-path fault and outcome occurred: the bounded test asserts they all did. */
export interface DataStats {
  workerCrashes: number;
  crashesMidWrite: number;
  tornCrashes: number;
  workerStalls: number;
  workerPartitions: number;
  masterPartitions: number;
  disksFilled: number;
  fsyncErrors: number;
  bitFlips: number;
  corruptReadsSeen: number;
  masterFaults: number;
  /** Targeted family: heads and middle members cut off mid-write long enough to come back syncing. */
  membersDemoted: number;
  writesAcked: number;
  writesUnknown: number;
  readsServed: number;
  rawReads: number;
}

export const emptyDataStats: DataStats = {
  workerCrashes: 0,
  crashesMidWrite: 0,
  tornCrashes: 0,
  workerStalls: 0,
  workerPartitions: 0,
  masterPartitions: 0,
  disksFilled: 0,
  fsyncErrors: 0,
  bitFlips: 0,
  corruptReadsSeen: 0,
  masterFaults: 0,
  membersDemoted: 0,
  writesAcked: 0,
  writesUnknown: 0,
  readsServed: 0,
  rawReads: 0,
};

export const dataBugs: readonly ReplicaBug[] = replicaBugNames;

/**
 * One data seed in ten (seed % 10 === 7) runs a targeted fault family instead of the mixed faults:
 * heads and middle members cut off mid-write until they come back syncing (docs/data-path-sim.md). A rule on the seed
 * rather than a draw, so that the other seeds' schedules stay as they were.
 */
export function demoteFamily(seed: number): boolean {
  return seed % 10 === 7;
}

const masterCount = 3;
const workerIdBase = 10;
const clientIdBase = 20;
/** Heartbeats and the offline timeout, on the workers' and masters' own clocks: well past a master failover (~200-400 ms here). */
const timing = { heartbeatMs: 100, offlineTimeoutMs: 500 };
/** Faults and client operations start once the cluster has had time to form its chains. */
const setupMs = 1500;
const clientRetryDeadlineMs = 2500;
const callTimeoutMs = 400;
const forwardDeadlineMs = 1500;
/** Files and chunks per file the clients write: few, so operations on one chunk overlap. */
const files = [101, 102];
const chunksPerFile = 3;
/** Most workers down at once: a chain of three keeps a member more often than not. */
const workersDownMax = 2;

class Violation extends Error {}

interface ChunkKey {
  key: string;
  inodeId: number;
  index: number;
  lengthBytes: number;
}

interface ClientState {
  proc: ClientProcess;
  busy: boolean;
  writes: number;
  completedAfterCalm: number;
}

export function runDataSimulation(opts: SimOptions): Promise<SimResult> {
  return new DataSimulation(opts).run();
}

class DataSimulation implements SimWire {
  private readonly opts: SimOptions & { faultMs: number; calmMs: number };
  private readonly prng: Prng;
  private readonly faultPrng: Prng;
  private readonly queue = new EventQueue();
  private readonly net: SimNetwork;
  private readonly procs = new Map<number, SimProcess>();
  private readonly masters: MasterProcess[] = [];
  private readonly workers: WorkerProcess[] = [];
  private readonly clients: ClientState[] = [];
  private readonly history: Operation<KvInput, KvOutput>[] = [];
  private readonly keys: ChunkKey[] = [];
  /** Every value ever sent for a chunk: a read may return only one of these. */
  private readonly written = new Map<string, Set<string>>();
  private readonly stats: DataStats = { ...emptyDataStats };
  private readonly bugs: ReadonlySet<ReplicaBug>;
  private layout!: Layout;
  private readonly trace: EventTrace;
  private violation: Violation | undefined;
  private readonly slowDisk = new Set<number>();
  private readonly fsyncFailing = new Set<number>();
  /** Workers whose fsync failed, waiting for their supervised restart (done at once at calm). */
  private readonly restartAfterEio = new Map<WorkerProcess, number>();
  private readonly filled = new Set<number>();
  /** Workers to kill at their next disk operation of a kind under one target directory. */
  private readonly crashPoints = new Map<number, { dir: string; op: SimFsOp; role: string }>();
  /** Members to cut off at their next stage (the targeted family): the worker, its successor's worker. */
  private readonly demotePoints = new Map<number, { dir: string; successor: number }>();
  /** This seed runs the targeted family (demoteFamily). */
  private readonly targeted: boolean;
  /** Chunk files the simulator flipped a bit in: their replica may be unreadable, never served wrong. */
  private readonly damaged = new Set<string>();
  /** Chunks with a flipped bit in one replica: one per chunk, so that two replicas are never both damaged. */
  private readonly rotted = new Set<string>();
  private faultGapMs = 300;
  private readonly calmAtMs: number;
  private readonly endMs: number;
  private finalReadsDone = false;
  private nextWriteId = 1;

  constructor(opts: SimOptions) {
    this.opts = { ...opts, faultMs: opts.faultMs ?? 6000, calmMs: opts.calmMs ?? 4000 };
    this.prng = new Prng(opts.seed);
    this.targeted = demoteFamily(opts.seed);
    this.faultPrng = this.prng.fork();
    this.net = new SimNetwork(this.queue, this.prng.fork());
    this.trace = new EventTrace(() => this.queue.nowMs, opts.trace);
    const bugs = opts.bug !== undefined && (dataBugs as readonly string[]).includes(opts.bug) ? [opts.bug as ReplicaBug] : [];
    this.bugs = new Set(bugs);
    this.calmAtMs = Math.max(this.opts.faultMs, setupMs);
    this.endMs = this.calmAtMs + this.opts.calmMs;
  }

  async run(): Promise<SimResult> {
    this.setUp();
    try {
      await runEventsQuiescing(() => this.violation === undefined && this.queue.runNext(this.endMs));
      if (this.violation !== undefined) throw this.violation;
      await this.checkEnd();
      return this.result(undefined);
    } catch (err) {
      const v = this.violation ?? err;
      if (v instanceof Violation) return this.result(v.message);
      const e = v as Error;
      return this.result(`crash: ${e.stack ?? e.message}`);
    }
  }

  private setUp(): void {
    const p = this.prng;
    const env = this.processEnv();
    const masterAddrs = Array.from({ length: masterCount }, (_, i) => simAddress(i + 1));
    const founders = new Map(masterAddrs.map((a, i) => [i + 1, a] as const));
    for (let id = 1; id <= masterCount; id++) {
      const m = new MasterProcess(
        id,
        {
          ...env,
          founders,
          journal: { tickMs: 10, electionTicks: 10, heartbeatTicks: 2, checkpointEveryEntries: 64, checkpointKeepEntries: 16, proposalTimeoutMs: 1000, diskReserveBytes: 1024, diskCheckMs: 50, raftTuning: { preVote: true } },
          timing,
          replication: 3,
          onMasterDown: (mp, err) => this.onMasterDown(mp, err),
        },
        this.clockRate(),
        p.range(0, 1_000_000),
      );
      this.add(m);
      this.masters.push(m);
      m.start();
    }
    const workerCount = p.range(4, 5);
    // Half the runs, the last worker joins once the others' chains are made, in the middle of the
    // faults: the leader moves chain members onto it (src/master/rebalance.ts) while they go on.
    const joinsLate = p.chance(0.5);
    let targets = 0;
    for (let i = 1; i <= workerCount; i++) {
      const n = i === workerCount && targets + 1 < 3 ? 2 : p.range(1, 2);
      targets += n;
      const w = new WorkerProcess(
        workerIdBase + i,
        // The targeted family's members keep forwarding long enough to come back from being cut off.
        { ...env, masters: masterAddrs, callTimeoutMs, forwardDeadlineMs: this.targeted ? 4 * forwardDeadlineMs : forwardDeadlineMs, bugs: this.bugs, onWorkerStartFailed: (wp, err) => this.onWorkerStartFailed(wp, err) },
        this.clockRate(),
        p.range(0, 1_000_000),
        n,
      );
      this.add(w);
      this.workers.push(w);
      const startMs = joinsLate && i === workerCount ? p.range(2000, 4000) : p.range(0, 200);
      this.queue.after(startMs, () => this.event(`start w${w.id}`, () => w.start()));
    }
    const lengths = [48, 200, 1500, 70_000];
    for (const inodeId of files) {
      for (let index = 0; index < chunksPerFile; index++) {
        const key = `${inodeId}:${index}`;
        this.keys.push({ key, inodeId, index, lengthBytes: p.pick(lengths) });
        this.written.set(key, new Set());
      }
    }
    this.layout = { chunkSizeBytes: 1 << 17, stripeWidth: 4, chainTableId: defaultChainTableId, chainTableVersion: 1, shuffleSeed: p.u32() };
    const clientCount = p.range(2, 4);
    // The targeted family's clients wait for an answer longer than a member's trip offline and back
    // (as the FUSE mount and the gateway, with their long deadlines, do): an answer the cut-off
    // member gives then reaches them.
    const patient = this.targeted ? 8 : 1;
    const clientEnv = { ...env, masters: masterAddrs, retryDeadlineMs: clientRetryDeadlineMs * patient, callTimeoutMs: callTimeoutMs * patient };
    for (let i = 1; i <= clientCount + 1; i++) {
      const proc = new ClientProcess(clientIdBase + i, clientEnv, this.clockRate(), p.range(0, 1_000_000));
      this.add(proc);
      // The last one only reads every chunk at the end.
      if (i > clientCount) continue;
      const c: ClientState = { proc, busy: false, writes: 0, completedAfterCalm: 0 };
      this.clients.push(c);
      this.queue.at(setupMs - 300 + p.range(0, 50), () => this.event(`c${proc.id} starts`, () => this.nextOp(c)));
    }
    this.faultGapMs = p.pick([100, 200, 400]);
    this.queue.at(setupMs, () => (this.targeted ? this.scheduleDemote() : this.scheduleFault()));
    this.queue.at(this.calmAtMs, () => this.event('calm', () => this.calm()));
    this.queue.at(this.endMs - 1200, () => this.event('final reads when every chain serves', () => this.finalReadsWhenServing()));
  }

  private clockRate(): number {
    return 1 + (this.prng.float() * 2 - 1) * clockDriftBound * 0.8;
  }

  private add(p: SimProcess): void {
    this.procs.set(p.id, p);
  }

  private processEnv(): ProcessEnv {
    return {
      prng: this.prng,
      now: () => this.queue.nowMs,
      after: (d, what, run) => this.queue.after(d, () => this.event(what, run)),
      wire: this,
      syncLatencyMs: (p) => (this.slowDisk.has(p.id) ? this.prng.range(20, 80) : this.prng.range(1, 4)),
      syncFails: (p, path) => this.syncFails(p, path),
      onDiskOp: (p, op, path) => this.onDiskOp(p, op, path),
      log: (p, level, msg, ctx) => this.remember(() => `p${p.id} ${level}: ${msg}${ctx === undefined ? '' : ` ${JSON.stringify(ctx)}`}`),
    };
  }

  private result(violation: string | undefined): SimResult {
    return {
      seed: this.opts.seed,
      workload: 'data',
      ok: violation === undefined,
      violation,
      nodes: this.procs.size,
      clientOps: this.history.length,
      committed: this.stats.writesAcked,
      events: this.trace.events,
      traceHash: this.trace.hashHex(),
      lastEvents: this.trace.recentEvents(),
      stats: { ...emptyStats },
      dataStats: this.stats,
    };
  }

  // ---- events and traces -----------------------------------------------------------------------

  private event(what: EventText, run: () => void): void {
    this.trace.event(what);
    run();
  }

  private remember(what: EventText): void {
    this.trace.remember(what);
  }

  private fail(property: string, detail: string): never {
    throw this.report(property, detail);
  }

  private report(property: string, detail: string): Violation {
    const v = new Violation(`${property}: ${detail}`);
    this.violation ??= v;
    return v;
  }

  // ---- the wire ----------------------------------------------------------------------------------

  send(from: number, to: number, what: () => string, deliver: () => void): void {
    const p = this.procs.get(to);
    if (p === undefined) return;
    this.net.send(from, to, () => {
      this.trace.mix(from * 1024 + to);
      this.event(() => `p${from}->p${to} ${what()}`, () => p.deliver(deliver));
    });
  }

  handler(node: number, method: string): Handler | undefined {
    const p = this.procs.get(node);
    return p?.alive ? p.transport?.handlers.get(method) : undefined;
  }

  later(node: number, ms: number, fn: () => void): void {
    this.procs.get(node)?.laterCurrent(ms, fn);
  }

  describe(method: string, body: unknown): string {
    const b = body as { inodeId?: number; index?: number; updateVersion?: number } | undefined;
    if (method.startsWith('chunk.') && b?.inodeId !== undefined) return `${method} ${b.inodeId}:${b.index}${b.updateVersion === undefined ? '' : ` v${b.updateVersion}`}`;
    return method;
  }

  // ---- clients -----------------------------------------------------------------------------------

  private nextOp(c: ClientState): void {
    if (this.queue.nowMs >= this.endMs - 1200) return;
    const p = this.prng;
    const k = p.pick(this.keys);
    const roll = p.float();
    c.busy = true;
    const done = (ok: boolean, call: number): void => {
      c.busy = false;
      if (ok && call >= this.calmAtMs) c.completedAfterCalm++;
      this.queue.after(p.range(0, 20), () => this.event(`c${c.proc.id} next`, () => this.nextOp(c)));
    };
    if (roll < 0.45) this.write(c, k, done);
    else this.read(c, k, roll < 0.75 ? 'client' : 'raw', done);
  }

  private write(c: ClientState, k: ChunkKey, done: (ok: boolean, call: number) => void): void {
    const value = `c${c.proc.id}.${++c.writes}.${this.nextWriteId++}`;
    this.written.get(k.key)!.add(value);
    const op: Operation<KvInput, KvOutput> = { clientId: c.proc.id, input: { kind: 'put', key: k.key, value }, call: this.queue.nowMs, ret: Infinity, output: undefined };
    this.history.push(op);
    this.remember(`c${c.proc.id} writes ${k.key} = ${value}`);
    c.proc.data.writeChunk(this.layout, k.inodeId, k.index, 0, chunkBytes(value, k)).then(
      () => {
        op.ret = this.queue.nowMs;
        op.output = { ok: true };
        this.stats.writesAcked++;
        this.remember(`c${c.proc.id} wrote ${k.key} = ${value}`);
        done(true, op.call);
      },
      (err: unknown) => {
        this.expectCoded(`write of ${k.key}`, err);
        this.stats.writesUnknown++;
        this.remember(`c${c.proc.id} write ${k.key} = ${value} failed: ${codeOf(err)}`);
        done(false, op.call);
      },
    );
  }

  /** A read through the DataClient, or straight from a random serving member (as any CRAQ client may), to the tail when it is dirty. */
  private read(c: ClientState, k: ChunkKey, how: 'client' | 'raw' | 'final', done: (ok: boolean, call: number) => void): void {
    const call = this.queue.nowMs;
    const got = how === 'raw' ? this.rawRead(c.proc, k) : c.proc.data.readChunk(this.layout, k.inodeId, k.index, 0, k.lengthBytes).then((r) => (r.found ? r.data : undefined));
    got.then(
      (data) => {
        const value = data === undefined ? undefined : this.valueOf(k, data, `${how} read by c${c.proc.id}`);
        this.history.push({ clientId: c.proc.id, input: { kind: 'get', key: k.key }, call, ret: this.queue.nowMs, output: { value } });
        this.stats.readsServed++;
        if (how === 'raw') this.stats.rawReads++;
        this.remember(`c${c.proc.id} ${how} read ${k.key} = ${value ?? 'absent'}`);
        done(true, call);
      },
      (err: unknown) => {
        if (err instanceof Violation) return;
        this.expectCoded(`read of ${k.key}`, err);
        if (how === 'final') this.report('liveness', `the final read of ${k.key} failed: ${(err as Error).message}`);
        done(false, call);
      },
    );
  }

  private async rawRead(proc: ClientProcess, k: ChunkKey): Promise<Uint8Array | undefined> {
    const routing = await proc.data.routing();
    const chainId = proc.data.chainOf(routing, this.layout, k.index);
    const members = routing.readMembers(chainId);
    if (members.length === 0) throw new CairnError(ErrorCode.Unavailable, `chain ${chainId} has no serving member`);
    const body: ReadRequest = { chainId, chainVersion: routing.chain(chainId)!.version, inodeId: k.inodeId, index: k.index, offset: 0, length: k.lengthBytes };
    const ask = async (workerId: number): Promise<Uint8Array | undefined> => {
      try {
        const r = await proc.transport!.connect(routing.workerAddress(workerId)!).call<ReadReply>(WorkerMethod.read, body, { timeoutMs: callTimeoutMs });
        return r.payload ?? new Uint8Array(0);
      } catch (err) {
        if (codeOf(err) === WorkerErrorCode.ChunkNotFound) return undefined;
        throw err;
      }
    };
    const member = this.prng.pick(members);
    try {
      return await ask(member.workerId);
    } catch (err) {
      if (codeOf(err) !== WorkerErrorCode.ChunkDirty) throw err;
      return ask(members[members.length - 1].workerId);
    }
  }

  /** The value a read's bytes hold: exactly a chunk some client wrote to this key, or a violation. */
  private valueOf(k: ChunkKey, data: Uint8Array, who: string): string {
    const value = decodeChunk(data, k);
    if (value === undefined) this.fail('read integrity', `${who} of ${k.key} returned ${data.length} bytes that are no whole chunk any client wrote (torn, corrupt or mixed)`);
    if (!this.written.get(k.key)!.has(value)) this.fail('read integrity', `${who} of ${k.key} returned value ${value}, never written to it`);
    return value;
  }

  private expectCoded(what: string, err: unknown): void {
    if (err instanceof Violation) return;
    if (!(err instanceof CodedError)) this.report('crash', `${what}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  }

  // ---- faults --------------------------------------------------------------------------------------

  private scheduleFault(): void {
    const p = this.faultPrng;
    this.queue.after(p.range(this.faultGapMs / 10, this.faultGapMs), () => {
      if (this.queue.nowMs >= this.calmAtMs) return;
      this.event('fault', () => this.injectFault());
      this.scheduleFault();
    });
  }

  private injectFault(): void {
    const p = this.faultPrng;
    const roll = p.int(100);
    if (roll < 16) {
      if (this.down() < workersDownMax) this.crashWorker(p.pick(this.workers), p.chance(0.5));
    }
    else if (roll < 30) this.armCrashInWrite();
    else if (roll < 42) this.partitionWorkers();
    else if (roll < 50) this.cutWorkerFromMasters();
    else if (roll < 58) this.stallWorker();
    else if (roll < 64) this.fillDisk(p.pick(this.workers));
    else if (roll < 69) this.failFsync(p.pick(this.workers));
    else if (roll < 78) this.rot();
    else if (roll < 86) this.degradeNetwork();
    else if (roll < 90) this.slowDisk.add(p.pick(this.workers).id);
    else if (roll < 94) this.masterFault();
    else this.heal();
  }

  private down(): number {
    return this.workers.filter((w) => !w.alive).length;
  }

  /** Crashes a worker (before the calm; `always`: a supervisor's restart, also after) and restarts it a little later. */
  private crashWorker(w: WorkerProcess, tear: boolean, why = '', always = false): void {
    if (!w.alive || (this.queue.nowMs >= this.calmAtMs && !always)) return;
    this.remember(`crash w${w.id}${tear ? ' (torn write)' : ''}${why}`);
    this.stats.workerCrashes++;
    if (tear) this.stats.tornCrashes++;
    w.crash(tear);
    this.crashPoints.delete(w.id);
    this.fsyncFailing.delete(w.id);
    const inc = w.incarnation;
    this.queue.after(this.faultPrng.range(100, 1500), () => this.event(`restart w${w.id}`, () => !w.alive && w.incarnation === inc && w.start()));
  }

  /** Kills the worker holding the head, a middle member or the tail of a chain in its next stage or commit of a chunk. */
  private armCrashInWrite(): void {
    const routing = this.leaderRouting();
    if (routing === undefined || routing.info.chains.length === 0 || this.down() >= workersDownMax) return;
    const p = this.faultPrng;
    const chain = p.pick(routing.info.chains);
    const path = routing.writeMembers(chain.chainId);
    if (path.length === 0) return;
    const at = p.int(path.length);
    const target = path[at];
    const w = this.workers.find((x) => x.id === target.workerId);
    if (w === undefined || !w.alive) return;
    const role = at === 0 ? 'head' : at === path.length - 1 ? 'tail' : 'middle';
    const op: SimFsOp = p.chance(0.5) ? 'create' : 'rename';
    this.crashPoints.set(w.id, { dir: target.path, op, role });
    this.remember(`w${w.id} will die in its next ${op === 'create' ? 'stage' : 'commit'} as the ${role} of chain ${chain.chainId}`);
  }

  // ---- the targeted family: a member demoted mid-write -------------------------------------------

  private scheduleDemote(): void {
    this.queue.after(this.faultPrng.range(300, 1200), () => {
      if (this.queue.nowMs >= this.calmAtMs) return;
      this.event('fault', () => this.armDemote());
      this.scheduleDemote();
    });
  }

  /**
   * Arms the head or a middle member of a chain: at its next stage of a chunk it is cut off from its
   * successor (the forward waits) and from the masters past the offline timeout, then the masters
   * reach it again and make it syncing, at the end of the write path, while that forward still waits.
   */
  private armDemote(): void {
    const routing = this.leaderRouting();
    if (routing === undefined || routing.info.chains.length === 0 || this.demotePoints.size > 0) return;
    const chain = this.faultPrng.pick(routing.info.chains);
    const path = routing.writeMembers(chain.chainId);
    if (path.length < 2) return;
    const at = this.faultPrng.int(path.length - 1);
    const [me, next] = [path[at], path[at + 1]];
    const w = this.workers.find((x) => x.id === me.workerId);
    if (w === undefined || !w.alive || me.workerId === next.workerId) return;
    this.demotePoints.set(w.id, { dir: me.path, successor: next.workerId });
    this.remember(`w${w.id} will be cut off at its next stage as the ${at === 0 ? 'head' : 'middle member'} of chain ${chain.chainId}`);
  }

  private demote(w: WorkerProcess, successor: number): void {
    const masters = this.masters.map((m) => m.id);
    this.net.partition([w.id], [successor]);
    this.net.partition([w.id], masters);
    this.stats.membersDemoted++;
    this.remember(`w${w.id} cut off from its successor w${successor} and the masters mid-write`);
    // Its heartbeats reach the masters first (they count it back, syncing), their answers a little
    // later: the first routing it hears of has it syncing, not offline, as when replies are lost.
    const heard = timing.offlineTimeoutMs + this.faultPrng.range(100, 300);
    const answered = heard + this.faultPrng.range(200, 600);
    this.queue.after(heard, () => this.event(`w${w.id} reaches the masters again`, () => masters.forEach((m) => this.net.joinLink(w.id, m))));
    this.queue.after(answered, () => this.event(`the masters reach w${w.id} again`, () => this.net.join([w.id], masters)));
    this.queue.after(answered + this.faultPrng.range(500, 1500), () => this.event('heal', () => this.heal()));
  }

  private onDiskOp(p: SimProcess, op: SimFsOp, path: string): void {
    const demote = this.demotePoints.get(p.id);
    if (demote !== undefined && op === 'create' && path.startsWith(`${demote.dir}/chunks/`) && path.endsWith('.pending')) {
      this.demotePoints.delete(p.id);
      const w = p as WorkerProcess;
      const inc = p.incarnation;
      this.queue.after(0, () => this.event(`cut w${p.id} off mid-write`, () => w.incarnation === inc && w.alive && this.demote(w, demote.successor)));
    }
    const point = this.crashPoints.get(p.id);
    if (point === undefined || point.op !== op || !path.startsWith(`${point.dir}/chunks/`)) return;
    if (op === 'create' && !path.endsWith('.pending')) return;
    this.crashPoints.delete(p.id);
    this.stats.crashesMidWrite++;
    const inc = p.incarnation;
    const w = p as WorkerProcess;
    this.queue.after(0, () => this.event(`kill w${p.id} during ${op} ${path}`, () => w.incarnation === inc && this.crashWorker(w, this.faultPrng.chance(0.5), ` as the ${point.role}`)));
  }

  private partitionWorkers(): void {
    const p = this.faultPrng;
    const ids = this.workers.map((w) => w.id);
    const shuffled = [...ids].sort(() => p.float() - 0.5);
    const cut = p.range(1, ids.length - 1);
    const [a, b] = [shuffled.slice(0, cut), shuffled.slice(cut)];
    this.net.partition(a, b);
    this.remember(`partition workers [${a}] | [${b}]`);
    this.stats.workerPartitions++;
    this.scheduleHeal();
  }

  private cutWorkerFromMasters(): void {
    const w = this.faultPrng.pick(this.workers);
    const masters = this.masters.map((m) => m.id);
    this.net.partition([w.id], masters);
    this.remember(`cut w${w.id} off from the masters`);
    this.stats.masterPartitions++;
    this.scheduleHeal();
  }

  private scheduleHeal(): void {
    this.queue.after(this.faultPrng.range(100, 1500), () => this.event('heal', () => this.heal()));
  }

  private heal(): void {
    this.net.heal();
  }

  /** Stalls a worker, mostly for longer than the offline timeout: it must stop serving before the masters count it out. */
  private stallWorker(): void {
    const p = this.faultPrng;
    const w = p.pick(this.workers);
    if (!w.alive) return;
    const ms = p.chance(0.7) ? p.range(timing.offlineTimeoutMs + 100, 1500) : p.range(50, 400);
    this.remember(`stall w${w.id} for ${ms}ms`);
    this.stats.workerStalls++;
    w.stall(ms);
  }

  private fillDisk(w: WorkerProcess): void {
    if (this.filled.has(w.id)) return;
    const free = this.faultPrng.chance(0.5) ? 0 : this.faultPrng.int(4096);
    w.fs.fill(free);
    this.filled.add(w.id);
    this.remember(`disk of w${w.id} full (${free} bytes free)`);
    this.stats.disksFilled++;
    this.queue.after(this.faultPrng.range(200, 1500), () => this.event(`disk of w${w.id} has space again`, () => this.unfill(w)));
  }

  private unfill(w: WorkerProcess): void {
    w.fs.unfill();
    this.filled.delete(w.id);
  }

  private failFsync(w: WorkerProcess): void {
    if (!w.alive) return;
    this.remember(`the next fsync of w${w.id} fails (EIO)`);
    this.fsyncFailing.add(w.id);
  }

  private syncFails(p: SimProcess, path: string): boolean {
    if (!this.fsyncFailing.delete(p.id)) return false;
    this.stats.fsyncErrors++;
    this.remember(`fsync of ${path} on p${p.id} fails (EIO)`);
    // The target refuses writes from then on; an operator (or a supervisor) restarts the worker.
    if (p instanceof WorkerProcess) {
      const inc = p.incarnation;
      this.restartAfterEio.set(p, inc);
      this.queue.after(this.faultPrng.range(300, 1200), () =>
        this.event(`restart w${p.id} after its failed fsync`, () => {
          if (this.restartAfterEio.get(p) === inc) this.restartAfterEio.delete(p);
          if (p.incarnation === inc) this.crashWorker(p, false, ' (after EIO)', true);
        }),
      );
    }
    return true;
  }

  /** Flips a bit in a committed chunk file of a worker that is down. */
  private rot(): void {
    const p = this.faultPrng;
    const down = this.workers.filter((w) => !w.alive);
    if (down.length === 0) return;
    const w = p.pick(down);
    const routing = this.leaderRouting();
    if (routing === undefined) return;
    const found: { path: string; bytes: number; key: string }[] = [];
    for (const t of routing.info.targets) {
      // Only a replica that a resync will repair: two other members of its chain serve. Losing
      // every good copy of a chunk is beyond what three replicas survive.
      if (t.workerId !== w.id || t.chainId === 0) continue;
      if (routing.readMembers(t.chainId).filter((m) => m.targetId !== t.targetId).length < 2) continue;
      for (const inode of files) {
        const fanout = `${t.path}/chunks/${fanoutDirName(inode)}`;
        for (const f of w.fs.durableFiles(fanout)) {
          const key = `${inode}:${Number.parseInt(f.name.slice(17, 25), 16)}`;
          if (f.name.endsWith('.chunk') && f.bytes.length > 0 && !this.rotted.has(key)) found.push({ path: `${fanout}/${f.name}`, bytes: f.bytes.length, key });
        }
      }
    }
    if (found.length === 0) return;
    const f = p.pick(found);
    const offset = p.int(f.bytes);
    w.fs.flipBit(f.path, offset, p.int(8));
    this.damaged.add(f.path);
    this.rotted.add(f.key);
    this.remember(`bit flip in ${f.path} at ${offset} (w${w.id} is down)`);
    this.stats.bitFlips++;
  }

  private degradeNetwork(): void {
    const p = this.faultPrng;
    const c = { delayMinMs: 1, delayMaxMs: p.range(5, 40), dropRate: p.float() * 0.15, dupRate: p.float() * 0.05 };
    this.net.conditions = c;
    this.remember(`network delay<=${c.delayMaxMs}ms drop=${c.dropRate.toFixed(2)} dup=${c.dupRate.toFixed(2)}`);
  }

  /** Light master faults (the kv and meta workloads cover the masters): the leader crashes or stalls. */
  private masterFault(): void {
    const p = this.faultPrng;
    const leader = this.masters.find((m) => m.isLeader());
    if (leader === undefined || this.masters.some((m) => !m.alive)) return;
    this.stats.masterFaults++;
    if (p.chance(0.5)) {
      const ms = p.range(100, 600);
      this.remember(`stall master m${leader.id} for ${ms}ms`);
      leader.stall(ms);
      return;
    }
    this.remember(`crash master m${leader.id}`);
    this.restartMasterLater(leader, p.chance(0.5));
  }

  private restartMasterLater(m: MasterProcess, tear: boolean): void {
    m.crash(tear);
    const inc = m.incarnation;
    this.queue.after(this.faultPrng.range(100, 800), () => this.event(`restart m${m.id}`, () => !m.alive && m.incarnation === inc && m.start()));
  }

  private onMasterDown(m: MasterProcess, err: unknown): void {
    this.remember(`m${m.id} stops: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
    this.restartMasterLater(m, false);
  }

  private onWorkerStartFailed(w: WorkerProcess, err: unknown): void {
    if (!(err instanceof CodedError)) {
      this.report('crash', `w${w.id} failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      return;
    }
    this.remember(`w${w.id} failed to start: ${err.code} ${err.message}`);
    w.crash(false);
    const inc = w.incarnation;
    this.queue.after(300, () => this.event(`start w${w.id} again`, () => !w.alive && w.incarnation === inc && w.start()));
  }

  private calm(): void {
    this.net.heal();
    this.net.conditions = calmNetwork;
    this.slowDisk.clear();
    this.crashPoints.clear();
    this.demotePoints.clear();
    this.fsyncFailing.clear();
    for (const id of this.filled) this.unfill(this.workers.find((w) => w.id === id)!);
    for (const m of this.masters) if (!m.alive) m.start();
    // A worker left with a failed target by an fsync error is restarted now: its supervised
    // restart would otherwise come up to 2.7 s into the calm, a fault outliving the faults.
    for (const [w, inc] of this.restartAfterEio) {
      // Only the incarnation whose fsync failed: another fault may have restarted it since.
      if (!w.alive || w.incarnation !== inc) continue;
      this.remember(`restart w${w.id} after its failed fsync, at calm`);
      this.stats.workerCrashes++;
      w.crash(false);
    }
    this.restartAfterEio.clear();
    for (const w of this.workers) if (!w.alive) w.start();
    this.remember('calm: faults stop, every process up');
  }

  // ---- the end -------------------------------------------------------------------------------------

  private leaderRouting(): Routing | undefined {
    const leader = this.masters.filter((m) => m.isLeader()).sort((a, b) => b.journal!.status().term - a.journal!.status().term)[0];
    return leader === undefined ? undefined : new Routing(leader.sm.state.routing() as RoutingInfo);
  }

  private allServing(routing: Routing | undefined): boolean {
    return routing !== undefined && routing.info.chains.length > 0 && routing.info.targets.every((t) => t.chainId === 0 || t.state === TargetState.Serving);
  }

  /** Once every chain serves from all its members (or shortly before the end), a client reads every chunk. */
  private finalReadsWhenServing(): void {
    if (!this.allServing(this.leaderRouting()) && this.queue.nowMs < this.endMs - 700) {
      this.queue.after(50, () => this.event('final reads when every chain serves', () => this.finalReadsWhenServing()));
      return;
    }
    const reader = this.procs.get(clientIdBase + this.clients.length + 1) as ClientProcess;
    const c: ClientState = { proc: reader, busy: true, writes: 0, completedAfterCalm: 0 };
    let left = this.keys.length;
    for (const k of this.keys) {
      this.read(c, k, 'final', (ok) => {
        if (ok && --left === 0) this.finalReadsDone = true;
      });
    }
  }

  private async checkEnd(): Promise<void> {
    const routing = this.leaderRouting();
    if (routing === undefined) this.fail('liveness', `no leading master ${this.opts.calmMs}ms after faults stopped`);
    if (!this.allServing(routing)) {
      const states = routing.info.targets.map((t) => `${t.targetId}@c${t.chainId}:${t.state}`).join(' ');
      this.fail('liveness', `not every chain serves from all its members at the end: ${states}`);
    }
    if (!this.finalReadsDone) this.fail('liveness', 'the final reads of every chunk did not all complete');
    for (const c of this.clients) if (c.completedAfterCalm === 0) this.fail('liveness', `client c${c.proc.id} completed no operation after faults stopped`);
    this.stats.corruptReadsSeen = [...this.procs.values()].reduce((n, p) => n + (p instanceof ClientProcess ? p.data.corruptSeen.length : 0), 0);
    await this.checkReplicas(routing);
    const lin = checkLinearizable(kvModel, this.history, { stepBudget: 2_000_000 });
    if (lin.result === 'illegal') this.fail('linearizability', lin.explanation);
    if (lin.result === 'unknown') this.fail('linearizability', `check inconclusive: ${lin.reason}`);
  }

  /** Every member of a chain holds the same committed chunks, each readable whole and matching its checksum (but for damage the simulator did). */
  private async checkReplicas(routing: Routing): Promise<void> {
    for (const chain of routing.info.chains) {
      const seen = new Map<string, { target: number; meta: string }>();
      const holders = new Map<string, number>();
      for (const targetId of chain.targetIds) {
        const t = routing.target(targetId)!;
        const store = this.workers.find((w) => w.id === t.workerId)?.worker?.store(targetId);
        if (store === undefined) this.fail('liveness', `target ${targetId} of chain ${chain.chainId} has no running store at the end`);
        for (const m of store.list()) {
          if (m.commitVersion === 0) continue;
          const key = `${m.id.inodeId}:${m.id.index}`;
          holders.set(key, (holders.get(key) ?? 0) + 1);
          const file = `${t.path}/chunks/${fanoutDirName(m.id.inodeId)}/${chunkFileName(m.id, m.commitVersion, 'chunk')}`;
          try {
            const { data } = await store.readWhole(m.id);
            if (crc32c(data) !== m.crc32c) this.fail('replicas agree', `target ${targetId} holds ${key} v${m.commitVersion} whose content does not match its checksum`);
          } catch (err) {
            if (codeOf(err) === WorkerErrorCode.ChunkCorrupt && this.damaged.has(file)) continue;
            this.fail('replicas agree', `target ${targetId} cannot read ${key} v${m.commitVersion}: ${(err as Error).message}`);
          }
          const meta = `v${m.commitVersion} ${m.lengthBytes}B crc ${m.crc32c.toString(16)}`;
          const first = seen.get(key);
          if (first === undefined) seen.set(key, { target: targetId, meta });
          else if (first.meta !== meta) this.fail('replicas agree', `chain ${chain.chainId}: target ${first.target} holds ${key} as ${first.meta}, target ${targetId} as ${meta}`);
        }
      }
      for (const [key, n] of holders) {
        if (n !== chain.targetIds.length) this.fail('replicas agree', `chain ${chain.chainId}: ${key} is on ${n} of its ${chain.targetIds.length} members`);
      }
    }
  }
}

/** A whole chunk for `value`: its id, then bytes derived from it, so a torn, mixed or flipped chunk never decodes. */
export function chunkBytes(value: string, k: { key: string; lengthBytes: number }): Uint8Array {
  const id = new TextEncoder().encode(value);
  const out = new Uint8Array(k.lengthBytes);
  out[0] = id.length;
  out.set(id, 1);
  let h = fnv(`${k.key}/${value}`);
  for (let i = 1 + id.length; i < out.length; i++) {
    h = Math.imul(h ^ i, 0x01000193) >>> 0;
    out[i] = h & 0xff;
  }
  return out;
}

/** The value a chunk's bytes were written for, or undefined if they are not exactly such a chunk. */
export function decodeChunk(data: Uint8Array, k: { key: string; lengthBytes: number }): string | undefined {
  if (data.length !== k.lengthBytes || data.length < 1 || data[0] + 1 > data.length) return undefined;
  const value = new TextDecoder().decode(data.subarray(1, 1 + data[0]));
  const want = chunkBytes(value, k);
  for (let i = 0; i < want.length; i++) if (want[i] !== data[i]) return undefined;
  return value;
}

function fnv(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

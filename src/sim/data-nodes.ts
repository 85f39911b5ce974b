// The processes of the data-path simulation (data-simulation.ts): masters running the production
// RaftJournal, metadata state machine and ClusterManager; storage workers running the production
// StorageWorker; and clients with the production DataClient. Each is a simulated process with its
// own disk, drifting clock and network endpoint; a crash drops everything its process had started.

import { CodedError } from '../errors.ts';
import { RaftJournal, type RaftJournalOptions } from '../journal/raft/raft-journal.ts';
import { ClusterManager, type ClusterTiming } from '../master/cluster-manager.ts';
import { MetaStateMachine } from '../meta/state-machine.ts';
import { MasterCalls } from '../client/master-calls.ts';
import { DataClient } from '../client/data-client.ts';
import type { Disk } from '../io/index.ts';
import { StorageWorker } from '../worker/worker.ts';
import { MasterWorkerMethod } from '../worker/protocol.ts';
import type { ReplicaBug } from '../worker/replication.ts';
import type { Prng } from './prng.ts';
import { StallQueue } from './stall-queue.ts';
import type { EventText } from './event-trace.ts';
import { SimClock } from './sim-clock.ts';
import { SimFs, type SimFsOp } from './sim-fs.ts';
import { SimTransport, simAddress, type SimWire } from './sim-transport.ts';

/** Workers register a host:port; the simulated network only looks at the host. */
const workerPort = 7000;

/** What every simulated process needs of the simulation. */
export interface ProcessEnv {
  prng: Prng;
  now(): number;
  after(delayMs: number, what: EventText, run: () => void): void;
  wire: SimWire;
  syncLatencyMs(p: SimProcess): number;
  syncFails(p: SimProcess, path: string): boolean;
  onDiskOp(p: SimProcess, op: SimFsOp, path: string): void;
  /** The production code's log lines, into the trace. */
  log(p: SimProcess, level: string, msg: string, ctx?: object): void;
}

/** One process on one machine: its disk outlives it, its timers, calls and disk operations do not. */
export class SimProcess {
  readonly id: number;
  readonly fs = new SimFs();
  readonly clockRate: number;
  incarnation = 0;
  alive = false;
  transport: SimTransport | undefined;
  clock: SimClock | undefined;
  protected readonly env: ProcessEnv;
  private readonly clockOriginMs: number;
  private readonly stalls = new StallQueue();

  constructor(id: number, env: ProcessEnv, clockRate: number, clockOriginMs: number) {
    this.id = id;
    this.env = env;
    this.clockRate = clockRate;
    this.clockOriginMs = clockOriginMs;
  }

  /** A new process: fresh clock, endpoint and disk handle; `live()` turns false when it dies. */
  protected boot(): { disk: Disk; clock: SimClock; transport: SimTransport; live: () => boolean } {
    const inc = ++this.incarnation;
    this.alive = true;
    this.stalls.clear();
    const live = (): boolean => this.alive && this.incarnation === inc;
    const disk = this.fs.attach({
      later: (ms, fn) => this.later(inc, ms, 'disk', fn, 2),
      syncLatencyMs: () => this.env.syncLatencyMs(this),
      syncFails: (path) => this.env.syncFails(this, path),
      syncLies: () => false,
      onOp: (op, path) => this.env.onDiskOp(this, op, path),
    });
    const clock = (this.clock = new SimClock({ nowMs: () => this.env.now(), later: (ms, fn) => this.later(inc, ms, 'timer', fn, 0) }, this.clockRate, this.clockOriginMs, this.env.prng));
    const transport = (this.transport = new SimTransport(this.env.wire, this.id, live));
    return { disk, clock, transport, live };
  }

  /** The process dies: unsynced writes are lost, the last ones perhaps torn. */
  crash(tear: boolean): void {
    this.alive = false;
    this.incarnation++;
    this.transport = undefined;
    this.fs.crash(this.env.prng, tear);
  }

  /** Runs nothing for `ms` (GC, SIGSTOP); then what piled up runs, timers first, each as its own callback. */
  stall(ms: number): void {
    if (!this.alive || this.stalled()) return;
    this.stalls.begin(this.env.now(), ms);
    const inc = this.incarnation;
    this.env.after(ms, `p${this.id} resumes`, () => {
      if (!this.alive || this.incarnation !== inc) return;
      const work = this.stalls.end();
      for (const w of work) this.env.after(0, `p${this.id} resumed work`, () => this.alive && this.incarnation === inc && w());
    });
  }

  stalled(): boolean {
    return this.stalls.stalled(this.env.now());
  }

  private later(inc: number, ms: number, what: string, fn: () => void, rank: number): void {
    this.env.after(ms, () => `p${this.id} ${what}`, () => {
      if (this.alive && this.incarnation === inc) this.runOrQueue(fn, rank);
    });
  }

  /** Runs `fn` on the current process after `ms` (an RPC deadline). */
  laterCurrent(ms: number, fn: () => void): void {
    if (this.alive) this.later(this.incarnation, ms, 'deadline', fn, 0);
  }

  /** A message arrives: handled now, or when a stall ends. */
  deliver(fn: () => void): void {
    if (this.alive) this.runOrQueue(fn, 1);
  }

  private runOrQueue(fn: () => void, rank: number): void {
    this.stalls.runOrQueue(this.env.now(), fn, rank);
  }
}

export interface MasterEnv extends ProcessEnv {
  founders: Map<number, string>;
  journal: Pick<RaftJournalOptions, 'electionTicks' | 'heartbeatTicks' | 'checkpointEveryEntries' | 'checkpointKeepEntries' | 'proposalTimeoutMs' | 'raftTuning' | 'diskReserveBytes' | 'diskCheckMs' | 'tickMs'>;
  timing: ClusterTiming;
  replication: number;
  /** The journal stopped (a failed fsync) or refused to start: the process exits, as a master does. */
  onMasterDown(m: MasterProcess, err: unknown): void;
}

/** A master: the journal with the metadata state machine, and the cluster manager that acts while it leads. */
export class MasterProcess extends SimProcess {
  journal: RaftJournal | undefined;
  sm = new MetaStateMachine();
  private readonly menv: MasterEnv;

  constructor(id: number, env: MasterEnv, clockRate: number, clockOriginMs: number) {
    super(id, env, clockRate, clockOriginMs);
    this.menv = env;
  }

  start(): void {
    const { disk, clock, transport, live } = this.boot();
    const sm = (this.sm = new MetaStateMachine());
    const journal = new RaftJournal({
      ...this.menv.journal,
      id: this.id,
      dir: `/m${this.id}`,
      address: simAddress(this.id),
      founders: this.menv.founders,
      transport,
      disk,
      clock,
      onFatal: (err) => live() && this.menv.onMasterDown(this, err),
    });
    this.journal = journal;
    const manager = new ClusterManager({ masterId: this.id, journal, state: () => sm.state, clock, replication: this.menv.replication, timing: this.menv.timing, log: (level, msg, ctx) => live() && this.env.log(this, level, msg, ctx) });
    transport.handle(MasterWorkerMethod.register, (body) => manager.register(body));
    transport.handle(MasterWorkerMethod.heartbeat, async (body) => manager.heartbeat(body));
    transport.handle(MasterWorkerMethod.routing, async () => {
      await journal.readBarrier();
      return sm.state.routing();
    });
    journal.start(sm).then(
      () => live() && manager.start(),
      (err: unknown) => live() && this.menv.onMasterDown(this, err),
    );
  }

  override crash(tear: boolean): void {
    this.journal = undefined;
    super.crash(tear);
  }

  isLeader(): boolean {
    return this.alive && this.journal?.core() !== undefined && this.journal.isLeader();
  }
}

export interface WorkerEnv extends ProcessEnv {
  masters: string[];
  callTimeoutMs: number;
  forwardDeadlineMs: number;
  bugs: ReadonlySet<ReplicaBug>;
  /** StorageWorker.start failed: a supervisor starts the process again. */
  onWorkerStartFailed(w: WorkerProcess, err: unknown): void;
}

/** A storage worker with its target directories on its own disk. */
export class WorkerProcess extends SimProcess {
  worker: StorageWorker | undefined;
  readonly targetDirs: string[];
  private readonly wenv: WorkerEnv;

  constructor(id: number, env: WorkerEnv, clockRate: number, clockOriginMs: number, targets: number) {
    super(id, env, clockRate, clockOriginMs);
    this.wenv = env;
    this.targetDirs = Array.from({ length: targets }, (_, i) => `/w${id}/t${i + 1}`);
  }

  start(): void {
    const { disk, clock, transport, live } = this.boot();
    this.worker = undefined;
    const instance = this.env.prng.u32().toString(16).padStart(8, '0');
    StorageWorker.start({
      id: this.id,
      address: `${simAddress(this.id)}:${workerPort}`,
      masters: this.wenv.masters,
      targetDirs: this.targetDirs,
      instance,
      disk,
      clock,
      transport,
      callTimeoutMs: this.wenv.callTimeoutMs,
      forwardDeadlineMs: this.wenv.forwardDeadlineMs,
      bugs: this.wenv.bugs,
      // Off here: the data workload checks chunks itself, and the seeds pinned for its bugs were
      // found without the scrubber's reads (docs/data-path-sim.md).
      scrub: { rateBytesPerSec: 0 },
      log: (level, msg, ctx) => live() && this.env.log(this, level, msg, ctx),
    }).then(
      (w) => {
        if (live()) this.worker = w;
      },
      (err: unknown) => live() && this.wenv.onWorkerStartFailed(this, err),
    );
  }

  override crash(tear: boolean): void {
    this.worker = undefined;
    super.crash(tear);
  }
}

export interface ClientEnv extends ProcessEnv {
  masters: string[];
  retryDeadlineMs: number;
  callTimeoutMs: number;
}

/** A client machine: the production DataClient and its MasterClient over the simulated network. */
export class ClientProcess extends SimProcess {
  readonly data: DataClient;

  constructor(id: number, env: ClientEnv, clockRate: number, clockOriginMs: number) {
    super(id, env, clockRate, clockOriginMs);
    const { clock, transport } = this.boot();
    const connect = (a: string) => transport.connect(a);
    const master = new MasterCalls({ masters: env.masters, connect, clock, clientId: `client-${id}`, deadlineMs: env.retryDeadlineMs, callTimeoutMs: env.callTimeoutMs });
    this.data = new DataClient({ master, connect, clock, retryDeadlineMs: env.retryDeadlineMs, callTimeoutMs: env.callTimeoutMs });
  }
}

export function codeOf(err: unknown): string {
  return err instanceof CodedError ? err.code : String((err as { code?: unknown } | undefined)?.code ?? '');
}

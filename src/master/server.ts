// One metadata master: the RPC server, the Raft journal, and the metadata state machine behind the
// services clients call. Mutations are stamped with the leader's clock and proposed; queries wait
// for a ReadIndex barrier and read the local state. Clients' calls in progress are bounded
// (pendingCallsMax): one beyond is refused with CAIRN_OVERLOADED before it reaches the journal.

import { isPlainObject } from '../plain-object.ts';
import { randomUUID } from 'node:crypto';
import { Packr } from 'msgpackr';
import { formatAddress, parseAddress, type HostPort } from '../address.ts';
import { CairnError, ErrorCode } from '../errors.ts';
import type { Journal } from '../journal/index.ts';
import { openJournal } from '../journal/open-journal.ts';
import { logCallback, type Logger } from '../log.ts';
import { RpcClient, RpcError, RpcErrorCode, RpcServer, reply, rpcLimits, type Handler, type RpcServerStats } from '../rpc/index.ts';
import { validateCommand, validateQuery, type MetaCommand } from '../meta/commands.ts';
import { acquireDirLock } from './dir-lock.ts';
import { MetaError } from '../meta/errors.ts';
import { startHttp, type HttpEndpoint } from './http.ts';
import { startDashboard, type Dashboard } from '../web/dashboard.ts';
import { MasterMetrics } from './metrics.ts';
import { opsHttpOptions } from '../ops-http.ts';
import { ClusterManager, clusterTimingDefault, replicationDefault, type ClusterTiming } from './cluster-manager.ts';
import { systemClock } from '../io/system-clock.ts';
import type { Disk } from '../io/index.ts';
import { MasterWorkerMethod } from '../worker/protocol.ts';
import { workerFrameBytesMax } from '../worker/process.ts';
import { refusalToStart } from './rebuild.ts';
import type { MetaResult, Session } from '../meta/namespace-state.ts';
import { restoreFloor } from '../meta/restore-floor.ts';
import {
  MetaStateMachine,
  encodeCommandEntry,
  encodeRestoreBegin,
  encodeRestoreChunk,
  encodeRestoreCommit,
} from '../meta/state-machine.ts';

export interface MasterOptions {
  id: number;
  /** The WAL, snapshots and LOCK file. */
  dir: string;
  /** The address it serves on, which is also the one its peers use; port 0 lets the OS pick. */
  listen: string;
  /** Founding members (id → address), this one included; empty for a master that joins an existing cluster. */
  peers: Map<number, string>;
  secret: string | undefined;
  tickMs?: number;
  onFatal?: (err: unknown) => void;
  /** Checkpoint after this many applied entries, keeping this many behind it in the log. */
  checkpointEvery?: number;
  checkpointKeep?: number;
  /** Reads on the leader's lease instead of a heartbeat round each (off by default). */
  leaseRead?: boolean;
  /** Where to serve /metrics and /healthz; none when absent. */
  http?: string;
  /** /metrics asks for the cluster secret as a bearer token (refused to start without a secret). */
  metricsAuth?: boolean;
  /** Replicas per chain the cluster manager builds (default 3). */
  replication?: number;
  /** Heartbeat interval and offline timeout of workers (defaults 1 s and 5 s). */
  timing?: ClusterTiming;
  /** Replace a chain member offline this long, as one of a decommissioned worker (off when absent). */
  replaceAfterMs?: number;
  /** Chain members moving onto idle workers at once (0: rebalancing off); default rebalanceMovesDefault. */
  rebalanceMoves?: number;
  /** How long a deleted file's chunks stay before they are collected; default gcDelayMsDefault (60 s). */
  gcDelayMs?: number;
  /** A write session its client has not renewed for this long ends; default sessionLeaseMsDefault (2 min). */
  sessionLeaseMs?: number;
  /** After a restore, how long a chain waits for all its members' workers; default restoreWaitMsDefault (5 min). */
  restoreWaitMs?: number;
  /** How often the leader empties free targets that still hold chunks; default reclaimEveryMsDefault (tests shorten it). */
  reclaimEveryMs?: number;
  /** The journal's backend: the embedded Raft journal when absent, else ZooKeeper at this ensemble. */
  zookeeper?: { connect: string; clusterId: string; sessionTimeoutMs?: number; bucketEntries?: number };
  /** How much clients can make it hold before it refuses with CAIRN_OVERLOADED (defaults masterLimitsDefault). */
  limits?: Partial<MasterLimits>;
  /** The Raft journal's disk (the real one when absent): tests fill it. */
  journalDisk?: Disk;
  log: Logger;
}

/** A master's bounds on what clients can make it hold. */
export interface MasterLimits {
  connectionsMax: number;
  connectionsPerAddressMax: number;
  /** Bytes of clients' requests held at once (at least the largest frame, 64 MiB). */
  requestBytesMax: number;
  /** How long a client's request waits for room in requestBytesMax before it is refused. */
  requestWaitMs: number;
  /** Clients' calls (meta.mutate, meta.query, cluster.routing) in progress at once. */
  pendingCallsMax: number;
}

export const masterLimitsDefault: MasterLimits = {
  connectionsMax: rpcLimits.connectionsMaxDefault,
  connectionsPerAddressMax: rpcLimits.connectionsPerAddressMaxDefault,
  requestBytesMax: rpcLimits.requestBytesMaxDefault,
  requestWaitMs: rpcLimits.admissionWaitMsDefault,
  // As ZooKeeper's globalOutstandingLimit (1000): far more than group commit needs to fill a batch.
  pendingCallsMax: 1024,
};

export interface Master {
  address: string;
  httpAddress: string | undefined;
  journal: Journal;
  sm: MetaStateMachine;
  /** What it holds against its limits, and what it refused since it started. */
  load(): MasterLoad;
  stop(): Promise<void>;
}

export interface MasterLoad {
  rpc: RpcServerStats;
  pendingCalls: number;
  callsRefused: number;
}

const backupPackr = new Packr({ useRecords: false });

export async function startMaster(opts: MasterOptions): Promise<Master> {
  // Before anything listens or touches the WAL: a second process on one directory would corrupt it.
  const limits = masterLimits(opts.limits);
  const lock = await acquireDirLock(opts.dir);
  if (lock.note !== undefined) opts.log.warn({ dir: opts.dir }, lock.note);
  const metrics = new MasterMetrics(opts.zookeeper === undefined ? 'raft' : 'zookeeper', opsHttpOptions(opts.metricsAuth, opts.secret));
  const server = new RpcServer({
    metrics: metrics.rpcServer,
    secret: opts.secret,
    connectionsMax: limits.connectionsMax,
    connectionsPerAddressMax: limits.connectionsPerAddressMax,
    requestBytesMax: limits.requestBytesMax,
    admissionWaitMs: limits.requestWaitMs,
    log: logCallback(opts.log),
  });
  const gate = new PendingCalls(limits.pendingCallsMax);
  const load = (): MasterLoad => ({ rpc: server.stats(), pendingCalls: gate.pending, callsRefused: gate.refused });
  let journal: Journal | undefined;
  let http: HttpEndpoint | undefined;
  let dashboard: Dashboard | undefined;
  let stopManager = (): void => undefined;
  // The lock goes last, once nothing writes to the directory; a lock left behind by a failed stop
  // is harmless, as the next start finds its pid dead.
  const stop = async (): Promise<void> => {
    stopManager();
    await http?.close();
    dashboard?.stop();
    await server.close();
    await journal?.stop();
    await lock.release();
  };
  try {
    const httpAt: HttpAt = {};
    const listen = optionAddress(opts.listen, 'listen');
    const bound = await server.listen(listen.host, listen.port);
    const address = formatAddress(bound.host, bound.port);
    const sm = new MetaStateMachine();
    journal =
      opts.zookeeper === undefined
        ? openJournal({
            backend: 'raft',
            server,
            secret: opts.secret,
            id: opts.id,
            dir: opts.dir,
            address,
            founders: opts.peers,
            tickMs: opts.tickMs,
            checkpointEveryEntries: opts.checkpointEvery,
            checkpointKeepEntries: opts.checkpointKeep,
            leaseRead: opts.leaseRead,
            log: logCallback(opts.log),
            onFatal: opts.onFatal,
            metrics: metrics.journal,
            ...(opts.journalDisk === undefined ? {} : { disk: opts.journalDisk }),
          })
        : openJournal({
            backend: 'zookeeper',
            server,
            id: opts.id,
            dir: opts.dir,
            address,
            checkpointEveryEntries: opts.checkpointEvery,
            retainEntries: opts.checkpointKeep,
            connect: opts.zookeeper.connect,
            clusterId: opts.zookeeper.clusterId,
            sessionTimeoutMs: opts.zookeeper.sessionTimeoutMs,
            bucketEntriesMax: opts.zookeeper.bucketEntries,
            secret: opts.secret,
            log: logCallback(opts.log),
            onFatal: opts.onFatal,
            metrics: metrics.journal,
          });
    const manager = new ClusterManager({
      masterId: opts.id,
      journal,
      state: () => sm.state,
      clock: systemClock,
      replication: opts.replication ?? replicationDefault,
      timing: opts.timing ?? clusterTimingDefault,
      ...(opts.replaceAfterMs === undefined ? {} : { replaceAfterMs: opts.replaceAfterMs }),
      ...(opts.rebalanceMoves === undefined ? {} : { rebalanceMoves: opts.rebalanceMoves }),
      ...(opts.gcDelayMs === undefined ? {} : { gcDelayMs: opts.gcDelayMs }),
      ...(opts.restoreWaitMs === undefined ? {} : { restoreWaitMs: opts.restoreWaitMs }),
      ...(opts.sessionLeaseMs === undefined ? {} : { sessionLeaseMs: opts.sessionLeaseMs }),
      ...(opts.reclaimEveryMs === undefined ? {} : { reclaimEveryMs: opts.reclaimEveryMs }),
      connect: (address) => new RpcClient(address, { secret: opts.secret, frameBytesMax: workerFrameBytesMax, metrics: metrics.rpcClient }),
      log: logCallback(opts.log),
    });
    stopManager = () => manager.stop();
    registerServices(server, journal, sm, manager, gate, metrics, httpAt);
    await journal.start(sm);
    manager.start();
    if (opts.http !== undefined) {
      const at = optionAddress(opts.http, 'http');
      dashboard = startDashboard({ journal, sm, secret: opts.secret, rpcAddress: address, health: () => manager.health(), registry: metrics.registry, log: opts.log });
      http = await startHttp(at.host, at.port, journal, sm, () => manager.quarantineLatest(), load, metrics, dashboard.routes);
      httpAt.address = http.address;
    }
    opts.log.info({ address, http: http?.address, peers: Object.fromEntries(opts.peers) }, 'master started');
    return { address, httpAddress: http?.address, journal, sm, load, stop };
  } catch (err) {
    // Stop what started, so that the process can exit and the next start finds the directory free.
    await stop().catch(() => undefined);
    throw refusalToStart(err, opts);
  }
}

/** Commands only the cluster manager proposes: a client sending one through meta.mutate is refused. */
const managerOps: ReadonlySet<string> = new Set(['gcDone', 'expireSessions', 'expireDirLeases', 'resizeTargets', 'registerWorker', 'addChains', 'updateChains', 'initCluster', 'decommissionWorker', 'replaceChainMember', 'moveChainMember', 'endChainMove', 'targetReclaimed']);

/** The limits with their defaults, checked (the RPC server checks its own when it is made). */
function masterLimits(given: Partial<MasterLimits> = {}): MasterLimits {
  const limits = { ...masterLimitsDefault, ...Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined)) };
  if (!Number.isSafeInteger(limits.pendingCallsMax) || limits.pendingCallsMax <= 0) {
    throw new CairnError(ErrorCode.BadOption, `pendingCallsMax must be a positive integer, got ${limits.pendingCallsMax}`);
  }
  return limits;
}

/**
 * Clients' calls in progress on this master. A call beyond the limit is refused at once, before it
 * is proposed or waits for a barrier: the journal's queues then stay short, and a refused mutation
 * has no effect. Workers' heartbeats and the masters' own traffic do not pass here.
 */
class PendingCalls {
  readonly max: number;
  pending = 0;
  refused = 0;

  constructor(max: number) {
    this.max = max;
  }

  gate(handler: Handler): Handler {
    return async (body, ctx) => {
      if (this.pending >= this.max) {
        this.refused++;
        throw new RpcError(RpcErrorCode.Overloaded, `this master has ${this.pending} clients' calls in progress, its limit (pendingCallsMax); nothing was done, retry later`, { pendingCallsMax: this.max });
      }
      this.pending++;
      try {
        return await handler(body, ctx);
      } finally {
        this.pending--;
      }
    };
  }
}

/** Where this master serves HTTP, once it does: followers' dashboards forward to the leader's. */
interface HttpAt {
  address?: string;
}

/**
 * Commands that free space (removals, and the end of a write session, which may remove an
 * abandoned file): a master whose disk is below its reserve still takes them, so that a full
 * cluster can be emptied through cairn.
 */
const spaceFreeingOps: ReadonlySet<string> = new Set(['unlink', 'rmdir', 'closeSession', 'releaseDir']);

function freesSpace(cmd: MetaCommand): boolean {
  return spaceFreeingOps.has(cmd.op) || (cmd.op === 'dirBatch' && cmd.ops.every((o) => o.op === 'unlink'));
}

function registerServices(server: RpcServer, journal: Journal, sm: MetaStateMachine, manager: ClusterManager, calls: PendingCalls, metrics: MasterMetrics, httpAt: HttpAt): void {
  server.handle('meta.mutate', calls.gate((body) => measured(metrics, 'mutate', async (op) => {
    const cmd = validateCommand({ ...(body as object), nowMs: Date.now() });
    op.name = cmd.op;
    if (managerOps.has(cmd.op)) throw new CairnError(ErrorCode.InvalidArgument, `${cmd.op} is the cluster manager's; workers register with ${MasterWorkerMethod.register}, operators decommission with ${MasterWorkerMethod.decommission}`);
    if (cmd.op === 'leaseDir') manager.mayLeaseDir(cmd.path, cmd.caller);
    const result = (await journal.propose(encodeCommandEntry(cmd), { onReserve: freesSpace(cmd) })) as MetaResult<unknown>;
    manager.dirLeaseResult(cmd, result);
    const value = unwrap(result);
    const sessionId = (value as { sessionId?: unknown } | null)?.sessionId;
    if (typeof sessionId === 'string') manager.sessionOpened(sessionId);
    return value;
  })));
  // Not gated: a busy master must not let live clients' sessions expire (a renewal is a map update).
  server.handle('meta.renewSessions', async (body) => manager.renewSessions(body));
  server.handle('meta.renewDirLeases', async (body) => {
    // A new leader may not have applied a lease its predecessor granted: it would answer it lost.
    await journal.readBarrier();
    return manager.renewDirLeases(body);
  });
  // Workers' registration and heartbeats keep the cluster's picture alive: never made to wait for room.
  server.handle(MasterWorkerMethod.register, (body) => manager.register(body), { internal: true });
  server.handle(MasterWorkerMethod.heartbeat, async (body) => manager.heartbeat(body), { internal: true });
  server.handle(MasterWorkerMethod.health, async () => manager.health());
  server.handle(MasterWorkerMethod.decommission, (body) => manager.decommission(body));
  server.handle(MasterWorkerMethod.recoverChain, (body) => manager.recoverChain(body));
  server.handle(MasterWorkerMethod.replacements, async () => manager.replacements());
  server.handle(MasterWorkerMethod.quarantine, (body) => manager.quarantineReport(body));
  server.handle(MasterWorkerMethod.quarantinePurge, (body) => manager.purgeQuarantine(body));
  server.handle(MasterWorkerMethod.routing, calls.gate(async () => {
    await journal.readBarrier();
    return sm.state.routing();
  }));
  server.handle('meta.query', calls.gate((body) => measured(metrics, 'query', async (op) => {
    const q = validateQuery(body);
    op.name = q.op;
    await journal.readBarrier();
    const result = sm.query(q);
    manager.dirLeaseResult(q, result);
    const value = unwrap(result);
    return q.op === 'sessions' ? manager.withRenewals(value as { sessions: Session[] }) : value;
  })));
  server.handle('master.ping', async () => ({ id: journal.status().id, leader: journal.leader(), isLeader: journal.isLeader(), ...(httpAt.address === undefined ? {} : { httpAddress: httpAt.address }) }));
  server.handle('admin.journal.info', async () => journal.status());
  server.handle('admin.journal.transfer', async (body) => {
    await journal.transferLeader(requireId(body, 'id'));
    return { leader: journal.leader() };
  });
  server.handle('admin.journal.add', async (body) => {
    await journal.addMember(requireId(body, 'id'), requireAddress(body, 'address'));
    return journal.status();
  });
  server.handle('admin.journal.remove', async (body) => {
    await journal.removeMember(requireId(body, 'id'));
    return journal.status();
  });
  server.handle('admin.journal.checkpoint', async () => ({ index: await journal.checkpoint() }));
  server.handle('admin.stateHash', async () => ({ hash: sm.state.stateHash(), applied: journal.status().appliedIndex }));
  server.handle('admin.backup', async () => {
    await journal.readBarrier();
    const chunks = [...sm.snapshot()];
    return reply({ chunks: chunks.length, applied: journal.status().appliedIndex }, backupPackr.pack(chunks));
  });
  server.handle('admin.restore', async (_body, ctx) => {
    if (ctx.payload === undefined) throw new CairnError(ErrorCode.InvalidArgument, 'restore needs the backup as payload');
    const chunks = backupPackr.unpack(ctx.payload) as Uint8Array[];
    const restoreId = randomUUID();
    unwrap((await journal.propose(encodeRestoreBegin(restoreId))) as MetaResult<unknown>);
    // One snapshot chunk per entry (chunks are about 1 MiB; the journal takes entries up to 8 MiB).
    for (const c of chunks) unwrap((await journal.propose(encodeRestoreChunk(restoreId, c))) as MetaResult<unknown>);
    // The lost cluster's inode ids and routing versions live on in workers and clients: the
    // restored counters start above any of them (restore-floor.ts).
    return unwrap((await journal.propose(encodeRestoreCommit(restoreId, restoreFloor(Date.now())))) as MetaResult<unknown>);
  });
}

/**
 * Runs a metadata operation, counted and timed by its op ('invalid' until validation names it: a
 * client's made-up op never becomes a label) and its result ('ok' or the error's code).
 */
async function measured<T>(metrics: MasterMetrics, kind: 'mutate' | 'query', run: (op: { name: string }) => Promise<T>): Promise<T> {
  const startedAt = performance.now();
  const op = { name: 'invalid' };
  try {
    const value = await run(op);
    metrics.metaOp(kind, op.name, 'ok', (performance.now() - startedAt) / 1000);
    return value;
  } catch (err) {
    const code = (err as { code?: unknown } | null)?.code;
    metrics.metaOp(kind, op.name, typeof code === 'string' ? code : RpcErrorCode.Internal, (performance.now() - startedAt) / 1000);
    throw err;
  }
}

/** A failed result becomes an error with its POSIX code, which the RPC layer carries to the client. */
function unwrap(r: MetaResult<unknown>): unknown {
  if (r.ok) return r.value;
  throw new MetaError(r.code, r.message);
}

/** `body[field]` of a request body that must be a map (a hostile or broken peer may send anything). */
function field(body: unknown, name: string): unknown {
  if (!isPlainObject(body)) throw new CairnError(ErrorCode.InvalidArgument, `the request must be a map with ${name}`);
  return Object.hasOwn(body, name) ? body[name] : undefined;
}

function requireId(body: unknown, name: string): number {
  const v = field(body, name);
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw new CairnError(ErrorCode.InvalidArgument, `${name} must be a positive integer`);
  return v;
}

function requireAddress(body: unknown, name: string): string {
  const v = field(body, name);
  const parsed = typeof v === 'string' ? parseAddress(v) : { problem: `got ${v === undefined ? 'nothing' : typeof v}` };
  if ('problem' in parsed) throw new CairnError(ErrorCode.InvalidArgument, `${name} must be host:port: ${parsed.problem}`);
  return v as string;
}

/** An address to listen on (port 0: the OS picks). */
function optionAddress(address: string, option: string): HostPort {
  const parsed = parseAddress(address, { portZero: true });
  if ('problem' in parsed) throw new CairnError(ErrorCode.BadOption, `${option} must be host:port, got '${address}': ${parsed.problem}`);
  return parsed;
}

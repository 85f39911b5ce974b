// The `cairn worker` process: the storage worker on the real disk, clock and TCP, each target
// directory locked against a second process, and /metrics and /healthz over HTTP.

import { randomUUID } from 'node:crypto';
import { Gauge, type Registry } from 'prom-client';
import { BufferPool } from '../buffer-pool.ts';
import { counterOf, gaugeOf, processRegistry, rpcMetrics } from '../metrics.ts';
import { workerMetrics } from './metrics.ts';
import type { ResyncProgress, ResyncTotals } from './resync.ts';
import type { ScrubOptions, ScrubStats } from './scrubber.ts';
import { formatAddress, parseAddress } from '../address.ts';
import { CairnError, ErrorCode } from '../errors.ts';
import type { Disk } from '../io/disk.ts';
import { nodeDisk } from '../io/node-disk.ts';
import { pageDropsAvailable } from '../io/page-cache.ts';
import { rpcTransport } from '../io/rpc-transport.ts';
import { systemClock } from '../io/system-clock.ts';
import { logCallback, type Logger } from '../log.ts';
import { acquireDirLock, type DirLock } from '../master/dir-lock.ts';
import { chunkSizeBytesMax } from '../meta/commands.ts';
import { opsHttpOptions, startOpsHttp, type HttpEndpoint, type OpsHttpOptions } from '../ops-http.ts';
import { RpcServer, rpcLimits, type RpcServerStats } from '../rpc/index.ts';
import { replicaLimitsDefault } from './replication.ts';
import { StorageWorker } from './worker.ts';
import { hostIdentity } from '../io/host-id.ts';

export interface WorkerProcessOptions {
  id: number;
  listen: string;
  masters: string[];
  targets: string[];
  secret: string | undefined;
  domain?: string;
  http?: string;
  /** /metrics asks for the cluster secret as a bearer token. */
  metricsAuth?: boolean;
  /** Chunks per page of a resync's listing (tests). */
  syncPageChunks?: number;
  /** The scrubber's rate (bytes/s; 0 turns it off) and pause between passes. */
  scrub?: Partial<ScrubOptions>;
  /** What the worker's resyncs send together, at most, in bytes/s (default 64 MiB/s). */
  resyncBytesPerSec?: number;
  /** Leave written chunks in the page cache (WorkerOptions.cacheWrites). */
  cacheWrites?: boolean;
  /** Write chunks not kept cached with direct I/O (WorkerOptions.directWrites; default true). */
  directWrites?: boolean;
  /** How long a resync that met chunks damaged on every member waits before it tries again (tests). */
  resyncLostRetryMs?: number;
  /** How much it takes on at once before it refuses with CAIRN_OVERLOADED (defaults workerLimitsDefault). */
  limits?: Partial<WorkerLimits>;
  /** The disk its targets are on (tests pass one that fails; the real one otherwise). */
  disk?: Disk;
  log: Logger;
}

/** A worker's bounds on what clients and peers can make it hold. */
export interface WorkerLimits {
  connectionsMax: number;
  connectionsPerAddressMax: number;
  /** Bytes of clients' requests held at once (their writes' data); peers' forwards are not counted. */
  requestBytesMax: number;
  /** How long a client's request waits for room in requestBytesMax before it is refused. */
  requestWaitMs: number;
  /** Bytes of chunk reads not yet handed to the socket. */
  readBytesMax: number;
}

export interface WorkerProcess {
  address: string;
  httpAddress: string | undefined;
  worker: StorageWorker;
  /** The RPC server's counts (connections, request bytes held, refusals). */
  rpcStats(): RpcServerStats;
  stop(): Promise<void>;
}

/** Frames carry a whole chunk of the largest size plus its header. */
export const workerFrameBytesMax = chunkSizeBytesMax + 1024 * 1024;

export const workerLimitsDefault: WorkerLimits = {
  connectionsMax: rpcLimits.connectionsMaxDefault,
  connectionsPerAddressMax: rpcLimits.connectionsPerAddressMaxDefault,
  // A disk drains a few hundred MiB/s at best, and every write of a chain passes each member's:
  // more writes in progress only lengthen each one's wait (past the 5 s of a forward, measured).
  requestBytesMax: 64 * 2 ** 20,
  // Waiting is cheap (the data stays in TCP); a refusal costs the client its whole send again.
  requestWaitMs: 5_000,
  readBytesMax: replicaLimitsDefault.readBytesMax,
};

/** The limits with their defaults, checked: a client's write and a read of the largest chunk must fit. */
export function workerLimits(given: Partial<WorkerLimits> = {}): WorkerLimits {
  const limits = { ...workerLimitsDefault, ...stripUndefined(given) };
  for (const [name, v] of Object.entries(limits)) {
    if (!Number.isSafeInteger(v) || v <= 0) throw new CairnError(ErrorCode.BadOption, `worker limit ${name} must be a positive integer, got ${v}`);
  }
  if (limits.readBytesMax < chunkSizeBytesMax) throw new CairnError(ErrorCode.BadOption, `the worker's read memory must be at least ${chunkSizeBytesMax} bytes (one chunk of the largest size), got ${limits.readBytesMax}`);
  return limits;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export async function startWorkerProcess(opts: WorkerProcessOptions): Promise<WorkerProcess> {
  const locks: DirLock[] = [];
  const limits = workerLimits(opts.limits);
  // Metrics are kept only when something serves them.
  const registry = opts.http === undefined ? undefined : processRegistry();
  const rpc = registry === undefined ? undefined : rpcMetrics(registry);
  const server = new RpcServer({
    metrics: rpc?.server,
    secret: opts.secret,
    frameBytesMax: workerFrameBytesMax,
    connectionsMax: limits.connectionsMax,
    connectionsPerAddressMax: limits.connectionsPerAddressMax,
    requestBytesMax: limits.requestBytesMax,
    admissionWaitMs: limits.requestWaitMs,
    log: logCallback(opts.log),
    // Writes are received into reused buffers, given back once stored and forwarded: a fresh
    // buffer for each (three a chunk in a chain of three) kept V8's collector busy for some 13%
    // of the machine during sequential writes.
    receive: { pool: new BufferPool({ idleBytesMax: 64 * 2 ** 20, classBytesMax: workerFrameBytesMax, granularityBytes: 64 * 1024 }), bytesMin: rpcLimits.pooledFrameBytesMin },
  });
  let worker: StorageWorker | undefined;
  let http: HttpEndpoint | undefined;
  const stop = async (): Promise<void> => {
    await http?.close();
    await server.close();
    await worker?.stop();
    for (const l of locks) await l.release();
  };
  try {
    for (const dir of opts.targets) {
      const lock = await acquireDirLock(dir);
      if (lock.note !== undefined) opts.log.warn({ dir }, lock.note);
      locks.push(lock);
    }
    const at = parseAddress(opts.listen, { portZero: true });
    if ('problem' in at) throw new CairnError(ErrorCode.BadOption, `--listen must be host:port: ${at.problem}`);
    const bound = await server.listen(at.host, at.port);
    const address = formatAddress(bound.host, bound.port);
    // Every port is bound before the worker registers: a taken one fails the start with nothing announced.
    if (opts.http !== undefined && registry !== undefined) http = await startWorkerHttp(opts.http, registry, () => worker, opsHttpOptions(opts.metricsAuth, opts.secret));
    worker = await StorageWorker.start({
      id: opts.id,
      address,
      masters: opts.masters,
      targetDirs: opts.targets,
      domain: opts.domain,
      instance: randomUUID(),
      disk: opts.disk ?? nodeDisk,
      clock: systemClock,
      transport: rpcTransport(server, { secret: opts.secret, frameBytesMax: workerFrameBytesMax, ...(rpc === undefined ? {} : { metrics: rpc.client }) }),
      log: logCallback(opts.log),
      ...(opts.syncPageChunks === undefined ? {} : { syncPageChunks: opts.syncPageChunks }),
      ...(opts.scrub === undefined ? {} : { scrub: opts.scrub }),
      ...(opts.resyncBytesPerSec === undefined ? {} : { resyncBytesPerSec: opts.resyncBytesPerSec }),
      ...(opts.cacheWrites === true ? { cacheWrites: true } : {}),
      ...(opts.directWrites === false ? { directWrites: false } : {}),
      ...(opts.resyncLostRetryMs === undefined ? {} : { resyncLostRetryMs: opts.resyncLostRetryMs }),
      readBytesMax: limits.readBytesMax,
      hostId: hostIdentity(),
    });
    if (registry !== undefined) registerWorkerMetrics(registry, worker, () => server.stats());
    const httpAddress = http?.address;
    // Whether a stream of writes leaves its chunks in the page cache (ChunkStoreOptions.cacheWrites).
    const others = nodeDisk.directIo !== undefined && opts.directWrites !== false ? 'written with direct I/O by the others (where the file system has it)' : 'dropped by the others once durable';
    const writtenPages = opts.cacheWrites === true ? 'kept in the page cache (--cache-writes)' : pageDropsAvailable() ? `kept in the page cache by the replica reads go to, ${others}` : 'kept in the page cache (build/page-cache.node not built: node scripts/build-io-addon.ts)';
    opts.log.info({ address, http: httpAddress, targets: worker.localTargets(), writtenPages }, 'worker started');
    return { address, httpAddress, worker, rpcStats: () => server.stats(), stop };
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}

/** /metrics and /healthz, bound before the worker starts (its health says so until it has). */
async function startWorkerHttp(listen: string, registry: Registry, started: () => StorageWorker | undefined, httpOptions: OpsHttpOptions): Promise<HttpEndpoint> {
  const at = parseAddress(listen, { portZero: true });
  if ('problem' in at) throw new CairnError(ErrorCode.BadOption, `--http must be host:port: ${at.problem}`);
  return startOpsHttp(at.host, at.port, registry, () => {
    const worker = started();
    if (worker === undefined) return { ok: false, serving: false, starting: true };
    const corrupt = new Map(worker.corruption().map((c) => [c.targetId, c.now]));
    const targets = worker.localTargets().map((t) => ({ ...t, chunksCorrupt: corrupt.get(t.targetId) ?? 0 }));
    return { ok: worker.serving(), serving: worker.serving(), routingVersion: worker.routing?.version ?? 0, targets };
  }, undefined, httpOptions);
}

/** The worker's own metrics, once it has started. */
function registerWorkerMetrics(registry: Registry, worker: StorageWorker, rpc: () => RpcServerStats): void {
  workerMetrics(registry, worker);
  gaugeOf(registry, 'cairn_worker_serving', '1 while the worker serves (it heard from a master recently)', () => (worker.serving() ? 1 : 0));
  gaugeOf(registry, 'cairn_worker_routing_version', 'routing version the worker follows', () => worker.routing?.version ?? 0);
  new Gauge({
    name: 'cairn_worker_chunks_corrupt',
    help: 'chunks whose committed version failed its checksum (or whose file is damaged or missing) and is not served, by target',
    labelNames: ['target'],
    registers: [registry],
    collect() {
      for (const c of worker.corruption()) this.set({ target: String(c.targetId) }, c.now);
    },
  });
  new Gauge({
    name: 'cairn_worker_chunks_corrupt_detected',
    help: 'chunk versions found corrupt since the worker started, by target (never decreases)',
    labelNames: ['target'],
    registers: [registry],
    collect() {
      for (const c of worker.corruption()) this.set({ target: String(c.targetId) }, c.detected);
    },
  });
  const scrubCounters: [keyof ScrubStats, string][] = [
    ['chunks', 'chunks the scrubber re-read and verified'],
    ['bytes', 'bytes the scrubber re-read'],
    ['found', 'damaged chunk versions the scrubber found'],
    ['repaired', 'damaged chunks the scrubber repaired from another replica'],
    ['unrepaired', 'damaged chunks no other replica could repair (tried again next pass)'],
    ['passes', 'full scrub passes over every target'],
  ];
  // The scrubber keeps the counts.
  for (const [key, help] of scrubCounters) counterOf(registry, `cairn_worker_scrub_${key === 'found' ? 'corrupt_found' : key}_total`, `${help}, since the worker started`, () => worker.scrubStats()[key]);
  resyncMetrics(registry, worker);
  loadMetrics(registry, worker, rpc);
}

/** What the worker holds against its limits, and what it refused since it started. */
function loadMetrics(registry: Registry, worker: StorageWorker, rpc: () => RpcServerStats): void {
  const gauges: [string, string, () => number][] = [
    ['cairn_worker_rpc_connections', 'RPC connections open', () => rpc().connections],
    ['cairn_worker_rpc_request_bytes_held', 'bytes of requests held in memory (bounded by the request memory limit)', () => rpc().requestBytesHeld],
    ['cairn_worker_rpc_internal_bytes_held', 'bytes of peers\' and masters\' requests held (forwards along chains; not counted in the request memory)', () => rpc().internalBytesHeld],
    ['cairn_worker_rpc_connections_waiting', 'connections not read while their request waits for room in the request memory', () => rpc().connectionsWaiting],
    ['cairn_worker_read_bytes_held', 'bytes of chunk reads not yet handed to the socket (bounded by the read memory limit)', () => worker.replica.load().readBytes],
  ];
  for (const [name, help, read] of gauges) gaugeOf(registry, name, help, read);
  const counters: [string, string, () => number][] = [
    ['cairn_worker_rpc_connections_refused_total', 'connections refused with CAIRN_OVERLOADED since start', () => rpc().connectionsRefused],
    ['cairn_worker_rpc_requests_refused_total', 'requests refused with CAIRN_OVERLOADED for memory since start', () => rpc().requestsRefused],
    ['cairn_worker_reads_refused_total', 'reads refused with CAIRN_OVERLOADED since start', () => worker.replica.load().readsRefused],
  ];
  // The RPC server and the replica keep the counts; the counter is set to them (they only grow).
  for (const [name, help, read] of counters) counterOf(registry, name, help, read);
}

/** The resyncs this worker sends: each run's progress as gauges (by chain and target filled), and totals. */
function resyncMetrics(registry: Registry, worker: StorageWorker): void {
  // Summed over the runs in progress (a label per chain would grow with the cluster); each run's
  // own progress is in the log every 10 s.
  const gauges: [keyof ResyncProgress, string, string][] = [
    ['chunksListed', 'chunks_listed', 'chunks this worker holds for the chain, listed when the resync started'],
    ['chunksDone', 'chunks_done', 'chunks the resync has gone through (sent, or found the same on the target)'],
    ['chunksSent', 'chunks_sent', 'chunks the resync has sent'],
    ['bytesListed', 'bytes_listed', 'bytes of the chunks listed when the resync started'],
    ['bytesSent', 'bytes_sent', 'bytes the resync has sent'],
  ];
  gaugeOf(registry, 'cairn_worker_resync_running', 'resyncs this worker is sending now', () => worker.resync.progress().length);
  for (const [key, name, help] of gauges) {
    gaugeOf(registry, `cairn_worker_resync_progress_${name}`, `${help}, summed over the resyncs in progress (finished ones drop out)`, () => worker.resync.progress().reduce((n, p) => n + p[key], 0));
  }
  const totals: [keyof ResyncTotals, string, string][] = [
    ['runsStarted', 'runs_started', 'resyncs started (retries included)'],
    ['runsDone', 'runs_done', 'resyncs finished'],
    ['chunksSent', 'chunks_sent', 'chunks resyncs sent'],
    ['bytesSent', 'bytes_sent', 'bytes resyncs sent'],
    ['chunksRemoved', 'chunks_removed', 'chunks resyncs removed from their targets (only the target held them)'],
    ['runsLost', 'runs_lost', 'resyncs that could not finish: chunks damaged on every member that holds them (the workers\' logs name them)'],
  ];
  for (const [key, name, help] of totals) counterOf(registry, `cairn_worker_resync_${name}_total`, `${help}, since the worker started`, () => worker.resync.totals[key]);
}

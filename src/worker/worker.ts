// One storage worker: its targets (a chunk store per data directory), the chain replication
// service, and its life with the masters: it registers, heartbeats every interval with each
// target's local state and space, follows the routing the leader publishes, resyncs successors
// that return, and stops serving when it has not heard from a master for half the offline timeout.
// All I/O goes through the injected Disk, Clock and Transport, so the simulator runs this code.

import path from 'node:path';
import { MasterCalls } from '../client/master-calls.ts';
import { CairnError, CodedError, ErrorCode } from '../errors.ts';
import type { Clock, Disk, DiskSpace, Timer, Transport } from '../io/index.ts';
import { isErrno } from '../io/index.ts';
import { LocalState } from '../meta/chain-states.ts';
import { TargetState } from '../meta/commands.ts';
import type { RoutingInfo } from '../meta/namespace-state.ts';
import { Routing } from '../meta/routing.ts';
import { clusterTimingDefault, type ClusterTiming, type HeartbeatReply, type RegisterReply } from '../master/cluster-manager.ts';
import { ChunkStore, isNoSpace } from './chunk-store.ts';
import { WorkerError, WorkerErrorCode } from './errors.ts';
import { MasterWorkerMethod, syncListLimitMax, validateInventory, validatePurge, validateTargetCall, WorkerMethod, type HeartbeatRequest, type ChunkPurgeReply, type TargetReport } from './protocol.ts';
import { ChainReplica, chunkLockKey, type ReplicaBug, type ReplicaHost } from './replication.ts';
import { Resyncer } from './resync.ts';
import { scrubDefaults, Scrubber, type ScrubOptions, type ScrubStats } from './scrubber.ts';
import { decodeIdentity, describeIdentity, identityFileName, type TargetIdentity } from './target-identity.ts';
import { readServed, servedFileName, writeServed, type ServedRecord } from './served-record.ts';

export interface WorkerOptions {
  id: number;
  /** The address peers and clients reach this worker at (what it listens on). */
  address: string;
  masters: string[];
  /** Data directories, one target each. */
  targetDirs: string[];
  /** Failure domain (rack); chains avoid two replicas in one. */
  domain?: string;
  /** Random per process start (a restart is a new instance). */
  instance: string;
  disk: Disk;
  clock: Clock;
  transport: Transport;
  log?: (level: 'info' | 'warn' | 'error', msg: string, ctx?: object) => void;
  /** How long one call to a peer or master may take (default 5 s). */
  callTimeoutMs?: number;
  /** How long a member keeps forwarding a write before it gives up (default 10 s). */
  forwardDeadlineMs?: number;
  /** Data-path rules to break on purpose: the simulator's `--bug`. */
  bugs?: ReadonlySet<ReplicaBug>;
  /** Chunks per page of a resync's listing (default the most a page may hold; tests make it small to page). */
  syncPageChunks?: number;
  /** The scrubber's rate and pause between passes (scrubber.ts); a rate of 0 turns it off. */
  scrub?: Partial<ScrubOptions>;
  /** Bytes per second this worker's resyncs send together, at most (default resyncDefaults: 64 MiB/s). */
  resyncBytesPerSec?: number;
  /** How long a resync that met chunks damaged on every member waits before it tries again (default 30 s). */
  resyncLostRetryMs?: number;
  /** Bytes of chunk reads not yet handed to the socket, beyond which it answers CAIRN_OVERLOADED (replicaLimitsDefault). */
  readBytesMax?: number;
  /** Leave written chunks in the page cache (ChunkStoreOptions.cacheWrites; default false). */
  cacheWrites?: boolean;
  /** Write chunks not kept cached with direct I/O where the disk has it (ChunkStoreOptions.directWrites; default true). */
  directWrites?: boolean;
  /**
   * This machine's identity (io/host-id.ts): clients on the same machine may then read committed
   * chunk files themselves (chunk.locate). Unset (the simulator, whose files are not the OS's): refused.
   */
  hostId?: string;
}

interface LocalTarget {
  targetId: number;
  dir: string;
  store: ChunkStore;
  /** Where it last served, as its directory records (served-record.ts); undefined if never. */
  served: ServedRecord | undefined;
  /** The latest record written, for the chain version it serves now (recordServing); each waits for the one before. */
  recording?: { chainId: number; chainVersion: number; done: Promise<void> };
  /** Its record could not be written (a full or failing disk): it reports itself offline until out of serving. */
  unrecorded?: boolean;
  /** The store's count of full-disk refusals when a reading of the disk last showed room again (outOfRoom). */
  roomAfterAnswers?: number;
  /** Set while it is out of room and that was logged. */
  outOfRoomLogged?: boolean;
}

/** Free bytes that count as room again on a disk that was full (a largest chunk, 64 MiB): see outOfRoom. */
const roomBytesMin = 64 * 1024 * 1024;
/** Fetches of the routing a worker makes because requests showed it behind, at most one per this. */
const routingCatchUpMs = 100;
/** Target ids are the worker id times this plus 1 to targetsPerWorkerMax: unique without asking anyone. */
const targetIdBase = 1000;
const targetsPerWorker = 256;
const callTimeoutMs = 5_000;
/** How long a restarted worker waits for its previous instance's heartbeats to age out before it gives up. */
const duplicateWaitMarginMs = 5_000;

export class StorageWorker {
  readonly opts: WorkerOptions;
  readonly master: MasterCalls;
  readonly replica: ChainReplica;
  readonly resync: Resyncer;
  private readonly scrubber: Scrubber;
  private readonly targets = new Map<number, LocalTarget>();
  private routingNow: Routing | undefined;
  private timing: ClusterTiming | undefined;
  private lastContactMs = -Infinity;
  /** The cluster its targets belong to (their identity files): it registers with no other. */
  private clusterId = '';
  /** The last reason registering again failed, logged once until it changes. */
  private registerFailure = '';
  private heartbeatTimer: Timer | undefined;
  private pendingTimer: Timer | undefined;
  private finishing = false;
  private heartbeating = false;
  /** Each target's capacity as last read (heartbeats report it without waiting for the disk). */
  private readonly capacityBytes = new Map<number, number>();
  /**
   * Each target's disk as last read: its free bytes and device (for the masters' statfs), and the
   * store's count of full-disk refusals when the reading began (outOfRoom).
   */
  private readonly diskFree = new Map<number, { bytesFree: number; device?: number; fullAnswers: number }>();
  private readingCapacity = false;
  /** Targets whose predecessor finished their resync, at the chain version it ran for. */
  private readonly synced = new Map<number, number>();
  private stopped = false;
  private fetchingRouting = false;
  private routingFetchedMs = -Infinity;

  private constructor(opts: WorkerOptions) {
    this.opts = opts;
    this.master = new MasterCalls({ masters: opts.masters, connect: (a) => opts.transport.connect(a), clock: opts.clock, clientId: `worker-${opts.id}-${opts.instance}`, callTimeoutMs: opts.callTimeoutMs });
    const host: ReplicaHost = {
      clock: opts.clock,
      routing: () => this.routingNow,
      serving: () => this.serving(),
      routingBehind: () => this.catchUpRouting(),
      store: (id) => this.targets.get(id)?.store,
      recorded: (targetId, chainId, chainVersion) => this.recorded(targetId, chainId, chainVersion),
      connect: (address) => this.peer(address),
      forwardDeadlineMs: opts.forwardDeadlineMs ?? 10_000,
      callTimeoutMs: opts.callTimeoutMs ?? callTimeoutMs,
      log: opts.log,
      bugs: opts.bugs,
      syncPageChunks: opts.syncPageChunks ?? syncListLimitMax,
      readBytesMax: opts.readBytesMax,
    };
    this.replica = new ChainReplica(host);
    this.resync = new Resyncer(this.replica, host, {
      ...(opts.resyncBytesPerSec === undefined ? {} : { rateBytesPerSec: opts.resyncBytesPerSec }),
      ...(opts.resyncLostRetryMs === undefined ? {} : { lostRetryMs: opts.resyncLostRetryMs }),
    });
    this.scrubber = new Scrubber(
      { clock: opts.clock, targets: () => [...this.targets.values()], routing: () => this.routingNow, serving: () => this.serving(), replica: this.replica, log: opts.log },
      { ...scrubDefaults, ...opts.scrub },
    );
  }

  /** One pass of ChainReplica.finishAbandoned over this worker's targets (one at a time). */
  private async finishAbandoned(): Promise<void> {
    if (this.finishing || this.stopped) return;
    this.finishing = true;
    try {
      await this.replica.finishAbandoned([...this.targets.values()]);
    } finally {
      this.finishing = false;
    }
  }

  /** Opens the targets, registers with the leading master and starts serving and heartbeating. */
  static async start(opts: WorkerOptions): Promise<StorageWorker> {
    const w = new StorageWorker(opts);
    try {
      await w.openTargets();
      w.serve();
      await w.register();
      w.heartbeatTimer = opts.clock.every(w.timing!.heartbeatMs, () => void w.heartbeat());
      w.pendingTimer = opts.clock.every(w.replica.forwardDeadlineMs / 2, () => void w.finishAbandoned());
      w.scrubber.start();
      return w;
    } catch (err) {
      await w.stop();
      throw err;
    }
  }

  get routing(): Routing | undefined {
    return this.routingNow;
  }

  /** Serving needs a master's word within half the offline timeout: by then the masters may count this worker out. */
  serving(): boolean {
    if (this.stopped || this.timing === undefined) return false;
    return this.opts.clock.now() - this.lastContactMs < this.timing.offlineTimeoutMs / 2;
  }

  /** The chunk store of a local target: tests and the simulator's checkers look inside. */
  store(targetId: number): ChunkStore | undefined {
    return this.targets.get(targetId)?.store;
  }

  localTargets(): { targetId: number; dir: string; chunks: number; bytesUsed: number }[] {
    return [...this.targets.values()].map((t) => ({ targetId: t.targetId, dir: t.dir, ...t.store.usage() }));
  }

  /** Each target's chunks, bytes used and capacity (as last read): /metrics. */
  targetSpace(): { targetId: number; chunks: number; bytesUsed: number; capacityBytes: number }[] {
    return [...this.targets.values()].map((t) => {
      const { chunks, bytesUsed } = t.store.usage();
      return { targetId: t.targetId, chunks, bytesUsed, capacityBytes: this.capacityBytes.get(t.targetId) ?? 0 };
    });
  }

  /** Each target's corrupt chunks: not served now, and found since start (ChunkStore.corruption). */
  corruption(): { targetId: number; now: number; detected: number }[] {
    return [...this.targets.values()].map((t) => ({ targetId: t.targetId, ...t.store.corruption() }));
  }

  /** What the scrubber has re-read, found and repaired since the worker started. */
  scrubStats(): ScrubStats {
    return { ...this.scrubber.stats };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.scrubber.stop();
    this.resync.stop();
    this.heartbeatTimer?.cancel();
    this.pendingTimer?.cancel();
    this.master.close();
    for (const c of this.peers.values()) c.close();
    this.peers.clear();
    await Promise.all([...this.targets.values()].map((t) => t.store.close()));
  }

  // ---- start-up ---------------------------------------------------------------------------------

  /**
   * Reads each directory's identity; a new directory gets the next free target id once the
   * cluster's name is known. A directory of another cluster or worker is refused, and so is an
   * empty one at the path of a target the masters still count on (its data is gone).
   */
  private async openTargets(): Promise<void> {
    const dirs = this.opts.targetDirs.map((d) => path.resolve(d));
    if (dirs.length === 0) throw new CairnError(ErrorCode.BadOption, 'a worker needs at least one --target directory');
    if (dirs.length > targetsPerWorker) throw new CairnError(ErrorCode.BadOption, `a worker takes at most ${targetsPerWorker} targets, got ${dirs.length}`);
    const twice = dirs.find((d, i) => dirs.indexOf(d) !== i);
    if (twice !== undefined) throw new CairnError(ErrorCode.BadOption, `--target ${twice} is given twice`);
    const routing = await this.clusterRouting();
    const known = routing.targets.filter((t) => t.workerId === this.opts.id);
    const found = await Promise.all(dirs.map((dir) => readTargetIdentity(this.opts.disk, dir)));
    // Two directories naming one target (one copied over the other): serving either would be a guess.
    for (const [i, f] of found.entries()) {
      const j = f === undefined ? i : found.findIndex((g) => g?.targetId === f.targetId);
      if (j !== i) {
        throw new WorkerError(WorkerErrorCode.TargetForeign, `${dirs[j]} and ${dirs[i]} both hold target ${f!.targetId} (one was copied over the other?): keep the right one, and empty the other to make it a new target`, { dir: dirs[i] });
      }
    }
    const used = new Set([...known.map((t) => t.targetId), ...found.flatMap((f) => (f === undefined ? [] : [f.targetId]))]);
    let next = this.opts.id * targetIdBase + 1;
    for (let i = 0; i < dirs.length; i++) {
      const dir = dirs[i];
      let identity = found[i];
      if (identity !== undefined && (identity.clusterId !== routing.clusterId || identity.workerId !== this.opts.id)) {
        throw new WorkerError(WorkerErrorCode.TargetForeign, `${dir} holds ${describeIdentity(identity)}, but this is worker ${this.opts.id} of cluster ${JSON.stringify(routing.clusterId)}: point the worker at its own directories`, { dir });
      }
      if (identity === undefined) {
        const lost = known.find((t) => t.path === dir && t.chainId !== 0);
        if (lost !== undefined) {
          throw new WorkerError(
            WorkerErrorCode.TargetForeign,
            `${dir} was target ${lost.targetId} of chain ${lost.chainId} but holds no ${identityFileName} now: its data is gone. Its chain keeps serving from the other replicas; to reuse the disk, give the worker another path for it (a new target) and let the masters drop target ${lost.targetId}`,
            { dir, targetId: lost.targetId },
          );
        }
        while (used.has(next)) next++;
        if (next > this.opts.id * targetIdBase + targetsPerWorker) throw new CairnError(ErrorCode.BadOption, `worker ${this.opts.id} has no free target id left`);
        identity = { clusterId: routing.clusterId, workerId: this.opts.id, targetId: next };
        used.add(next);
      }
      const store = await ChunkStore.open(this.opts.disk, dir, { identity, log: this.opts.log, cacheWrites: this.opts.cacheWrites ?? false, directWrites: this.opts.directWrites ?? true }).catch((err: unknown) => {
        if (err instanceof CodedError) throw err;
        // A disk that fails under the store's own files (EIO, EACCES): say which target, and exit.
        throw new WorkerError(WorkerErrorCode.TargetFailed, `target ${identity.targetId} at ${dir} could not be opened: ${(err as Error).message}`, { dir });
      });
      const served = await readServed(this.opts.disk, dir);
      if (typeof served === 'string') {
        // Only a restore reads it, to choose a chain's source: a lost record makes this target a
        // less likely one. It is written again when the target next serves.
        this.opts.log?.('warn', 'the record of where a target last served is damaged: ignored', { target: identity.targetId, file: path.join(dir, servedFileName), problem: served });
      }
      this.targets.set(identity.targetId, { targetId: identity.targetId, dir, store, served: typeof served === 'string' ? undefined : served });
    }
    this.clusterId = routing.clusterId;
  }

  /** The routing picture, once the cluster has a name (the first leader gives it one within a heartbeat). */
  private async clusterRouting(): Promise<RoutingInfo> {
    for (let attempt = 0; ; attempt++) {
      const routing = await this.master.query<RoutingInfo>(MasterWorkerMethod.routing, {});
      if (routing.clusterId !== '') return routing;
      if (attempt > 50) throw new CairnError(ErrorCode.Unavailable, 'the masters have not named the cluster yet: is a leader running its cluster manager?');
      await this.opts.clock.sleep(200);
    }
  }

  /**
   * Registers with the leading master, if it leads this worker's cluster: masters started afresh
   * after losing theirs run a cluster of another name until an operator restores the backup (which
   * brings the old name back), and a worker must not take part in that one meanwhile.
   */
  private async register(): Promise<void> {
    const masters = await this.master.query<RoutingInfo>(MasterWorkerMethod.routing, {});
    if (masters.clusterId !== this.clusterId) {
      throw new WorkerError(
        WorkerErrorCode.TargetForeign,
        `the masters run cluster ${JSON.stringify(masters.clusterId)}, but this worker's targets belong to cluster ${JSON.stringify(this.clusterId)}: not registering. Masters started afresh take the old cluster back by restoring its backup (cairn admin restore); otherwise point the worker at its own masters`,
      );
    }
    const body = {
      workerId: this.opts.id,
      instance: this.opts.instance,
      address: this.opts.address,
      ...(this.opts.domain === undefined ? {} : { domain: this.opts.domain }),
      targets: await Promise.all(
        [...this.targets.values()].map(async (t) => {
          const fullAnswers = t.store.fullAnswers;
          const space = await this.opts.disk.statfs(t.dir);
          const capacityBytes = space.bytesTotal;
          this.capacityBytes.set(t.targetId, capacityBytes);
          this.diskFree.set(t.targetId, { ...diskFreeOf(space), fullAnswers });
          return { targetId: t.targetId, path: t.dir, capacityBytes };
        }),
      ),
    };
    const started = this.opts.clock.now();
    for (;;) {
      try {
        const reply = await this.master.call<RegisterReply>(MasterWorkerMethod.register, body);
        this.timing = reply.timing;
        this.lastContactMs = this.opts.clock.now();
        // The registration is journaled, so its answer is at least as new as anything this worker
        // saw before (a restore's routing may carry a version below an old one). It took this
        // worker's syncing targets out, so no resync finished before it counts.
        this.routingNow = undefined;
        this.synced.clear();
        this.setRouting(reply.routing);
        this.opts.log?.('info', 'worker registered', { worker: this.opts.id, targets: [...this.targets.keys()] });
        return;
      } catch (err) {
        // A restarted worker waits for its old instance's heartbeats to age out; a real duplicate never does.
        if ((err as { code?: string }).code !== WorkerErrorCode.WorkerDuplicate) throw err;
        // The masters' offline timeout is configurable and not known before registering: the refusal says it.
        const timeout = (err as { details?: { offlineTimeoutMs?: unknown } }).details?.offlineTimeoutMs;
        const offlineTimeoutMs = typeof timeout === 'number' && Number.isFinite(timeout) && timeout > 0 ? timeout : clusterTimingDefault.offlineTimeoutMs;
        if (this.opts.clock.now() - started > offlineTimeoutMs + duplicateWaitMarginMs) throw err;
        await this.opts.clock.sleep(500);
      }
    }
  }

  // ---- serving ----------------------------------------------------------------------------------

  private serve(): void {
    const t = this.opts.transport;
    t.handle(WorkerMethod.write, (body, ctx) => this.replica.write(body, ctx.payload, 'client', ctx.recyclePayload));
    t.handle(WorkerMethod.read, async (body) => this.replica.read(body));
    const hostId = this.opts.hostId;
    if (hostId !== undefined) t.handle(WorkerMethod.locate, async (body) => this.replica.locate(body, hostId));
    // Peers' and the masters' traffic: it finishes work already taken, so it never waits for room.
    const internal = { internal: true };
    t.handle(WorkerMethod.forward, (body, ctx) => this.replica.write(body, ctx.payload, 'forward', ctx.recyclePayload), internal);
    t.handle(WorkerMethod.syncList, (body) => this.replica.syncList(body), internal);
    t.handle(WorkerMethod.syncRead, (body) => this.replica.syncRead(body), internal);
    t.handle(WorkerMethod.remove, (body) => this.replica.remove(body), internal);
    t.handle(WorkerMethod.removeInodes, (body) => this.replica.removeInodes(body), internal);
    t.handle(
      WorkerMethod.inventory,
      async (body) => {
        const req = validateInventory(body);
        return this.localStore(req.targetId).inodes(req.afterInodeId, req.limit);
      },
      internal,
    );
    t.handle(WorkerMethod.purge, (body) => this.purge(body), internal);
    t.handle(WorkerMethod.syncDone, async (body) => {
      const call = validateTargetCall(body);
      const { me } = this.replica.member(call, 'sync');
      this.synced.set(me.targetId, call.chainVersion);
      this.opts.log?.('info', 'target synced', { target: me.targetId, chain: call.chainId });
      return {};
    }, internal);
  }

  /**
   * chunk.purge: removes every chunk of the given inodes from one target, each under its chunk's
   * lock. Only the leader calls it, for chunks of inodes its namespace does not know (quarantine).
   */
  private async purge(body: unknown): Promise<ChunkPurgeReply> {
    const req = validatePurge(body);
    const store = this.localStore(req.targetId);
    // A free target's chunks go only while it is free here: a chain's writes and resync reach it
    // only once this worker's routing has it in that chain, and each removal looks again under the
    // chunk's lock, which those writes take too.
    const free = (): boolean => this.routingNow?.target(req.targetId)?.chainId === 0;
    if (req.freeOnly === true && !free()) {
      throw new WorkerError(WorkerErrorCode.TargetUnavailable, `target ${req.targetId} is in chain ${this.routingNow?.target(req.targetId)?.chainId ?? 'unknown (no routing yet)'} here: its chunks stay`);
    }
    let removed = 0;
    let stopped = false;
    for (const inodeId of req.inodeIds) {
      for (const id of store.chunksOf(inodeId)) {
        const gone = await this.replica.lock.with(chunkLockKey(req.targetId, id), async () => {
          if (req.freeOnly === true && !free()) return (stopped = true), false;
          return store.remove(id);
        });
        if (stopped) break;
        if (gone) removed++;
      }
      if (stopped) break;
    }
    if (removed > 0 || stopped) {
      const what = req.freeOnly === true ? 'chunks of a free target reclaimed' : 'quarantined chunks purged';
      this.opts.log?.(req.freeOnly === true ? 'info' : 'warn', what, { target: req.targetId, inodes: req.inodeIds.length, chunks: removed, ...(stopped ? { stopped: 'the target joined a chain' } : {}) });
    }
    return stopped ? { removed, stopped } : { removed };
  }

  private localStore(targetId: number): ChunkStore {
    const store = this.targets.get(targetId)?.store;
    if (store === undefined) throw new WorkerError(WorkerErrorCode.InvalidArgument, `worker ${this.opts.id} has no target ${targetId}; its targets are ${[...this.targets.keys()].join(', ')}`);
    return store;
  }

  private async heartbeat(): Promise<void> {
    if (this.heartbeating || this.stopped) return;
    this.heartbeating = true;
    try {
      const traffic = this.replica.traffic;
      const body: HeartbeatRequest = {
        workerId: this.opts.id,
        instance: this.opts.instance,
        routingVersion: this.routingNow?.version ?? 0,
        targets: await this.reports(),
        scrub: this.scrubStats(),
        bytesRead: traffic.readBytes,
        // Clients' writes only (at the head): summed over workers, the cluster's write throughput.
        bytesWritten: traffic.writtenBytes.client,
      };
      const reply = await this.master.call<HeartbeatReply>(MasterWorkerMethod.heartbeat, body);
      this.lastContactMs = this.opts.clock.now();
      if (reply.routing !== undefined) this.setRouting(reply.routing);
    } catch (err) {
      if ((err as { code?: string }).code === WorkerErrorCode.WorkerNotRegistered) {
        await this.register().then(
          () => (this.registerFailure = ''),
          (e: unknown) => {
            if (String(e) !== this.registerFailure) this.opts.log?.('error', 'registering again failed', { err: String(e) });
            this.registerFailure = String(e);
          },
        );
      } else if (!this.stopped) {
        this.opts.log?.('warn', 'heartbeat failed', { err: (err as Error).message });
      }
    } finally {
      this.heartbeating = false;
    }
  }

  /**
   * What each target reports: up-to-date when it serves or its resync finished at the current chain
   * version. Its capacity is the one last read: a heartbeat must not wait behind a busy disk's
   * queue (under a flood of writes, statfs waited seconds for the I/O threads, and workers that
   * missed their heartbeats stopped serving).
   */
  private async reports(): Promise<TargetReport[]> {
    this.refreshCapacity();
    return [...this.targets.values()].map((t) => {
      const usage = t.store.usage();
      const info = this.routingNow?.target(t.targetId);
      const chainVersion = info === undefined ? 0 : (this.routingNow?.chain(info.chainId)?.version ?? 0);
      const chunksCorrupt = t.store.corruption().now;
      const served = t.served === undefined ? {} : { servedChainId: t.served.chainId, servedRoutingVersion: t.served.routingVersion };
      const free = this.diskFree.get(t.targetId);
      return { targetId: t.targetId, localState: this.localState(t.targetId), chainVersion, capacityBytes: this.capacityBytes.get(t.targetId) ?? 0, usedBytes: usage.bytesUsed, chunks: usage.chunks, chunksCorrupt, inodeIdMax: usage.inodeIdMax, ...served, ...(free === undefined ? {} : { freeBytes: free.bytesFree, ...(free.device === undefined ? {} : { device: free.device }) }) };
    });
  }

  /** Reads each target's capacity again, in the background, one reading at a time. */
  private refreshCapacity(): void {
    if (this.readingCapacity) return;
    this.readingCapacity = true;
    void Promise.all(
      [...this.targets.values()].map(async (t) => {
        // A failed reading keeps the last one.
        const fullAnswers = t.store.fullAnswers;
        const space = await this.opts.disk.statfs(t.dir).catch(() => undefined);
        if (space !== undefined) {
          this.capacityBytes.set(t.targetId, space.bytesTotal);
          this.diskFree.set(t.targetId, { ...diskFreeOf(space), fullAnswers });
        }
      }),
    ).finally(() => (this.readingCapacity = false));
  }

  private localState(targetId: number): LocalState {
    // A target that refuses writes must leave the write path, or every write to its chain fails;
    // so must one that cannot record where it serves.
    const target = this.targets.get(targetId);
    if (target?.store.failed === true || target?.unrecorded === true) return LocalState.Offline;
    const routing = this.routingNow;
    const info = routing?.target(targetId);
    // A target that does not serve and whose disk filled would hold up every write of its chain
    // (each forward to it is retried until its deadline, then the writer hears ENOSPC although the
    // members that serve have room) and never finish its resync: it leaves the chain until its
    // disk has room again. A full one that serves stays: its chain is full, and writers hear so.
    // So does one that served last (it holds the chain's only copy: back, it serves, and reads go on).
    const mayServe = info?.state === TargetState.Serving || info?.state === TargetState.LastServing;
    if (target !== undefined && !mayServe && this.outOfRoom(target)) return LocalState.Offline;
    if (info === undefined || routing === undefined) return LocalState.Online;
    if (info.state === TargetState.Serving) return LocalState.UpToDate;
    const chain = routing.chain(info.chainId);
    if (info.state === TargetState.Syncing && chain !== undefined && this.synced.get(targetId) === chain.version) return LocalState.UpToDate;
    return LocalState.Online;
  }

  /**
   * Whether the target's disk refused a write as full since a reading last showed room: room is
   * roomBytesMin free in a reading begun after the last refusal. (Less, a twentieth of a small
   * disk, let a resync that had just failed for want of a chunk's space start again at once, and
   * the target went in and out of its chain every few seconds.)
   */
  private outOfRoom(t: LocalTarget): boolean {
    const answers = t.store.fullAnswers;
    if (answers === (t.roomAfterAnswers ?? 0)) return false;
    const free = this.diskFree.get(t.targetId);
    if (free === undefined || free.fullAnswers !== answers || free.bytesFree < roomBytesMin) {
      if (t.outOfRoomLogged !== true) this.opts.log?.('warn', 'target disk full: it leaves its chain unless it serves, until it has room again', { target: t.targetId, dir: t.dir, roomBytes: roomBytesMin });
      t.outOfRoomLogged = true;
      return true;
    }
    t.roomAfterAnswers = answers;
    t.outOfRoomLogged = undefined;
    this.opts.log?.('info', 'target has room again after its disk was full', { target: t.targetId, bytesFree: free.bytesFree });
    return false;
  }

  /**
   * Fetches the routing at once when a request shows this worker's is behind: one fetch at a time,
   * at most one per routingCatchUpMs, so that requests naming made-up versions cost the masters little.
   */
  private catchUpRouting(): void {
    const now = this.opts.clock.now();
    if (this.fetchingRouting || this.stopped || now - this.routingFetchedMs < routingCatchUpMs) return;
    this.fetchingRouting = true;
    this.routingFetchedMs = now;
    this.master
      .query<RoutingInfo>(MasterWorkerMethod.routing, {})
      .then(
        (info) => {
          if (info.clusterId === this.clusterId) this.setRouting(info);
        },
        () => undefined, // the next heartbeat brings it
      )
      .finally(() => (this.fetchingRouting = false));
  }

  private setRouting(info: RoutingInfo): void {
    if (this.routingNow !== undefined && info.routingVersion <= this.routingNow.version) return;
    const routing = new Routing(info);
    for (const target of this.targets.values()) this.recordServing(target, routing);
    this.routingNow = routing;
    this.resync.onRouting(routing);
  }

  /**
   * A target that serves in `routing` through a change of its chain it has no record of starts
   * writing that record (served-record.ts); its writes under that chain version wait for it
   * (`recorded`), so it never acknowledges one under a newer change than its record says. If the
   * record cannot be written, it reports itself offline, and the masters take it out of serving.
   */
  private recordServing(target: LocalTarget, routing: Routing): void {
    const me = routing.target(target.targetId);
    const chain = me === undefined ? undefined : routing.chain(me.chainId);
    if (me?.state !== TargetState.Serving || chain === undefined) {
      target.unrecorded = undefined;
      return;
    }
    const same = (r: { chainId: number; chainVersion: number } | undefined): boolean => r?.chainId === chain.chainId && r.chainVersion === chain.version;
    if (same(target.served) || same(target.recording)) return;
    const record: ServedRecord = { chainId: chain.chainId, chainVersion: chain.version, routingVersion: routing.version };
    // One write at a time, so the file ends with the newest record.
    const before = target.recording?.done.catch(() => undefined) ?? Promise.resolve();
    const done = before.then(() => writeServed(this.opts.disk, target.dir, record));
    target.recording = { chainId: record.chainId, chainVersion: record.chainVersion, done };
    done.then(
      () => {
        target.served = record;
        if (target.recording?.done === done) target.unrecorded = undefined;
      },
      (err: unknown) => {
        if (target.recording?.done === done) target.unrecorded = true;
        // A full disk: the target then stays out of its chain until it has room (outOfRoom), rather
        // than rejoining, being made serving, and failing to record it again, over and over.
        if (isNoSpace(err)) target.store.noteFull();
        this.opts.log?.('error', 'could not record where a target serves: it reports itself offline until the masters take it out', { target: target.targetId, chain: record.chainId, chainVersion: record.chainVersion, err: String(err) });
      },
    );
  }

  /** Resolves once the target's record of serving this chain version is durable; TargetUnavailable if it cannot be. */
  private async recorded(targetId: number, chainId: number, chainVersion: number): Promise<void> {
    const target = this.targets.get(targetId);
    if (target === undefined || (target.served?.chainId === chainId && target.served.chainVersion === chainVersion)) return;
    const recording = target.recording;
    if (recording?.chainId !== chainId || recording.chainVersion !== chainVersion) {
      throw new WorkerError(WorkerErrorCode.TargetUnavailable, `target ${targetId} has no record of serving chain ${chainId} at version ${chainVersion}`);
    }
    await recording.done.catch((err: unknown) => {
      throw new WorkerError(WorkerErrorCode.TargetUnavailable, `target ${targetId} cannot record where it serves (${String(err)}): it takes no writes`);
    });
  }

  private readonly peers = new Map<string, ReturnType<Transport['connect']>>();

  private peer(address: string): ReturnType<Transport['connect']> {
    let c = this.peers.get(address);
    if (c === undefined) {
      c = this.opts.transport.connect(address);
      this.peers.set(address, c);
    }
    return c;
  }
}

/** The identity in `dir`, undefined if it has none (or does not exist); a damaged one is refused. */
export async function readTargetIdentity(disk: Disk, dir: string): Promise<TargetIdentity | undefined> {
  const file = path.join(dir, identityFileName);
  let bytes: Uint8Array;
  try {
    bytes = await disk.readFile(file);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  }
  const found = decodeIdentity(bytes);
  if (typeof found === 'string') throw new WorkerError(WorkerErrorCode.TargetForeign, `${file} is damaged (${found}): restore it, or wipe the directory to make it a new target`, { file });
  return found;
}

function diskFreeOf(space: DiskSpace): { bytesFree: number; device?: number } {
  return space.device === undefined ? { bytesFree: space.bytesFree } : { bytesFree: space.bytesFree, device: space.device };
}

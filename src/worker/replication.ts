// CRAQ chain replication on one worker (3FS's storage operator): a write enters at the chain's
// head, which locks the chunk, names the next version and stages it; each member forwards to its
// successor and commits once the successor answered, so the tail commits first and the
// acknowledgement travels back to the head. Reads go to any serving member; one holding a pending
// version answers CHUNK_DIRTY, except the tail, whose committed version is the newest anyone has
// acknowledged. A write forwarded to a member being synced carries the whole chunk.
//
// A member never drops a pending version on its own: it stays dirty until a later write commits
// or replaces it, so a read never sees a version go back (the tail may already serve it).
//
// Under overload a worker refuses rather than queues. Clients' writes in progress are bounded by the
// RPC server's request memory (a write holds its bytes until it is answered); forwards come as
// chunk.forward, which that bound never holds up, as they finish writes other members already took.
// Reads beyond readBytesMax of replies not yet handed to the socket are answered CAIRN_OVERLOADED
// before they touch a chunk.

import { crc32c } from '@node-rs/crc32';
import { crc32cPieces, type PieceCrcs } from './crc32c-pieces.ts';
import { CodedError } from '../errors.ts';
import type { Clock, Connection } from '../io/index.ts';
import { TargetState } from '../meta/commands.ts';
import type { Routing } from '../meta/routing.ts';
import type { TargetInfo } from '../meta/namespace-state.ts';
import { reply, type Reply } from '../rpc/handler.ts';
import { RpcError, RpcErrorCode } from '../rpc/errors.ts';
import type { ChunkMeta, ChunkStore } from './chunk-store.ts';
import { WorkerError, WorkerErrorCode } from './errors.ts';
import { BufferPool } from '../buffer-pool.ts';
import { KeyedLock } from './keyed-lock.ts';
import { payloadBytesMax, validateLocate, validateRead, validateRemove, validateRemoveInodes, validateSyncList, validateSyncRead, validateWrite, WorkerMethod } from './protocol.ts';
import type { ChunkRef, LocateReply, ReadReply, ReadRequest, SyncEntry, SyncListReply, SyncReadRequest, WriteReply, WriteRequest } from './protocol.ts';
import { chunkSizeBytesMax } from '../meta/commands.ts';
import { chunkKey, writeIdsMax } from './chunk-file.ts';

export interface ReplicaHost {
  clock: Clock;
  /** The newest routing this worker has, if any. */
  routing(): Routing | undefined;
  /** Whether this worker may serve at all (it heard from a master within half the offline timeout). */
  serving(): boolean;
  /** A request was routed by a chain version newer than this worker's routing: fetch routing now. */
  routingBehind?(): void;
  store(targetId: number): ChunkStore | undefined;
  /**
   * Resolves once a serving target's record of serving this chain version is durable
   * (served-record.ts): a write under the version waits for it. Rejects if it cannot be written.
   */
  recorded?(targetId: number, chainId: number, chainVersion: number): Promise<void>;
  /** A connection to a peer worker. */
  connect(address: string): Connection;
  /** How long a member keeps trying to forward before it gives the write up (pending stays). */
  forwardDeadlineMs: number;
  /** Chunks per page of a resync's listing of its target. */
  syncPageChunks: number;
  /** How long one forward call may take. */
  callTimeoutMs: number;
  log?: (level: 'info' | 'warn' | 'error', msg: string, ctx?: object) => void;
  /** Rules to break on purpose (the simulator's `--bug`); none outside it. */
  bugs?: ReadonlySet<ReplicaBug>;
  /** Bytes of chunk reads read and not yet handed to the socket; default replicaLimitsDefault. */
  readBytesMax?: number;
}

/** How much a worker takes on at once before it answers CAIRN_OVERLOADED. */
export const replicaLimitsDefault = {
  readBytesMax: 256 * 2 ** 20,
};

/**
 * The data path's rules the simulator can switch off (docs/data-path-sim.md): a member that commits
 * and answers before its successor did, a non-tail replica that serves its committed version while
 * it holds a pending one, a resync that leaves a chunk the target holds at an older version, a
 * forward before the pending name is durable, a demoted head that commits as the tail, a target
 * whose fsync failed that still serves reads, and a write that waited for its chunk's lock going
 * on by the chain version it arrived with.
 */
export const replicaBugNames = ['ack-before-tail-commit', 'serve-pending-as-clean', 'resync-skip-stale', 'forward-unsynced-name', 'demoted-member-commits', 'read-failed-target', 'no-recheck-after-lock'] as const;
export type ReplicaBug = (typeof replicaBugNames)[number];

const emptyPayload = new Uint8Array(0);
/** Bytes one page of chunk.syncList verifies at most (it may also end on time; see syncList). */
export const syncListScrubBytesMax = 32 * 2 ** 20;
const retryBackoffMs = { min: 20, max: 500 };
/** Read buffers a worker keeps between reads (32 chunks of 4 MiB); a peak above it allocates, and the GC takes the extra back. */
const readBuffersIdleBytesMax = 128 * 1024 * 1024;

export function chunkLockKey(targetId: number, id: ChunkRef): string {
  return `${targetId}:${chunkKey(id)}`;
}

export class ChainReplica {
  readonly lock = new KeyedLock();
  readonly forwardDeadlineMs: number;
  /** Chunks finishAbandoned saw pending on a head, with when it first saw them. */
  private readonly pendingSince = new Map<string, number>();
  /** When finishAbandoned last logged that versions could not be finished (once a minute at most: a full disk holds many). */
  private unfinishedLoggedMs = -Infinity;
  private readonly host: ReplicaHost;
  /** Bug switches, read once: off, they cost one boolean test. */
  private readonly ackEarly: boolean;
  private readonly servePending: boolean;
  private readonly forwardUnsyncedName: boolean;
  private readonly demotedCommits: boolean;
  private readonly readFailedTarget: boolean;
  private readonly noRecheck: boolean;
  private readonly readBuffers = new BufferPool({ idleBytesMax: readBuffersIdleBytesMax, classBytesMax: payloadBytesMax });
  private readonly readBytesMax: number;
  /** Bytes of read buffers lent to replies not yet handed to the socket. */
  private readBytes = 0;
  private readsRefused = 0;
  /** Bytes served to readers, and stored by writes (by how they came), since the worker started. */
  readonly traffic: ReplicaTraffic = { readBytes: 0, writtenBytes: { client: 0, forward: 0, whole: 0 } };

  constructor(host: ReplicaHost) {
    this.host = host;
    this.forwardDeadlineMs = host.forwardDeadlineMs;
    this.readBytesMax = host.readBytesMax ?? replicaLimitsDefault.readBytesMax;
    this.ackEarly = host.bugs?.has('ack-before-tail-commit') === true;
    this.servePending = host.bugs?.has('serve-pending-as-clean') === true;
    this.forwardUnsyncedName = host.bugs?.has('forward-unsynced-name') === true;
    this.demotedCommits = host.bugs?.has('demoted-member-commits') === true;
    this.readFailedTarget = host.bugs?.has('read-failed-target') === true;
    this.noRecheck = host.bugs?.has('no-recheck-after-lock') === true;
  }

  // ---- writes ----------------------------------------------------------------------------------

  /**
   * A client's write (chunk.write), or a member's forward (chunk.forward), which names its version.
   * `recycle` gives the payload's buffer back to the receive pool: called once the write is stored
   * and forwarded with nothing left that may read the payload (see CallContext.recyclePayload).
   */
  async write(body: unknown, payload: Uint8Array | undefined, from: 'client' | 'forward' = 'client', recycle?: () => void): Promise<WriteReply> {
    const answer = await this.writeChecked(body, payload, from, recycle);
    const bytes = payload?.byteLength ?? 0;
    const written = this.traffic.writtenBytes;
    if (from === 'client') written.client += bytes;
    else if ((body as { replace?: unknown }).replace === true) written.whole += bytes;
    else written.forward += bytes;
    return answer;
  }

  private async writeChecked(body: unknown, payload: Uint8Array | undefined, from: 'client' | 'forward', recycle: (() => void) | undefined): Promise<WriteReply> {
    const data = payload ?? emptyPayload;
    const req = validateWrite(body, data.length);
    if (from === 'forward' && req.updateVersion === undefined) {
      throw new WorkerError(WorkerErrorCode.InvalidArgument, `${WorkerMethod.forward} needs the version it forwards (updateVersion); clients write with ${WorkerMethod.write}`);
    }
    const { me, store } = this.member(req, 'write');
    // One pass over the payload gives both its CRC (checked here) and its blocks' (for the chunk file).
    const bs = store.blockSizeBytes;
    const pieces = crc32cPieces(data, bs - ((req.replace === true ? 0 : req.offset) % bs), bs);
    if (pieces.whole !== req.crc32c) {
      throw new WorkerError(WorkerErrorCode.ChecksumMismatch, `chunk write to target ${me.targetId}: the payload's CRC32C is not ${req.crc32c}; nothing was stored`);
    }
    const routing = this.host.routing()!;
    if (req.updateVersion === undefined && routing.writeMembers(req.chainId)[0]?.targetId !== me.targetId) {
      const head = routing.writeMembers(req.chainId)[0];
      throw new WorkerError(WorkerErrorCode.TargetUnavailable, `target ${me.targetId} is not the head of chain ${req.chainId}${head === undefined ? '' : `; the head is target ${head.targetId}`}`);
    }
    return this.writeLocked(me, store, req, data, pieces, recycle);
  }

  private writeLocked(arrived: TargetInfo, store: ChunkStore, req: WriteRequest, data: Uint8Array, pieces: PieceCrcs, recycle: (() => void) | undefined): Promise<WriteReply> {
    const id = { inodeId: req.inodeId, index: req.index };
    return this.lock.with(chunkLockKey(arrived.targetId, id), async () => {
      // Checked again now that the chunk is ours: a request that waited here behind another write
      // may have been routed by a chain version that has changed meanwhile. A member cut off and
      // back as syncing (last on the write path) would otherwise take a forward sent to it as a
      // middle member for one to the tail, and commit a version the serving members never had.
      const me = this.noRecheck ? arrived : this.member(req, 'write').me;
      if (me.state === TargetState.Serving && this.host.recorded !== undefined) {
        await this.host.recorded(me.targetId, req.chainId, req.chainVersion);
        // The chain may have moved on while the record was written.
        if (!this.noRecheck) this.member(req, 'write');
      }
      let meta = store.get(id);
      const atHead = req.updateVersion === undefined;
      // A version whose forward gave up may be committed further down and seen by readers: it is
      // finished before anything builds on the committed one (and a retry of it is then known).
      if (atHead && meta?.pending !== undefined) meta = await this.finishPending(me, req.chainId, meta, store);
      if (atHead && req.writeId !== undefined && meta !== undefined && meta.writeIds.includes(req.writeId)) {
        return { commitVersion: meta.commitVersion, lengthBytes: meta.lengthBytes, crc32c: meta.crc32c };
      }
      if (atHead && req.replace !== true && meta?.corrupt !== undefined) meta = await this.repairFromPeer(me, req.chainId, meta, store);
      const version = req.updateVersion ?? (meta?.commitVersion ?? 0) + 1;
      // The head adds this write's id to those the chunk remembers; the others take the head's list.
      const writeIds = atHead ? [...(meta?.writeIds ?? []), ...(req.writeId === undefined ? [] : [req.writeId])].slice(-writeIdsMax) : (req.writeIds ?? []);
      if (req.updateVersion !== undefined && req.replace !== true) {
        const same = this.alreadyHas(meta, req);
        if (same !== undefined) return same;
      }
      if (req.replace === true && meta !== undefined && version < meta.commitVersion) {
        // A resync brings the predecessor's version, which wins over a newer one never acknowledged.
        await store.remove(id);
      }
      // req.crc32c was checked against these bytes on arrival (writeChecked).
      // The replica clients read this chunk from keeps it in the page cache: data is often read
      // soon after it is written, and the others' copies then cost no page-cache memory.
      const keepCached = this.host.routing()?.readOrder(req.chainId, id.inodeId, id.index)[0]?.targetId === me.targetId;
      const staged = await store.stage(id, { version, chainVersion: req.chainVersion, offset: req.offset, data, replace: req.replace, truncate: req.truncate, writeIds, dataPieces: pieces, keepCached });
      // The file holds the bytes now; once the successor has answered the only send of them, nothing reads them.
      if (this.ackEarly) void this.forward(me, req, version, staged, data).catch(() => undefined);
      else if (await this.forward(me, req, version, staged, data)) recycle?.();
      const committed = await store.commit(id, version);
      return { commitVersion: committed.commitVersion, lengthBytes: committed.lengthBytes, crc32c: committed.crc32c };
    });
  }

  /**
   * Finishes versions left pending by writes that gave up, so that a chain converges even when no
   * later write comes to the chunk (its file deleted, or replaced whole by a new one). Run
   * periodically by the worker: a head holding a version pending for longer than a forward's
   * deadline drives it through the chain and commits it, as a later write would do first. Members
   * after the head hold the same version pending (or committed it), and the head's forward
   * settles them.
   */
  async finishAbandoned(targets: readonly { targetId: number; store: ChunkStore }[]): Promise<number> {
    const routing = this.host.routing();
    if (routing === undefined || !this.host.serving()) return 0;
    const now = this.host.clock.now();
    const seen = new Set<string>();
    let finished = 0;
    const unfinished: { chain: number; target: number; chunk: string; err: string }[] = [];
    for (const t of targets) {
      const me = routing.target(t.targetId);
      if (me === undefined || me.chainId === 0 || routing.writeMembers(me.chainId)[0]?.targetId !== me.targetId) continue;
      for (const id of t.store.pendingIds()) {
        const key = chunkLockKey(me.targetId, id);
        seen.add(key);
        const since = this.pendingSince.get(key) ?? now;
        this.pendingSince.set(key, since);
        if (now - since < this.host.forwardDeadlineMs) continue;
        try {
          await this.lock.with(key, async () => {
            const meta = t.store.get(id);
            if (meta?.pending === undefined) return;
            await this.finishPending(me, me.chainId, meta, t.store);
            finished++;
            this.host.log?.('info', 'finished a version left pending', { chain: me.chainId, target: me.targetId, chunk: chunkKey(id), version: meta.pending.version });
          });
        } catch (err) {
          unfinished.push({ chain: me.chainId, target: me.targetId, chunk: chunkKey(id), err: (err as Error).message });
        }
      }
    }
    if (unfinished.length > 0 && now - this.unfinishedLoggedMs >= 60_000) {
      this.unfinishedLoggedMs = now;
      this.host.log?.('warn', `${unfinished.length} version${unfinished.length === 1 ? '' : 's'} left pending could not be finished yet (the first below; retried every few seconds, logged once a minute)`, unfinished[0]);
    }
    for (const k of this.pendingSince.keys()) if (!seen.has(k)) this.pendingSince.delete(k);
    return finished;
  }

  /**
   * Drives the head's pending version (left by a write whose forward gave up) through the chain,
   * whole, and commits it: the members after the head may already have committed it and served it.
   */
  private async finishPending(me: TargetInfo, chainId: number, meta: ChunkMeta, store: ChunkStore): Promise<ChunkMeta> {
    const p = meta.pending!;
    const data = await store.readPending(meta.id);
    const chain = this.host.routing()?.chain(chainId);
    const req: WriteRequest = { chainId, chainVersion: chain?.version ?? 0, inodeId: meta.id.inodeId, index: meta.id.index, offset: 0, crc32c: crc32c(data), replace: true };
    await this.forward(me, req, p.version, meta, data);
    return store.commit(meta.id, p.version);
  }

  /**
   * A forwarded partial write: answered at once if this member committed that very version (a
   * retry), refused as diverged if it cannot build on what it holds (the sender then sends the
   * whole chunk), else undefined: stage it.
   */
  private alreadyHas(meta: ChunkMeta | undefined, req: WriteRequest): WriteReply | undefined {
    const v = req.updateVersion!;
    const committed = meta?.commitVersion ?? 0;
    if (meta !== undefined && v === committed && req.chunkCrc32c === meta.crc32c) {
      return { commitVersion: meta.commitVersion, lengthBytes: meta.lengthBytes, crc32c: meta.crc32c };
    }
    if (v !== committed + 1) {
      throw new WorkerError(WorkerErrorCode.ChunkDiverged, `chunk ${req.inodeId}:${req.index} holds committed version ${committed}; version ${v} cannot build on it`);
    }
    if (meta?.corrupt !== undefined) {
      // The whole new version from the predecessor replaces the damaged one.
      throw new WorkerError(WorkerErrorCode.ChunkDiverged, `chunk ${req.inodeId}:${req.index} version ${committed} is corrupt here; version ${v} cannot build on it`);
    }
    return undefined;
  }

  /**
   * A member holds a corrupt committed version that it must build on (the head, for a partial
   * write) or send (a resync's source): it copies that version from another serving member (which
   * holds it, or the pending version this member staged and the others committed: every write
   * passes the head under this chunk's lock, which the caller holds), checked against the checksum
   * recorded here, and commits it over the damaged file.
   * Without this, a chunk damaged on its head could never be written again, and a returning
   * member whose source holds a damaged chunk would never finish its resync.
   */
  async repairFromPeer(me: TargetInfo, chainId: number, meta: ChunkMeta, store: ChunkStore): Promise<ChunkMeta> {
    const routing = this.host.routing()!;
    const chain = routing.chain(chainId)!;
    const id = meta.id;
    const body: ReadRequest = { chainId, chainVersion: chain.version, inodeId: id.inodeId, index: id.index, offset: 0, length: chunkSizeBytesMax };
    const problems: string[] = [];
    // A peer that could not answer now (a timeout, a routing it has not caught up with) may hold a
    // good copy: then the caller tries again soon, rather than take the chunk for lost (a resync
    // would wait 30 s: seen in CI, a source asking the head before the head knew the new chain).
    let unanswered = false;
    // The serving members first; then the others (a resync's own target, members waiting to sync),
    // which may hold this very version: asked for it by number, whatever else they hold is not taken.
    // Without them a chain whose one serving copy rotted waits for ever on a member that has it.
    const serving = routing.readMembers(chainId).filter((t) => t.targetId !== me.targetId);
    const others = meta.commitVersion === 0 ? [] : routing.members(chainId).filter((t) => t.targetId !== me.targetId && !serving.includes(t));
    for (const peer of [...serving, ...others]) {
      try {
        const r =
          !serving.includes(peer)
            ? await this.peer(peer).call<ReadReply>(WorkerMethod.syncRead, { chainId, chainVersion: chain.version, targetId: peer.targetId, inodeId: id.inodeId, index: id.index, commitVersion: meta.commitVersion } satisfies SyncReadRequest, { timeoutMs: this.host.callTimeoutMs })
            : await this.peer(peer).call<ReadReply>(WorkerMethod.read, body, { timeoutMs: this.host.callTimeoutMs });
        const data = r.payload ?? emptyPayload;
        const version = r.body.commitVersion;
        // The peer may hold this member's committed version or, if a write failed after the others
        // committed it, its pending one: either is taken, checked against the CRC recorded here. A
        // damaged header left no CRC (recorded as length 0, CRC 0): then the version must match.
        const expected = version === meta.commitVersion ? meta.crc32c : version === meta.pending?.version ? meta.pending.crc32c : undefined;
        const headerLost = version === meta.commitVersion && meta.lengthBytes === 0 && meta.crc32c === 0;
        if (expected === undefined || (!headerLost && crc32c(data) !== expected)) {
          problems.push(`target ${peer.targetId} holds version ${version} with other content`);
          continue;
        }
        const writeIds = version === meta.commitVersion ? meta.writeIds : (meta.pending?.writeIds ?? []);
        await store.stage(id, { version, chainVersion: chain.version, offset: 0, data, replace: true, writeIds });
        const repaired = await store.commit(id, version);
        this.host.log?.('warn', 'repaired a corrupt chunk from a peer', { chain: chainId, target: me.targetId, from: peer.targetId, chunk: `${id.inodeId}:${id.index}`, version });
        return repaired;
      } catch (err) {
        problems.push(`target ${peer.targetId}: ${(err as Error).message}`);
        const code = err instanceof CodedError ? err.code : (err as { code?: unknown }).code;
        if (!noGoodCopyCodes.has(String(code))) unanswered = true;
      }
    }
    const why = `chunk ${id.inodeId}:${id.index} version ${meta.commitVersion} is corrupt on target ${me.targetId} of chain ${chainId}, and no other member gave a good copy`;
    if (unanswered) throw new WorkerError(WorkerErrorCode.TargetUnavailable, `${why} now (${problems.join('; ')}); try again`, { chunk: `${id.inodeId}:${id.index}` });
    throw new WorkerError(WorkerErrorCode.ChunkCorrupt, `${why} (${problems.join('; ') || 'none serves'})`, { chunk: `${id.inodeId}:${id.index}` });
  }

  /**
   * Hands the staged version to the successor until it answers: retried through routing changes
   * (a new successor, a member that became the tail) until the deadline; then the write fails
   * and the version stays pending here. True when every send of `data` was answered with
   * success (or there was none): no socket still holds it. A failed send may still sit in a
   * socket's queue, or be half sent to a successor that refused it.
   */
  private async forward(me: TargetInfo, req: WriteRequest, version: number, staged: ChunkMeta, data: Uint8Array): Promise<boolean> {
    const deadline = this.host.clock.now() + this.host.forwardDeadlineMs;
    const id = { inodeId: req.inodeId, index: req.index };
    let whole = req.replace === true;
    let backoff = retryBackoffMs.min;
    let nameDurable = false;
    let dataUnanswered = false;
    for (;;) {
      const routing = this.host.routing();
      const chain = routing?.chain(req.chainId);
      if (routing === undefined || chain === undefined || !routing.writeMembers(req.chainId).some((t) => t.targetId === me.targetId)) {
        throw new WorkerError(WorkerErrorCode.TargetUnavailable, `target ${me.targetId} left the write path of chain ${req.chainId}; the write stays pending there`);
      }
      // A member that served when it took the write and no longer does was moved behind the others
      // (it went offline and came back syncing): the members now before it never had this version,
      // so it must not take itself for the tail and commit, nor forward it.
      const now = routing.target(me.targetId)?.state;
      if (me.state === TargetState.Serving && now !== TargetState.Serving && !this.demotedCommits) {
        throw new WorkerError(WorkerErrorCode.TargetUnavailable, `target ${me.targetId} of chain ${req.chainId} is ${String(now)} now, no longer serving; the write stays pending there`);
      }
      const next = routing.successor(req.chainId, me.targetId);
      if (next === undefined) return !dataUnanswered;
      if (!nameDurable) {
        if (!this.forwardUnsyncedName) await this.host.store(me.targetId)!.syncPendingName(id);
        nameDurable = true;
      }
      const sendWhole = whole || next.state === TargetState.Syncing;
      const payload = sendWhole ? await this.host.store(me.targetId)!.readPending(id) : data;
      const body: WriteRequest = {
        chainId: req.chainId,
        chainVersion: chain.version,
        inodeId: req.inodeId,
        index: req.index,
        offset: sendWhole ? 0 : req.offset,
        crc32c: sendWhole ? crc32c(payload) : req.crc32c,
        updateVersion: version,
        chunkCrc32c: staged.pending?.crc32c ?? staged.crc32c,
        writeIds: [...(staged.pending?.writeIds ?? staged.writeIds)],
      };
      if (sendWhole) body.replace = true;
      else if (req.truncate === true) body.truncate = true;
      try {
        await this.peer(next).call(WorkerMethod.forward, body, { payload, timeoutMs: this.host.callTimeoutMs });
        return !dataUnanswered;
      } catch (err) {
        if (payload === data) dataUnanswered = true;
        const code = err instanceof CodedError ? err.code : (err as { code?: string }).code;
        if (code === WorkerErrorCode.ChunkDiverged) whole = true;
        // A full serving successor stays full for longer than a forward's retries: the writer
        // hears it now (ENOSPC through a mount), the version stays pending here, and readers go
        // on reading the older one from the members after this one. Not so for a syncing
        // successor: this member may then be the last that serves, where a read commits what is
        // pending, while the successor may still be made serving without it (its resync ended
        // before this write; found by the simulator, data seed 1168). That forward goes on
        // trying, holding the chunk's lock, until the successor leaves or the deadline.
        const full = code === WorkerErrorCode.TargetFull;
        if (full && next.state === TargetState.Serving) throw fullSuccessor(req, next, version, err);
        if (this.host.clock.now() >= deadline) {
          if (full) throw fullSuccessor(req, next, version, err);
          throw new WorkerError(WorkerErrorCode.TargetUnavailable, `chain ${req.chainId}: target ${next.targetId} did not take version ${version} of chunk ${req.inodeId}:${req.index} in time (${String((err as Error).message)}); the write stays pending`);
        }
        if (code !== WorkerErrorCode.ChunkDiverged) {
          await this.host.clock.sleep(backoff);
          backoff = Math.min(backoff * 2, retryBackoffMs.max);
        }
      }
    }
  }

  // ---- reads -----------------------------------------------------------------------------------

  async read(body: unknown): Promise<Reply> {
    const req = validateRead(body);
    const { me, store } = this.member(req, 'read');
    const id = { inodeId: req.inodeId, index: req.index };
    const meta = store.get(id);
    const notFound = (): WorkerError => new WorkerError(WorkerErrorCode.ChunkNotFound, `target ${me.targetId} holds no chunk ${req.inodeId}:${req.index}`);
    if (meta === undefined || (meta.commitVersion === 0 && meta.pending === undefined)) throw notFound();
    const members = this.host.routing()!.readMembers(req.chainId);
    const tail = members[members.length - 1]?.targetId === me.targetId;
    // A chunk's first version, still pending here, may be committed at the tail already: "not
    // found" would send a reader back in time after another read there returned it.
    if (meta.pending !== undefined && !tail) {
      if (!this.servePending) throw new WorkerError(WorkerErrorCode.ChunkDirty, `target ${me.targetId} holds a pending version of chunk ${req.inodeId}:${req.index}: read from the tail`);
      if (meta.commitVersion === 0) throw notFound();
    }
    const now = meta.pending !== undefined && tail ? await this.commitAtTail(me, req.chainId, store, id) : meta;
    // The bytes are read into a pooled buffer, which goes back once the reply has left for the socket
    // (the budget counts it until then: a client that does not read its replies is refused more).
    const reserved = this.admitRead(Math.max(0, Math.min(req.length, now.lengthBytes - req.offset)), me.targetId);
    let lent = undefined as Buffer | undefined;
    let handedOver = false;
    try {
      const data = await store.read(id, req.offset, req.length, (n) => (lent = this.readBuffers.take(n)));
      this.traffic.readBytes += data.byteLength;
      const sent = lent;
      lent = undefined;
      handedOver = true;
      return reply({ lengthBytes: now.lengthBytes, commitVersion: now.commitVersion }, data, () => {
        this.readBytes -= reserved;
        if (sent !== undefined) this.readBuffers.give(sent);
      });
    } finally {
      if (lent !== undefined) this.readBuffers.give(lent);
      if (!handedOver) this.readBytes -= reserved;
    }
  }

  /**
   * Where a clean chunk's committed version lies, for a reader on this machine (`hostId`). A chunk
   * with a pending version is refused (ChunkDirty): its reader goes through chunk.read, which
   * knows what the tail committed.
   */
  locate(body: unknown, hostId: string): Reply {
    const req = validateLocate(body);
    const { me, store } = this.member(req, 'read');
    const id = { inodeId: req.inodeId, index: req.index };
    const meta = store.get(id);
    const file = store.committedFile(id);
    if (meta === undefined || meta.commitVersion === 0 || file === undefined) throw new WorkerError(WorkerErrorCode.ChunkNotFound, `target ${me.targetId} holds no committed chunk ${req.inodeId}:${req.index}`);
    if (meta.pending !== undefined) throw new WorkerError(WorkerErrorCode.ChunkDirty, `target ${me.targetId} holds a pending version of chunk ${req.inodeId}:${req.index}: read it through the chain`);
    if (meta.corrupt !== undefined) throw new WorkerError(WorkerErrorCode.ChunkCorrupt, `chunk ${req.inodeId}:${req.index} on target ${me.targetId}: ${meta.corrupt}`);
    const located: LocateReply = { hostId, file, commitVersion: meta.commitVersion, lengthBytes: meta.lengthBytes, crc32c: meta.crc32c };
    return reply(located);
  }

  /** Reserves the buffer a read of `bytes` takes, or refuses it with CAIRN_OVERLOADED. */
  private admitRead(bytes: number, targetId: number): number {
    const reserved = bytes === 0 ? 0 : this.readBuffers.bytesFor(bytes);
    if (this.readBytes > 0 && this.readBytes + reserved > this.readBytesMax) {
      this.readsRefused++;
      throw new RpcError(RpcErrorCode.Overloaded, `target ${targetId}: this worker holds ${this.readBytes} bytes of reads not yet sent, its limit is ${this.readBytesMax}; retry later`, { readBytesMax: this.readBytesMax });
    }
    this.readBytes += reserved;
    return reserved;
  }

  /** What the worker holds now against its limits (for /metrics and tests). */
  load(): { readBytes: number; readsRefused: number } {
    return { readBytes: this.readBytes, readsRefused: this.readsRefused };
  }

  /**
   * A tail holding a pending version took it from its predecessor and kept it when the write's
   * forward gave up, or held it when a chain change made it the tail: the tail before it may have
   * committed and served that version. Serving the older committed one would let a read see the
   * chunk go back, so the tail commits the pending version first. Members after it on the write
   * path (syncing: they serve no reads) get it before: one whose resync ended before this write,
   * and which missed the write's forward, could otherwise be made serving without the version this
   * read returns. If they cannot take it now, the read fails and the reader tries again.
   */
  private async commitAtTail(me: TargetInfo, chainId: number, store: ChunkStore, id: ChunkRef): Promise<ChunkMeta> {
    return this.lock.with(chunkLockKey(me.targetId, id), async () => {
      const m = store.get(id);
      if (m?.pending === undefined) return m ?? this.missing(me, id);
      try {
        if (this.host.routing()?.successor(chainId, me.targetId) !== undefined) {
          try {
            return await this.finishPending(me, chainId, m, store);
          } catch (err) {
            // A damaged pending version is dropped below: it was never synced, so never forwarded.
            if (!(err instanceof WorkerError && err.code === WorkerErrorCode.ChunkCorrupt)) throw err;
          }
        }
        return await store.commit(id, m.pending.version);
      } catch (err) {
        // A recovered pending version that fails its checksums was never synced, so never forwarded: it is dropped.
        if (!(err instanceof WorkerError && err.code === WorkerErrorCode.ChunkCorrupt)) throw err;
        return store.get(id) ?? this.missing(me, id);
      }
    });
  }

  private missing(me: TargetInfo, id: ChunkRef): never {
    throw new WorkerError(WorkerErrorCode.ChunkNotFound, `target ${me.targetId} holds no chunk ${id.inodeId}:${id.index}`);
  }

  // ---- resync and removal ----------------------------------------------------------------------

  /**
   * The chunks a target holds, a page at a time, for its predecessor's resync. Each committed chunk
   * is verified first: damage at rest (a flipped bit) leaves the metadata as it was, and a chunk
   * listed as damaged is sent again whole, where one listed as matching would stay damaged.
   */
  async syncList(body: unknown): Promise<SyncListReply> {
    const req = validateSyncList(body);
    const { store } = this.member(req, 'sync');
    const after = req.after;
    const all = store
      .list()
      .filter((m) => after === undefined || compareChunks(m.id, after) > 0)
      .sort((a, b) => compareChunks(a.id, b.id));
    const page = all.slice(0, req.limit);
    const chunks: SyncEntry[] = [];
    // Verifying reads every byte: the page ends early once that work nears the caller's timeout,
    // or a target of thousands of chunks would time out on its first page at every retry, each
    // retry piling another full read on the disk (seen: a resync that never finished).
    const deadline = this.host.clock.now() + this.host.callTimeoutMs / 4;
    let scrubbed = 0;
    for (const m of page) {
      if (chunks.length > 0 && (scrubbed >= syncListScrubBytesMax || this.host.clock.now() >= deadline)) break;
      const verify = m.corrupt === undefined && m.commitVersion > 0;
      const corrupt = m.corrupt !== undefined || (verify && !(await store.scrub(m.id)).ok);
      if (verify) scrubbed += m.lengthBytes;
      chunks.push({ inodeId: m.id.inodeId, index: m.id.index, commitVersion: m.commitVersion, lengthBytes: m.lengthBytes, crc32c: m.crc32c, pending: m.pending !== undefined, corrupt });
    }
    return { chunks, more: all.length > chunks.length };
  }

  /**
   * chunk.syncRead: the whole committed version the caller names, from any member of the chain (a
   * member repairing its own damaged copy: the caller checks it against its recorded checksum). Any
   * other version is refused.
   */
  async syncRead(body: unknown): Promise<Reply> {
    const req = validateSyncRead(body);
    const { me, store } = this.member(req, 'syncRead');
    const id = { inodeId: req.inodeId, index: req.index };
    return this.lock.with(chunkLockKey(me.targetId, id), async () => {
      const meta = store.get(id);
      if (meta?.commitVersion !== req.commitVersion) {
        throw new WorkerError(WorkerErrorCode.ChunkNotFound, `target ${me.targetId} holds chunk ${req.inodeId}:${req.index} at committed version ${meta?.commitVersion ?? 'none'}, not ${req.commitVersion}`);
      }
      const whole = await store.readWhole(id);
      return reply({ lengthBytes: whole.meta.lengthBytes, commitVersion: whole.meta.commitVersion }, whole.data);
    });
  }

  async remove(body: unknown): Promise<{ removed: number }> {
    const req = validateRemove(body);
    const { me, store } = this.member(req, 'sync');
    let removed = 0;
    for (const id of req.chunks) {
      if (await this.lock.with(chunkLockKey(me.targetId, id), () => store.remove(id))) removed++;
    }
    return { removed };
  }

  async removeInodes(body: unknown): Promise<{ removed: number }> {
    const req = validateRemoveInodes(body);
    const { store } = this.member(req, 'sync');
    let removed = 0;
    for (const inodeId of req.inodeIds) removed += await store.removeInode(inodeId);
    return { removed };
  }

  /**
   * The local target `targetId` of chain `call.chainId`, checked against the routing: the chain
   * version must match, and the target must be in a state that takes this kind of request.
   */
  member(call: { chainId: number; chainVersion: number; targetId?: number }, kind: 'write' | 'read' | 'sync' | 'syncRead'): { me: TargetInfo; store: ChunkStore } {
    if (!this.host.serving()) throw new WorkerError(WorkerErrorCode.TargetUnavailable, 'this worker has not heard from a master recently and serves nothing until it does');
    const routing = this.host.routing();
    const chain = routing?.chain(call.chainId);
    if (routing === undefined || chain === undefined || chain.version !== call.chainVersion) {
      // The sender saw a newer picture (a heartbeat may be a second away): catch up, so a retry finds it.
      if (chain === undefined || chain.version < call.chainVersion) this.host.routingBehind?.();
      throw new WorkerError(WorkerErrorCode.StaleChainVersion, `chain ${call.chainId} is at version ${chain?.version ?? 'unknown'} here, the request routed by ${call.chainVersion}`, { chainVersion: chain?.version });
    }
    const allowed: TargetState[] = kind === 'read' ? [TargetState.Serving] : kind === 'syncRead' ? Object.values(TargetState) : [TargetState.Serving, TargetState.Syncing];
    const mine = chain.targetIds
      .map((id) => routing.target(id))
      .filter((t): t is TargetInfo => t !== undefined && this.host.store(t.targetId) !== undefined && (call.targetId === undefined || t.targetId === call.targetId));
    // A target whose fsync failed reports itself offline, and the masters take it off its chain at
    // once, before this worker's routing says so: writes may already go on without it, so from the
    // failure on it serves no reads either (it could be missing any of them).
    const usable = (t: TargetInfo): boolean => allowed.includes(t.state) && !(kind === 'read' && !this.readFailedTarget && this.host.store(t.targetId)!.failed);
    const me = mine.find(usable);
    if (me === undefined) {
      const states = mine.map((t) => `target ${t.targetId} is ${t.state}${this.host.store(t.targetId)!.failed ? ' (its disk failed an fsync)' : ''}`).join(', ');
      throw new WorkerError(WorkerErrorCode.TargetUnavailable, `this worker has no target of chain ${call.chainId} that takes a ${kind}${states === '' ? '' : ` (${states})`}`);
    }
    return { me, store: this.host.store(me.targetId)! };
  }

  peer(target: TargetInfo): Connection {
    const address = this.host.routing()?.workerAddress(target.workerId);
    if (address === undefined) throw new WorkerError(WorkerErrorCode.TargetUnavailable, `no address known for worker ${target.workerId}`);
    return this.host.connect(address);
  }
}

export function compareChunks(a: ChunkRef, b: ChunkRef): number {
  return a.inodeId - b.inodeId || a.index - b.index;
}

/** What a worker's chains moved through it since it started (heartbeats and /metrics). */
export interface ReplicaTraffic {
  /** Chunk bytes answered to reads. */
  readBytes: number;
  /**
   * Chunk bytes stored by writes: a client's at the head, a member's forward (a part of a chunk),
   * and whole chunks (a resync filling this target, or a write forwarded to it while it syncs).
   */
  writtenBytes: { client: number; forward: number; whole: number };
}

/**
 * The error a forward refused by a full successor ends with: the writer's, as CAIRN_TARGET_FULL,
 * naming the full target (the successor, or one further down that it heard of).
 */
function fullSuccessor(req: WriteRequest, next: TargetInfo, version: number, err: unknown): WorkerError {
  const relayed = (err as { details?: { fullTargetId?: unknown } }).details?.fullTargetId;
  const full = typeof relayed === 'number' ? relayed : next.targetId;
  const why = typeof relayed === 'number' ? String((err as Error).message) : `target ${full} is full (${String((err as Error).message)})`;
  return new WorkerError(WorkerErrorCode.TargetFull, typeof relayed === 'number' ? why : `chain ${req.chainId}: ${why}; version ${version} of chunk ${req.inodeId}:${req.index} stays pending`, { fullTargetId: full });
}

/** A peer's answers that settle it has no good copy of a chunk (see repairFromPeer); any other failure may pass. */
const noGoodCopyCodes: ReadonlySet<string> = new Set([WorkerErrorCode.ChunkNotFound, WorkerErrorCode.ChunkCorrupt, WorkerErrorCode.ChunkLost]);

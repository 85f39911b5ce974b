// What clients and workers send each other on the data path, and what workers tell the masters:
// the bodies of each RPC, checked field by field at the boundary. Chunk bytes travel as the raw
// payload of the call, never inside the body.

import { chunkSizeBytesMax, idMax } from '../meta/commands.ts';
import { localStates, type LocalState } from '../meta/chain-states.ts';
import { Fields } from '../fields.ts';
import { isWriteId, writeIdsMax } from './chunk-file.ts';
import { WorkerError, WorkerErrorCode } from './errors.ts';

export const WorkerMethod = {
  /** Client → head: the head names the next version, stages it, forwards it, commits. */
  write: 'chunk.write',
  /**
   * Each member → its successor (and a resync's source → its target): a write with its version
   * named. Apart from chunk.write so that a worker's RPC server can tell its peers' traffic, which
   * finishes writes already taken, from clients' new work (it never makes a forward wait for room).
   */
  forward: 'chunk.forward',
  read: 'chunk.read',
  /**
   * Where the committed version of a chunk lies on this machine, for a client on the same machine
   * to read the file itself (a local read, src/client/local-reads.ts): only a clean chunk.
   */
  locate: 'chunk.locate',
  /** Chunk metadata of a target, for its predecessor's resync. */
  syncList: 'chunk.syncList',
  /**
   * One committed version of a chunk, named by its number, from any member serving or syncing: a
   * resync's source whose own copy is damaged repairs it from its target (SyncReadRequest).
   */
  syncRead: 'chunk.syncRead',
  /** The predecessor's resync of a syncing target is complete. */
  syncDone: 'chunk.syncDone',
  /** Removes chunks: of deleted files (garbage collection), or ones a resync found only on the target. */
  remove: 'chunk.remove',
  removeInodes: 'chunk.removeInodes',
  /** The inodes a target holds chunks of, with counts and bytes, paged (the leader's quarantine audit). */
  inventory: 'chunk.inventory',
  /** Removes every chunk of some inodes from one target, in a chain or not (the leader's quarantine purge). */
  purge: 'chunk.purge',
} as const;

export const MasterWorkerMethod = {
  register: 'worker.register',
  heartbeat: 'worker.heartbeat',
  routing: 'cluster.routing',
  /** What the leader heard in workers' last heartbeats: corrupt chunks, scrub counts (`admin report`). */
  health: 'cluster.health',
  /** `admin worker decommission`: the leader marks a worker lost for good (DecommissionRequest). */
  decommission: 'admin.worker.decommission',
  /** Chains the leader cannot give a replacement for a lost member yet, and why (`admin report`). */
  replacements: 'cluster.replacements',
  /** Chunks of inodes the namespace does not know, kept and reported (QuarantineRequest; `admin quarantine list`, `admin report`). */
  quarantine: 'cluster.quarantine',
  /** Removes the quarantined chunks (`admin quarantine purge`). */
  quarantinePurge: 'admin.quarantine.purge',
  /** `admin chain recover`: a chain whose up-to-date member is gone for good serves from the best one left (RecoverChainRequest). */
  recoverChain: 'admin.chain.recover',
} as const;

export interface RecoverChainRequest {
  chainId: number;
  /** Only say what it would do. */
  dryRun: boolean;
}

export function validateRecoverChainRequest(x: unknown): RecoverChainRequest {
  const f = new Fields(x, 'recover chain', workerFieldErrors);
  const req = { chainId: f.int('chainId', 1, idMax), dryRun: f.bool('dryRun', false) };
  f.done();
  return req;
}

export interface DecommissionRequest {
  workerId: number;
  /** Decommission even when a chain keeps no serving replica on a worker in service. */
  force: boolean;
}

export function validateDecommissionRequest(x: unknown): DecommissionRequest {
  const f = new Fields(x, 'decommission', workerFieldErrors);
  const req = { workerId: f.int('workerId', 1, idMax), force: f.bool('force', false) };
  f.done();
  return req;
}

/** One worker in the leader's memory of heartbeats. */
export interface WorkerHealth {
  workerId: number;
  /** Milliseconds since its last heartbeat reached this leader. */
  heartbeatAgeMs: number;
  targets: { targetId: number; chunks: number; chunksCorrupt: number; usedBytes: number; capacityBytes: number; freeBytes?: number; device?: number }[];
  scrub: ScrubReport | undefined;
  /**
   * Chunk bytes the worker answered to reads since it started (0 when its heartbeats do not say).
   * A read is answered by one replica: summed over workers, what clients read.
   */
  bytesRead: number;
  /**
   * Chunk bytes clients wrote through the worker (as their chain's head) since it started; forwards
   * along the chain and resyncs are not counted: summed over workers, what clients wrote.
   */
  bytesWritten: number;
}

export interface ChunkRef {
  inodeId: number;
  index: number;
}

export interface WriteRequest extends ChunkRef {
  chainId: number;
  /** The chain version the sender routed by: a different one is refused (STALE_CHAIN_VERSION). */
  chainVersion: number;
  offset: number;
  /** CRC32C of the payload. */
  crc32c: number;
  /** Set by the head when it forwards: the version every member stages (commit version + 1 at the head). */
  updateVersion?: number;
  /** The payload is the whole chunk (resync, or a write forwarded to a member being synced). */
  replace?: boolean;
  /** Cuts the chunk to `offset` bytes (a file truncated inside it); no payload. */
  truncate?: boolean;
  /** Set on forwards: CRC32C of the whole chunk at `updateVersion`, to tell a retried write from another one. */
  chunkCrc32c?: number;
  /** A client's id for this write (16 hex digits), the same on its retries: a head that applied it answers without applying it again. */
  writeId?: string;
  /** Set on forwards: the write ids the new version remembers (oldest first). */
  writeIds?: string[];
}

export interface WriteReply {
  commitVersion: number;
  lengthBytes: number;
  /** CRC32C of the whole chunk after the write: equal on every member. */
  crc32c: number;
}

export interface ReadRequest extends ChunkRef {
  chainId: number;
  chainVersion: number;
  offset: number;
  length: number;
}

/** The bytes come as the payload: [offset, min(offset + length, lengthBytes)). */
export interface ReadReply {
  lengthBytes: number;
  commitVersion: number;
}

/** chunk.locate: a chunk of a chain this worker serves. */
export interface LocateRequest extends ChunkRef {
  chainId: number;
  chainVersion: number;
}

/** The committed version's file, and what its header must say (a file of that name elsewhere is not it). */
export interface LocateReply {
  /** The worker's machine (this boot of it): a client elsewhere cannot open the file. */
  hostId: string;
  /** Absolute path of the chunk file. */
  file: string;
  commitVersion: number;
  lengthBytes: number;
  crc32c: number;
}

/** Names one target of a chain at a chain version: the resync and removal calls. */
export interface TargetCall {
  chainId: number;
  chainVersion: number;
  targetId: number;
}

export interface SyncListRequest extends TargetCall {
  /** Chunks after this one (`inodeId:index` order), for the next page. */
  after?: ChunkRef;
  limit: number;
}

/** chunk.syncRead: the whole chunk, only if its committed version is `commitVersion` (ReadReply, payload). */
export interface SyncReadRequest extends TargetCall, ChunkRef {
  commitVersion: number;
}

export interface SyncEntry extends ChunkRef {
  commitVersion: number;
  lengthBytes: number;
  crc32c: number;
  /** It holds a pending version too. */
  pending: boolean;
  /** Its committed version fails its checksums: the resync sends it again. */
  corrupt: boolean;
}

export interface SyncListReply {
  chunks: SyncEntry[];
  /** More chunks follow. */
  more: boolean;
}

export interface RemoveRequest extends TargetCall {
  chunks: ChunkRef[];
}

/** Removes every chunk of these files from the target (files whose written chunks were not recorded). */
export interface RemoveInodesRequest extends TargetCall {
  inodeIds: number[];
}

export const syncListLimitMax = 4096;
export const removeChunksMax = 4096;
/** Inodes per page of a target's inventory, and per purge call. */
export const inventoryLimitMax = 4096;

/** chunk.inventory: the inodes of one local target after `afterInodeId` (0: from the first). */
export interface InventoryRequest {
  targetId: number;
  afterInodeId: number;
  limit: number;
}

export interface InodeHolding {
  inodeId: number;
  chunks: number;
  /** What its chunk files take on disk (committed and pending versions, headers included). */
  bytes: number;
}

export interface InventoryReply {
  inodes: InodeHolding[];
  /** More inodes follow the last one listed. */
  more: boolean;
}

/** chunk.purge: every chunk of these inodes goes from one local target. */
export interface PurgeRequest {
  targetId: number;
  inodeIds: number[];
  /**
   * Only while this worker's routing shows the target in no chain, checked under each chunk's lock
   * (the leader reclaiming a free target): a target picked for a chain meanwhile keeps the rest.
   */
  freeOnly?: boolean;
}

/** chunk.purge's answer; `stopped`: the target joined a chain, so the rest was left (freeOnly). */
export interface ChunkPurgeReply {
  removed: number;
  stopped?: boolean;
}

/** cluster.quarantine: the leader's latest audit, or a new one first (`refresh`). */
export interface QuarantineRequest {
  refresh: boolean;
}

export interface TargetReport {
  targetId: number;
  localState: LocalState;
  /**
   * The version of the target's chain the local state was judged at (0: none known). An
   * up-to-date claim counts only at the chain's current version: a worker with stale routing
   * (partitioned, stalled) could otherwise claim a resync it never had.
   */
  chainVersion: number;
  capacityBytes: number;
  usedBytes: number;
  chunks: number;
  /** Chunks whose committed version is damaged and not served (awaiting repair). */
  chunksCorrupt?: number;
  /** The highest inode it holds chunks of (0: none): the masters' inode counter must be past it. */
  inodeIdMax?: number;
  /**
   * Where the target last served (served-record.ts): the chain, and the routing version of the last
   * change of it the target served through. Both or neither; neither if it never served.
   */
  servedChainId?: number;
  servedRoutingVersion?: number;
  /** Free bytes on the target's disk as last read, and the disk's device number: targets of one worker on one device share them. */
  freeBytes?: number;
  device?: number;
}

/** The scrubber's counts since the worker started (scrubber.ts). */
export interface ScrubReport {
  passes: number;
  chunks: number;
  bytes: number;
  found: number;
  repaired: number;
  unrepaired: number;
}

export interface HeartbeatRequest {
  workerId: number;
  /** Random per process start: a new one tells the masters the worker restarted. */
  instance: string;
  /** The routing version the worker holds: the answer carries a newer picture if there is one. */
  routingVersion: number;
  targets: TargetReport[];
  scrub?: ScrubReport;
  /** Cumulative since the worker started (WorkerHealth); absent from workers older than these fields. */
  bytesRead?: number;
  bytesWritten?: number;
}

/** Largest payload of one write or read: a whole chunk of the largest size. */
export const payloadBytesMax = chunkSizeBytesMax;
const instanceBytesMax = 128;

const workerFieldErrors = {
  invalid: (message: string) => new WorkerError(WorkerErrorCode.InvalidArgument, message),
  tooLong: (message: string) => new WorkerError(WorkerErrorCode.InvalidArgument, message),
};

function chunkRef(f: Fields): ChunkRef {
  return { inodeId: f.int('inodeId', 1, Number.MAX_SAFE_INTEGER), index: f.int('index', 0, 0xffff_ffff) };
}

function routed(f: Fields): { chainId: number; chainVersion: number } {
  return { chainId: f.int('chainId', 1, idMax), chainVersion: f.int('chainVersion', 1, Number.MAX_SAFE_INTEGER) };
}

/** A write from untrusted input; `payloadBytes` is the length of the payload that came with it. */
export function validateWrite(x: unknown, payloadBytes: number): WriteRequest {
  const f = new Fields(x, 'chunk write', workerFieldErrors);
  const req: WriteRequest = { ...routed(f), ...chunkRef(f), offset: f.int('offset', 0, chunkSizeBytesMax), crc32c: f.int('crc32c', 0, 0xffff_ffff) };
  const updateVersion = f.optInt('updateVersion', 1, Number.MAX_SAFE_INTEGER);
  if (updateVersion !== undefined) req.updateVersion = updateVersion;
  if (f.bool('replace', false)) req.replace = true;
  if (f.bool('truncate', false)) req.truncate = true;
  const chunkCrc = f.optInt('chunkCrc32c', 0, 0xffff_ffff);
  if (chunkCrc !== undefined) req.chunkCrc32c = chunkCrc;
  if (f.has('writeId')) {
    const id = f.raw('writeId');
    if (!isWriteId(id)) throw workerFieldErrors.invalid(`chunk write: 'writeId' must be 16 hex digits`);
    req.writeId = id;
  }
  if (f.has('writeIds')) {
    const ids = f.array('writeIds', writeIdsMax);
    if (!ids.every(isWriteId)) throw workerFieldErrors.invalid(`chunk write: 'writeIds' must be write ids of 16 hex digits`);
    req.writeIds = ids as string[];
  }
  f.done();
  if (req.offset + payloadBytes > chunkSizeBytesMax) {
    throw workerFieldErrors.invalid(`chunk write: offset ${req.offset} + ${payloadBytes} bytes passes the largest chunk size, ${chunkSizeBytesMax}`);
  }
  if (req.replace === true && req.offset !== 0) throw workerFieldErrors.invalid('chunk write: a whole-chunk replace starts at offset 0');
  if (req.truncate === true && (req.replace === true || payloadBytes !== 0)) throw workerFieldErrors.invalid('chunk write: a truncate carries no payload and replaces nothing');
  return req;
}

export function validateRead(x: unknown): ReadRequest {
  const f = new Fields(x, 'chunk read', workerFieldErrors);
  const req: ReadRequest = { ...routed(f), ...chunkRef(f), offset: f.int('offset', 0, chunkSizeBytesMax), length: f.int('length', 0, payloadBytesMax) };
  f.done();
  return req;
}

export function validateLocate(x: unknown): LocateRequest {
  const f = new Fields(x, 'chunk locate', workerFieldErrors);
  const req: LocateRequest = { ...routed(f), ...chunkRef(f) };
  f.done();
  return req;
}

function targetCall(f: Fields): TargetCall {
  return { ...routed(f), targetId: f.int('targetId', 1, idMax) };
}

export function validateTargetCall(x: unknown): TargetCall {
  const f = new Fields(x, 'target call', workerFieldErrors);
  const call = targetCall(f);
  f.done();
  return call;
}

export function validateSyncList(x: unknown): SyncListRequest {
  const f = new Fields(x, 'sync list', workerFieldErrors);
  const req: SyncListRequest = { ...targetCall(f), limit: f.int('limit', 1, syncListLimitMax) };
  if (f.has('after')) {
    const af = f.nested(f.raw('after'), 'sync list: after');
    req.after = chunkRef(af);
    af.done();
  }
  f.done();
  return req;
}

export function validateSyncRead(x: unknown): SyncReadRequest {
  const f = new Fields(x, 'sync read', workerFieldErrors);
  const req: SyncReadRequest = { ...targetCall(f), ...chunkRef(f), commitVersion: f.int('commitVersion', 1, Number.MAX_SAFE_INTEGER) };
  f.done();
  return req;
}

export function validateRemove(x: unknown): RemoveRequest {
  const f = new Fields(x, 'chunk remove', workerFieldErrors);
  const req: RemoveRequest = {
    ...targetCall(f),
    chunks: f.array('chunks', removeChunksMax).map((c, i) => {
      const cf = f.nested(c, `chunk remove: chunks[${i}]`);
      const ref = chunkRef(cf);
      cf.done();
      return ref;
    }),
  };
  f.done();
  return req;
}

export function validateRemoveInodes(x: unknown): RemoveInodesRequest {
  const f = new Fields(x, 'chunk remove inodes', workerFieldErrors);
  const req: RemoveInodesRequest = { ...targetCall(f), inodeIds: f.array('inodeIds', removeChunksMax).map((id, i) => f.checkInt(`inodeIds[${i}]`, id, 1, Number.MAX_SAFE_INTEGER)) };
  f.done();
  return req;
}

export function validateHeartbeat(x: unknown): HeartbeatRequest {
  const f = new Fields(x, 'heartbeat', workerFieldErrors);
  const req: HeartbeatRequest = {
    workerId: f.int('workerId', 1, idMax),
    instance: f.str('instance', instanceBytesMax),
    routingVersion: f.int('routingVersion', 0, Number.MAX_SAFE_INTEGER),
    targets: f.array('targets', 256).map((t, i) => {
      const tf = f.nested(t, `heartbeat: targets[${i}]`);
      const localState = tf.req('localState');
      if (typeof localState !== 'string' || !localStates.includes(localState)) {
        throw workerFieldErrors.invalid(`${tf.where}: 'localState' must be one of ${localStates.join(', ')}`);
      }
      const report: TargetReport = {
        targetId: tf.int('targetId', 1, idMax),
        localState: localState as LocalState,
        chainVersion: tf.int('chainVersion', 0, Number.MAX_SAFE_INTEGER),
        capacityBytes: tf.int('capacityBytes', 0, Number.MAX_SAFE_INTEGER),
        usedBytes: tf.int('usedBytes', 0, Number.MAX_SAFE_INTEGER),
        chunks: tf.int('chunks', 0, Number.MAX_SAFE_INTEGER),
      };
      const corrupt = tf.optInt('chunksCorrupt', 0, Number.MAX_SAFE_INTEGER);
      if (corrupt !== undefined) report.chunksCorrupt = corrupt;
      const inodeIdMax = tf.optInt('inodeIdMax', 0, Number.MAX_SAFE_INTEGER);
      if (inodeIdMax !== undefined) report.inodeIdMax = inodeIdMax;
      const servedChainId = tf.optInt('servedChainId', 1, Number.MAX_SAFE_INTEGER);
      const servedRoutingVersion = tf.optInt('servedRoutingVersion', 1, Number.MAX_SAFE_INTEGER);
      if ((servedChainId === undefined) !== (servedRoutingVersion === undefined)) {
        throw workerFieldErrors.invalid(`${tf.where}: 'servedChainId' and 'servedRoutingVersion' come together or not at all`);
      }
      if (servedChainId !== undefined) Object.assign(report, { servedChainId, servedRoutingVersion });
      const freeBytes = tf.optInt('freeBytes', 0, Number.MAX_SAFE_INTEGER);
      if (freeBytes !== undefined) report.freeBytes = freeBytes;
      const device = tf.optInt('device', 0, Number.MAX_SAFE_INTEGER);
      if (device !== undefined) report.device = device;
      tf.done();
      return report;
    }),
  };
  if (f.has('scrub')) {
    const sf = f.nested(f.raw('scrub'), 'heartbeat: scrub');
    const n = (k: string): number => sf.int(k, 0, Number.MAX_SAFE_INTEGER);
    req.scrub = { passes: n('passes'), chunks: n('chunks'), bytes: n('bytes'), found: n('found'), repaired: n('repaired'), unrepaired: n('unrepaired') };
    sf.done();
  }
  const bytesRead = f.optInt('bytesRead', 0, Number.MAX_SAFE_INTEGER);
  if (bytesRead !== undefined) req.bytesRead = bytesRead;
  const bytesWritten = f.optInt('bytesWritten', 0, Number.MAX_SAFE_INTEGER);
  if (bytesWritten !== undefined) req.bytesWritten = bytesWritten;
  f.done();
  return req;
}

export function validateInventory(x: unknown): InventoryRequest {
  const f = new Fields(x, 'chunk inventory', workerFieldErrors);
  const req = { targetId: f.int('targetId', 1, idMax), afterInodeId: f.optInt('afterInodeId', 0, Number.MAX_SAFE_INTEGER) ?? 0, limit: f.int('limit', 1, inventoryLimitMax) };
  f.done();
  return req;
}

export function validatePurge(x: unknown): PurgeRequest {
  const f = new Fields(x, 'chunk purge', workerFieldErrors);
  const req: PurgeRequest = { targetId: f.int('targetId', 1, idMax), inodeIds: f.array('inodeIds', inventoryLimitMax).map((id, i) => f.checkInt(`inodeIds[${i}]`, id, 1, Number.MAX_SAFE_INTEGER)) };
  if (f.has('freeOnly')) req.freeOnly = f.bool('freeOnly');
  f.done();
  return req;
}

/** admin.quarantine.purge takes no argument: anything else is refused before it removes a chunk. */
export function validatePurgeQuarantine(x: unknown): void {
  new Fields(x ?? {}, 'quarantine purge', workerFieldErrors).done();
}

export function validateQuarantineRequest(x: unknown): QuarantineRequest {
  const f = new Fields(x ?? {}, 'quarantine', workerFieldErrors);
  const req = { refresh: f.bool('refresh', false) };
  f.done();
  return req;
}

// The commands the metadata journal carries and the queries masters answer: their types, their
// validation at the boundary (RPC, log entries), and their msgpack encoding.

import { Packr } from 'msgpackr';
import { parseAddress } from '../address.ts';
import { describe, Fields } from '../fields.ts';
import { FsErrorCode, MetaError, MetaErrorCode } from './errors.ts';
import { chunkRangesMax, rangesProblem } from './chunk-ranges.ts';
import { checkPath, nameProblem, symlinkTargetBytesMax } from './paths.ts';
import { isDeviceType, isSpecialInodeType, specialInodeTypes, type SpecialInodeType } from './namespace-state.ts';

export const chunkSizeBytesMin = 64 * 1024;
export const chunkSizeBytesMax = 64 * 1024 * 1024;
export const chunkSizeBytesDefault = 4 * 1024 * 1024;
/** Chains a file is striped over by default (fewer when the table has fewer): bandwidth from many workers. */
export const stripeWidthDefault = 16;
export const stripeWidthMax = 4096;
/** Mode holds permission bits only (with setuid, setgid, sticky); the type is separate. */
export const modeMax = 0o7777;
export const idMax = 0xffff_ffff;
/** File sizes are exact JavaScript integers. */
export const fileSizeBytesMax = Number.MAX_SAFE_INTEGER;
export const clientIdBytesMax = 128;
export const sessionIdBytesMax = 128;
/** Generated session ids start with this; client-chosen ids may not, so the two never collide. */
export const generatedSessionPrefix = '@';
export const addressBytesMax = 256;
export const targetPathBytesMax = 4096;
export const domainBytesMax = 256;
export const instanceBytesMax = 128;
export const clusterIdBytesMax = 128;
export const targetsPerWorkerMax = 256;
/** Targets one resizeTargets command names at most. */
export const resizeTargetsMax = 4096;
export const chainsPerTableMax = 65_536;
export const chainLengthMax = 16;
export const gcDoneInodesMax = 10_000;
/** Sessions one meta.renewSessions call names at most; a client holding more sends several. */
export const renewSessionsMax = 10_000;
/** Sessions one expireSessions command ends at most. */
export const expireSessionsMax = 1000;
/** Creates and unlinks one dirBatch carries at most. */
export const dirBatchOpsMax = 1024;
/** A lease holder's token: letters, digits, '-' and '_'. */
export const holderPattern = /^[A-Za-z0-9_-]{1,64}$/;
/** Leases one expireDirLeases command ends at most. */
export const expireDirLeasesMax = 1000;
export const readdirLimitMax = 1000;
export const pendingGcLimitMax = 1000;
/** Sessions one `sessions` query lists at most. */
export const sessionsLimitMax = 10_000;
/** Supplementary groups a caller may present (NFS's AUTH_SYS carries 16). */
export const callerGroupsMax = 32;
/** One encoded command; the largest is a full chain table (chainsPerTableMax x chainLengthMax ids). */
export const commandBytesMax = 8 * 1024 * 1024;

export const TargetState = {
  Serving: 'serving',
  Syncing: 'syncing',
  Waiting: 'waiting',
  LastServing: 'lastsrv',
  Offline: 'offline',
} as const;
export type TargetState = (typeof TargetState)[keyof typeof TargetState];
const targetStates: readonly string[] = Object.values(TargetState);

/** Where a file's chunks go: chunk i lives on chain chains[perm(shuffleSeed)[i mod stripeWidth]] of the table. */
export interface Layout {
  chunkSizeBytes: number;
  stripeWidth: number;
  chainTableId: number;
  chainTableVersion: number;
  shuffleSeed: number;
}

/** Stamped on every mutation: who sent it (exactly-once) and when (the leader's clock). */
export interface ClientStamp {
  clientId: string;
  seq: number;
  nowMs: number;
}

/**
 * Who a namespace request acts as: the identity the masters check permissions against (they
 * trust the secret holder to tell the truth: docs/reliability.md). uid 0 is root.
 */
export interface Caller {
  readonly uid: number;
  readonly gid: number;
  /** Supplementary groups, at most callerGroupsMax (gid need not be repeated). */
  readonly groups: readonly number[];
  /**
   * The directory-lease holder the request comes from (a mount's token, dir-leases.ts): its
   * requests may use the directories it holds, which other requests wait for.
   */
  readonly holder?: string;
}

export const rootCaller: Caller = Object.freeze({ uid: 0, gid: 0, groups: Object.freeze([]) as readonly number[] });

/** The stamp of a namespace command: also who sends it. */
export interface NamespaceStamp extends ClientStamp {
  caller: Caller;
}

export interface NoopCommand extends ClientStamp {
  op: 'noop';
}
/** Names the cluster once (workers write it into their targets): a second, different name is refused. */
export interface InitClusterCommand extends ClientStamp {
  op: 'initCluster';
  clusterId: string;
}
export interface MkdirCommand extends NamespaceStamp {
  op: 'mkdir';
  path: string;
  mode: number;
  uid: number;
  gid: number;
  parents: boolean;
}
export interface CreateCommand extends NamespaceStamp {
  op: 'create';
  path: string;
  mode: number;
  uid: number;
  gid: number;
  exclusive: boolean;
  /** Absent: the default layout, on chain table 1 at its current version, seeded from the inode id. */
  layout?: Layout;
  /**
   * Also open a write session on the file (open(2) with O_CREAT in one step): on a file this
   * creates whatever its mode, as open(2) does; on one found there, with write permission.
   */
  openSession?: boolean;
  /**
   * With openSession, on a new file: a temporary file its writer renames once complete (`fs put`,
   * an S3 PUT). Should its session expire (the writer died), the file goes too, with every chunk of
   * it, if it still has this name.
   */
  ephemeral?: boolean;
}
/** Takes a directory for the caller's holder (dir-leases.ts), with a range of inode ids for its creates. */
export interface LeaseDirCommand extends NamespaceStamp {
  op: 'leaseDir';
  path: string;
}
/** Gives a held directory back. */
export interface ReleaseDirCommand extends NamespaceStamp {
  op: 'releaseDir';
  dirInodeId: number;
}
/** The leader ends the leases no renewal named for a lease: each if that holder still holds it. */
export interface ExpireDirLeasesCommand extends ClientStamp {
  op: 'expireDirLeases';
  leases: { dirInodeId: number; holder: string }[];
}
/** One create or unlink of a batch in a held directory, acting as its own caller. */
export type DirBatchOp =
  | { op: 'create'; name: string; inodeId: number; mode: number; uid: number; gid: number; openSession: boolean; caller: Caller }
  | { op: 'unlink'; name: string; caller: Caller };
/** Creates and unlinks the caller's holder made in a directory it holds, in order, each with its own result. */
export interface DirBatchCommand extends NamespaceStamp {
  op: 'dirBatch';
  dirInodeId: number;
  ops: DirBatchOp[];
}
export interface UnlinkCommand extends NamespaceStamp {
  op: 'unlink';
  path: string;
}
export interface RmdirCommand extends NamespaceStamp {
  op: 'rmdir';
  path: string;
}
export interface RenameCommand extends NamespaceStamp {
  op: 'rename';
  from: string;
  to: string;
  /**
   * Rename only if `to` is this inode now, 0 if only if nothing is there (RENAME_NOREPLACE):
   * otherwise EEXIST (something is there) or EAGAIN (another inode is, or none). The S3 gateway's
   * conditional PUTs (If-None-Match: *, If-Match) replace an object only as they found it.
   */
  replacing?: number;
}
export interface SymlinkCommand extends NamespaceStamp {
  op: 'symlink';
  path: string;
  target: string;
  uid: number;
  gid: number;
}
/** A FIFO, socket or device node: a name and attributes, no data. */
export interface MknodCommand extends NamespaceStamp {
  op: 'mknod';
  path: string;
  type: SpecialInodeType;
  mode: number;
  uid: number;
  gid: number;
  /** Device nodes: the device number; 0 for FIFOs and sockets. */
  rdev: number;
}
export interface LinkCommand extends NamespaceStamp {
  op: 'link';
  existing: string;
  path: string;
}
export interface SetattrCommand extends NamespaceStamp {
  op: 'setattr';
  path: string;
  mode?: number;
  uid?: number;
  gid?: number;
  atimeMs?: number;
  mtimeMs?: number;
  /**
   * Set atime and mtime to the command's clock (touch): write permission suffices for this, where
   * explicit times need the owner. Not with atimeMs or mtimeMs.
   */
  timesNow?: boolean;
  /** Truncate (or extend with a hole) to this length. */
  sizeBytes?: number;
  /**
   * The client removed (or cut) the file's chunks past `sizeBytes` on the workers first. A shrink
   * that would leave written chunks behind is refused without it: their old bytes would come back
   * when the file grows again. The client library's truncateFile does this.
   */
  chunksTrimmed?: boolean;
}
export interface OpenSessionCommand extends NamespaceStamp {
  op: 'openSession';
  path: string;
  /** Chosen by the client, or generated by the state (`@<n>`). */
  sessionId?: string;
  /** O_TRUNC: the length drops to 0 when the session opens. */
  truncate: boolean;
  /** As setattr's: the client already removed the file's chunks (needed to truncate a file that has some). */
  chunksTrimmed?: boolean;
}
export interface CloseSessionCommand extends NamespaceStamp {
  op: 'closeSession';
  sessionId: string;
  lengthBytes?: number;
  /** The chunks the writer wrote, as ranges (src/meta/chunk-ranges.ts); null: too many to list, stop tracking the file's chunks. */
  chunks?: number[] | null;
  /** Ended for a writer that is gone (`admin sessions end`), as an expired one is: a temporary file goes with it. */
  abandoned?: boolean;
}
/**
 * Ends a put in one step: closes its write session (committing length and chunks as closeSession
 * does), sets the file's final mode and one extended attribute (the S3 gateway's object metadata),
 * and renames it from its temporary name into place (as rename, `replacing` included). All of it
 * happens, or nothing does: a writer that dies before it leaves an ephemeral file that its
 * session's expiry removes, one that dies after it leaves the whole file in place.
 */
export interface PublishCommand extends NamespaceStamp {
  op: 'publish';
  sessionId: string;
  /** The session's file, by the name it has now. */
  from: string;
  to: string;
  lengthBytes: number;
  chunks?: number[] | null;
  replacing?: number;
  mode?: number;
  /** Both or neither: one user.* attribute set (as setxattr with no flags). */
  xattrName?: string;
  xattrValue?: Uint8Array;
}
/** Names its file by path or, for a file that may be unlinked while open, by inode id: exactly one. */
export interface CommitLengthCommand extends NamespaceStamp {
  op: 'commitLength';
  path?: string;
  inodeId?: number;
  lengthBytes: number;
  chunks?: number[] | null;
}
/**
 * The leader ends these write sessions: their clients have not renewed their lease with it
 * (src/master/session-leases.ts). A session already ended is passed over.
 */
export interface ExpireSessionsCommand extends ClientStamp {
  op: 'expireSessions';
  sessionIds: string[];
}
/** The chunks of these deleted files are gone: drop them from the pending GC list. */
export interface GcDoneCommand extends ClientStamp {
  op: 'gcDone';
  inodeIds: number[];
}
/**
 * The leader emptied a target that left a chain of the chunks it kept there (reclaim.ts): it is no
 * longer reclaimed. Applies only while the target is still free since that same departure.
 */
export interface TargetReclaimedCommand extends ClientStamp {
  op: 'targetReclaimed';
  targetId: number;
  /** The target's leftChainAt when the reclaim began. */
  leftChainAt: number;
}
export interface TargetSpec {
  targetId: number;
  path: string;
  capacityBytes: number;
}
export interface RegisterWorkerCommand extends ClientStamp {
  op: 'registerWorker';
  workerId: number;
  /** Random per process start: a new one means the worker restarted (and its replicas must resync). */
  instance: string;
  address: string;
  domain: string;
  targets: TargetSpec[];
}
export interface NewChain {
  chainId: number;
  /** Head first; every target known, in no chain yet, each on its own worker. */
  targetIds: number[];
}
/** Appends new chains to a chain table (made if absent): its version goes up by one. */
export interface AddChainsCommand extends ClientStamp {
  op: 'addChains';
  tableId: number;
  chains: NewChain[];
}
export interface ChainUpdate {
  chainId: number;
  /** The chain's version this update was computed from: a newer one refuses it (EAGAIN). */
  version: number;
  /** The new members in order with their states, sorted by state (serving first, offline last). */
  targets: { targetId: number; state: TargetState }[];
}
/** The cluster manager's decisions: new states, orders or members of chains, all or none. */
export interface UpdateChainsCommand extends ClientStamp {
  op: 'updateChains';
  chains: ChainUpdate[];
}
/**
 * Targets whose file systems grew or shrank since their workers registered them (a disk or volume
 * resized while the worker ran): their capacities as the workers' heartbeats now report them.
 */
export interface ResizeTargetsCommand extends ClientStamp {
  op: 'resizeTargets';
  targets: { targetId: number; capacityBytes: number }[];
}
/**
 * A worker lost for good: it stays in the tables (its id is never registered again) and its
 * targets leave their chains as the cluster manager finds replacements (replaceChainMember).
 */
export interface DecommissionWorkerCommand extends ClientStamp {
  op: 'decommissionWorker';
  workerId: number;
}
/**
 * The cluster manager puts a free target into a chain in place of a lost member (one of a
 * decommissioned worker, or offline too long): the chain keeps its id, its version goes up, the
 * new member resyncs from its predecessor, the lost one leaves (chain 0, offline).
 */
export interface ReplaceChainMemberCommand extends ClientStamp {
  op: 'replaceChainMember';
  chainId: number;
  /** The chain's version the replacement was chosen at: a newer one refuses it (EAGAIN). */
  version: number;
  lostTargetId: number;
  newTargetId: number;
}
/**
 * Rebalancing onto new workers: a free target joins a healthy chain (every member serving, no
 * move under way) as an extra member that resyncs, and `fromTargetId` is marked to leave once it
 * has (endChainMove). The chain keeps its id, its version goes up; its chunks stay in it.
 */
export interface MoveChainMemberCommand extends ClientStamp {
  op: 'moveChainMember';
  chainId: number;
  version: number;
  fromTargetId: number;
  toTargetId: number;
}
/**
 * The end of a chain's move: 'done' drops the leaving member (the newcomer serves); 'cancelled'
 * drops the newcomer instead (it failed, or left service, before it caught up).
 */
export interface EndChainMoveCommand extends ClientStamp {
  op: 'endChainMove';
  chainId: number;
  version: number;
  outcome: 'done' | 'cancelled';
}
/** Extended attributes: only the user.* namespace is kept (the others are the kernel's business). */
export const xattrNamePrefix = 'user.';
export const xattrNameBytesMax = 255;
export const xattrValueBytesMax = 16 * 1024;
/** All of one inode's names and values together: the inode table's memory stays bounded. */
export const xattrsBytesMax = 64 * 1024;
export const XattrFlag = { Any: 0, Create: 1, Replace: 2 } as const;
export type XattrFlag = (typeof XattrFlag)[keyof typeof XattrFlag];
export interface SetxattrCommand extends NamespaceStamp {
  op: 'setxattr';
  path: string;
  name: string;
  value: Uint8Array;
  /** Create: fail if it exists (EEXIST). Replace: fail if it does not (ENODATA). As setxattr(2). */
  flags: XattrFlag;
}
export interface RemovexattrCommand extends NamespaceStamp {
  op: 'removexattr';
  path: string;
  name: string;
}
/** An S3 access key for the gateways (`cairn admin s3 user add`). */
export interface S3UserAddCommand extends ClientStamp {
  op: 's3UserAdd';
  accessKeyId: string;
  secretKey: string;
  buckets: string[];
  uid: number;
  gid: number;
}
export interface S3UserRemoveCommand extends ClientStamp {
  op: 's3UserRemove';
  accessKeyId: string;
}
/** A read-only dashboard login (`cairn admin dashboard user add`): the password's scrypt hash, never the password. */
export interface DashboardUserAddCommand extends ClientStamp {
  op: 'dashboardUserAdd';
  name: string;
  passwordHash: string;
  /** Whom its file browser acts as (permissions checked as for any caller). */
  uid: number;
  gid: number;
}
export interface DashboardUserRemoveCommand extends ClientStamp {
  op: 'dashboardUserRemove';
  name: string;
}
export type MetaCommand =
  | NoopCommand
  | InitClusterCommand
  | MkdirCommand
  | CreateCommand
  | UnlinkCommand
  | LeaseDirCommand
  | ReleaseDirCommand
  | ExpireDirLeasesCommand
  | DirBatchCommand
  | RmdirCommand
  | RenameCommand
  | SymlinkCommand
  | MknodCommand
  | LinkCommand
  | SetattrCommand
  | OpenSessionCommand
  | CloseSessionCommand
  | PublishCommand
  | CommitLengthCommand
  | ExpireSessionsCommand
  | GcDoneCommand
  | TargetReclaimedCommand
  | RegisterWorkerCommand
  | AddChainsCommand
  | UpdateChainsCommand
  | DecommissionWorkerCommand
  | ResizeTargetsCommand
  | ReplaceChainMemberCommand
  | MoveChainMemberCommand
  | EndChainMoveCommand
  | SetxattrCommand
  | RemovexattrCommand
  | S3UserAddCommand
  | S3UserRemoveCommand
  | DashboardUserAddCommand
  | DashboardUserRemoveCommand;
export type MetaCommandOp = MetaCommand['op'];

export type MetaQuery =
  /** With `xattr`: that extended attribute's value too, if the inode has it and the caller may read it. */
  | { op: 'stat'; path: string; xattr?: string; caller: Caller }
  | { op: 'statInode'; inodeId: number; caller: Caller }
  | { op: 'lookup'; parentId: number; name: string; caller: Caller }
  | { op: 'readdir'; path: string; after?: string; limit: number; plus?: boolean; xattr?: string; attrs?: boolean; caller: Caller }
  | { op: 'readlink'; path: string; caller: Caller }
  /** Open a file for reading: its attributes (with the layout a reader needs), if the caller may read it. */
  | { op: 'open'; path: string; xattr?: string; caller: Caller }
  | { op: 'statfs' }
  | { op: 'workers' }
  | { op: 'targets' }
  | { op: 'chains' }
  | { op: 'chainTables' }
  | { op: 'routing' }
  | { op: 'session'; sessionId: string }
  /** Open write sessions, oldest first: at most `limit`, of clients whose id starts with `client`, opened at or before `openedBeforeMs`. */
  | { op: 'sessions'; limit: number; client?: string; openedBeforeMs?: number }
  | { op: 'pendingGc'; limit: number }
  | { op: 'getxattr'; path: string; name: string; caller: Caller }
  | { op: 'listxattr'; path: string; caller: Caller }
  /** The gateways' access keys, without their secrets. */
  | { op: 's3Users' }
  /** One key with its secret, for a gateway checking a signature. */
  | { op: 's3Credential'; accessKeyId: string }
  /** The dashboard's logins, without their password hashes. */
  | { op: 'dashboardUsers' };
export type MetaQueryOp = MetaQuery['op'];

// ---------------------------------------------------------------------------------------------
// Field readers: each checks one field of an untrusted object and names it in its message.

function invalid(message: string): MetaError {
  return new MetaError(MetaErrorCode.EINVAL, message);
}

/** Field readers that fail with MetaError: EINVAL, or ENAMETOOLONG for an overlong string. */
const metaFieldErrors = {
  invalid,
  tooLong: (message: string) => new MetaError(MetaErrorCode.ENAMETOOLONG, message),
};

class MetaFields extends Fields {
  constructor(x: unknown, where: string) {
    super(x, where, metaFieldErrors);
  }

  path(key: string): string {
    const v = this.req(key);
    if (typeof v !== 'string') throw invalid(`${this.where}: '${key}' must be a string, not ${describe(v)}`);
    checkPath(v, `${this.where}: '${key}'`);
    return v;
  }

  optPath(key: string): string | undefined {
    return this.has(key) ? this.path(key) : undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Commands

function stamp(f: MetaFields): ClientStamp {
  return {
    clientId: f.str('clientId', clientIdBytesMax),
    seq: f.int('seq', 1, Number.MAX_SAFE_INTEGER),
    nowMs: f.int('nowMs', 0, Number.MAX_SAFE_INTEGER),
  };
}

/** The owner of a new entry (a caller other than root may only name itself and one of its groups). */
function owner(f: MetaFields): { uid: number; gid: number } {
  return { uid: f.int('uid', 0, idMax), gid: f.int('gid', 0, idMax) };
}

function isPowerOfTwo(n: number): boolean {
  return n > 0 && (n & (n - 1)) === 0;
}

/** A layout from untrusted input, with the defaults for chunk size and stripe width filled in. */
export function validateLayout(x: unknown, where = 'layout'): Layout {
  const f = new MetaFields(x, where);
  const chunkSizeBytes = f.optInt('chunkSizeBytes', chunkSizeBytesMin, chunkSizeBytesMax) ?? chunkSizeBytesDefault;
  if (!isPowerOfTwo(chunkSizeBytes)) throw invalid(`${where}: 'chunkSizeBytes' = ${chunkSizeBytes} is not a power of two`);
  const layout: Layout = {
    chunkSizeBytes,
    stripeWidth: f.optInt('stripeWidth', 1, stripeWidthMax) ?? stripeWidthDefault,
    chainTableId: f.int('chainTableId', 1, idMax),
    chainTableVersion: f.int('chainTableVersion', 0, idMax),
    shuffleSeed: f.int('shuffleSeed', 0, idMax),
  };
  f.done();
  return layout;
}

function validateTargets(f: MetaFields): TargetSpec[] {
  const seen = new Set<number>();
  return f.array('targets', targetsPerWorkerMax).map((t, i) => {
    const tf = new MetaFields(t, `${f.where}: targets[${i}]`);
    const spec = { targetId: tf.int('targetId', 1, idMax), path: tf.str('path', targetPathBytesMax), capacityBytes: tf.int('capacityBytes', 0, Number.MAX_SAFE_INTEGER) };
    tf.done();
    if (seen.has(spec.targetId)) throw invalid(`${f.where}: target ${spec.targetId} is listed twice`);
    seen.add(spec.targetId);
    return spec;
  });
}

function targetIdList(f: MetaFields, key: string, v: unknown): number[] {
  if (!Array.isArray(v)) throw invalid(`${f.where}: '${key}' must be an array, not ${describe(v)}`);
  if (v.length === 0 || v.length > chainLengthMax) throw invalid(`${f.where}: '${key}' has ${v.length} targets, not 1 to ${chainLengthMax}`);
  const ids = v.map((t, j) => f.checkInt(`${key}[${j}]`, t, 1, idMax));
  if (new Set(ids).size !== ids.length) throw invalid(`${f.where}: '${key}' lists a target twice`);
  return ids;
}

function validateNewChains(f: MetaFields): NewChain[] {
  const seen = new Set<number>();
  return f.array('chains', chainsPerTableMax).map((c, i) => {
    const cf = new MetaFields(c, `${f.where}: chains[${i}]`);
    const chain = { chainId: cf.int('chainId', 1, idMax), targetIds: targetIdList(cf, 'targetIds', cf.req('targetIds')) };
    cf.done();
    if (seen.has(chain.chainId)) throw invalid(`${f.where}: chain ${chain.chainId} is listed twice`);
    seen.add(chain.chainId);
    return chain;
  });
}

function validateTargetState(f: MetaFields, key: string, v: unknown): TargetState {
  if (typeof v !== 'string' || !targetStates.includes(v)) {
    throw invalid(`${f.where}: '${key}' must be one of ${targetStates.join(', ')}, not ${describe(v)}`);
  }
  return v as TargetState;
}

const moveOutcomes: readonly string[] = ['done', 'cancelled'];

function validateMoveOutcome(f: MetaFields): EndChainMoveCommand['outcome'] {
  const v = f.req('outcome');
  if (typeof v !== 'string' || !moveOutcomes.includes(v)) throw invalid(`${f.where}: 'outcome' must be one of ${moveOutcomes.join(', ')}, not ${describe(v)}`);
  return v as EndChainMoveCommand['outcome'];
}

function validateChainUpdates(f: MetaFields): ChainUpdate[] {
  const seen = new Set<number>();
  return f.array('chains', chainsPerTableMax).map((c, i) => {
    const cf = new MetaFields(c, `${f.where}: chains[${i}]`);
    const chainId = cf.int('chainId', 1, idMax);
    const version = cf.int('version', 1, Number.MAX_SAFE_INTEGER);
    const raw = cf.array('targets', chainLengthMax);
    if (raw.length === 0) throw invalid(`${cf.where}: 'targets' is empty`);
    const targets = raw.map((t, j) => {
      const tf = new MetaFields(t, `${cf.where}: targets[${j}]`);
      const member = { targetId: tf.int('targetId', 1, idMax), state: validateTargetState(tf, 'state', tf.req('state')) };
      tf.done();
      return member;
    });
    cf.done();
    if (new Set(targets.map((t) => t.targetId)).size !== targets.length) throw invalid(`${cf.where}: a target is listed twice`);
    if (seen.has(chainId)) throw invalid(`${f.where}: chain ${chainId} is listed twice`);
    seen.add(chainId);
    return { chainId, version, targets };
  });
}

function optChunkRanges(f: MetaFields): number[] | null | undefined {
  if (f.raw('chunks') === null) return null;
  if (!f.has('chunks')) return undefined;
  const v = f.array('chunks', 2 * chunkRangesMax);
  const problem = rangesProblem(v);
  if (problem !== undefined) throw invalid(`${f.where}: 'chunks' must be sorted, disjoint ranges of chunk indexes: ${problem}`);
  return v as number[];
}

/** The ops of commands that act on the namespace (and carry their caller). */
export type NamespaceCommandOp = Extract<MetaCommand, NamespaceStamp>['op'];
type ClusterCommandOp = Exclude<MetaCommandOp, NamespaceCommandOp>;

const namespaceReaders: Record<NamespaceCommandOp, (f: MetaFields, s: NamespaceStamp) => MetaCommand> = {
  mkdir: (f, s) => ({
    op: 'mkdir',
    ...s,
    path: f.path('path'),
    mode: f.int('mode', 0, modeMax),
    ...owner(f),
    parents: f.bool('parents', false),
  }),
  create: (f, s) => {
    const cmd: CreateCommand = {
      op: 'create',
      ...s,
      path: f.path('path'),
      mode: f.int('mode', 0, modeMax),
      ...owner(f),
      exclusive: f.bool('exclusive', false),
    };
    const layout = f.raw('layout');
    if (layout !== undefined) cmd.layout = validateLayout(layout, `${f.where}: layout`);
    if (f.bool('openSession', false)) cmd.openSession = true;
    if (f.bool('ephemeral', false)) {
      if (cmd.openSession !== true || !cmd.exclusive) throw invalid(`${f.where}: 'ephemeral' needs 'openSession' and 'exclusive' (a new file of this writer's own)`);
      cmd.ephemeral = true;
    }
    return cmd;
  },
  unlink: (f, s) => ({ op: 'unlink', ...s, path: f.path('path') }),
  leaseDir: (f, s) => ({ op: 'leaseDir', ...s, path: f.path('path') }),
  releaseDir: (f, s) => ({ op: 'releaseDir', ...s, dirInodeId: f.int('dirInodeId', 1, Number.MAX_SAFE_INTEGER) }),
  dirBatch: (f, s) => {
    if (s.caller.holder === undefined) throw invalid(`${f.where}: the caller names no lease holder`);
    const ops = f.array('ops', dirBatchOpsMax).map((raw, i) => dirBatchOp(new MetaFields(raw, `${f.where}: ops[${i}]`), s.caller.holder!));
    return { op: 'dirBatch', ...s, dirInodeId: f.int('dirInodeId', 1, Number.MAX_SAFE_INTEGER), ops };
  },
  rmdir: (f, s) => ({ op: 'rmdir', ...s, path: f.path('path') }),
  rename: (f, s) => {
    const cmd: RenameCommand = { op: 'rename', ...s, from: f.path('from'), to: f.path('to') };
    const replacing = f.optInt('replacing', 0, Number.MAX_SAFE_INTEGER);
    if (replacing !== undefined) cmd.replacing = replacing;
    return cmd;
  },
  symlink: (f, s) => ({
    op: 'symlink',
    ...s,
    path: f.path('path'),
    target: f.str('target', symlinkTargetBytesMax),
    ...owner(f),
  }),
  mknod: (f, s) => {
    const type = f.str('type', 16);
    if (!isSpecialInodeType(type)) throw invalid(`${f.where}: 'type' must be one of ${specialInodeTypes.join(', ')}, got '${type}'`);
    return { op: 'mknod', ...s, path: f.path('path'), type, mode: f.int('mode', 0, modeMax), ...owner(f), rdev: f.int('rdev', 0, isDeviceType(type) ? idMax : 0) };
  },
  link: (f, s) => ({ op: 'link', ...s, existing: f.path('existing'), path: f.path('path') }),
  setattr: (f, s) => {
    const cmd: SetattrCommand = { op: 'setattr', ...s, path: f.path('path') };
    const mode = f.optInt('mode', 0, modeMax);
    const uid = f.optInt('uid', 0, idMax);
    const gid = f.optInt('gid', 0, idMax);
    const atimeMs = f.optInt('atimeMs', Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
    const mtimeMs = f.optInt('mtimeMs', Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
    const sizeBytes = f.optInt('sizeBytes', 0, fileSizeBytesMax);
    const timesNow = f.bool('timesNow', false);
    if (mode !== undefined) cmd.mode = mode;
    if (uid !== undefined) cmd.uid = uid;
    if (gid !== undefined) cmd.gid = gid;
    if (atimeMs !== undefined) cmd.atimeMs = atimeMs;
    if (mtimeMs !== undefined) cmd.mtimeMs = mtimeMs;
    if (timesNow) cmd.timesNow = true;
    if (sizeBytes !== undefined) cmd.sizeBytes = sizeBytes;
    if (f.bool('chunksTrimmed', false)) cmd.chunksTrimmed = true;
    f.done(); // an unknown field ('size') explains more than "nothing to change"
    if (timesNow && (atimeMs !== undefined || mtimeMs !== undefined)) {
      throw invalid(`${f.where}: 'timesNow' sets both times to the masters' clock: give it or atimeMs/mtimeMs, not both`);
    }
    if ([mode, uid, gid, atimeMs, mtimeMs, sizeBytes].every((v) => v === undefined) && !timesNow) {
      throw invalid(`${f.where}: nothing to change (give mode, uid, gid, atimeMs, mtimeMs, timesNow or sizeBytes)`);
    }
    return cmd;
  },
  setxattr: (f, s) => ({ op: 'setxattr', ...s, path: f.path('path'), name: xattrName(f), value: xattrValue(f), flags: f.int('flags', 0, 2) as XattrFlag }),
  removexattr: (f, s) => ({ op: 'removexattr', ...s, path: f.path('path'), name: xattrName(f) }),
  openSession: (f, s) => {
    const cmd: OpenSessionCommand = { op: 'openSession', ...s, path: f.path('path'), truncate: f.bool('truncate', false) };
    if (f.bool('chunksTrimmed', false)) cmd.chunksTrimmed = true;
    const sessionId = f.optStr('sessionId', sessionIdBytesMax);
    if (sessionId !== undefined) {
      if (sessionId.startsWith(generatedSessionPrefix)) {
        throw invalid(`${f.where}: 'sessionId' may not start with '${generatedSessionPrefix}' (reserved for generated ids)`);
      }
      cmd.sessionId = sessionId;
    }
    return cmd;
  },
  closeSession: (f, s) => {
    const cmd: CloseSessionCommand = { op: 'closeSession', ...s, sessionId: f.str('sessionId', sessionIdBytesMax) };
    const lengthBytes = f.optInt('lengthBytes', 0, fileSizeBytesMax);
    if (lengthBytes !== undefined) cmd.lengthBytes = lengthBytes;
    const chunks = optChunkRanges(f);
    if (chunks !== undefined) cmd.chunks = chunks;
    if (f.bool('abandoned', false)) {
      if (lengthBytes !== undefined || chunks !== undefined) throw invalid(`${f.where}: an 'abandoned' session commits nothing`);
      cmd.abandoned = true;
    }
    return cmd;
  },
  publish: (f, s) => {
    const cmd: PublishCommand = {
      op: 'publish',
      ...s,
      sessionId: f.str('sessionId', sessionIdBytesMax),
      from: f.path('from'),
      to: f.path('to'),
      lengthBytes: f.int('lengthBytes', 0, fileSizeBytesMax),
    };
    const chunks = optChunkRanges(f);
    if (chunks !== undefined) cmd.chunks = chunks;
    const replacing = f.optInt('replacing', 0, Number.MAX_SAFE_INTEGER);
    if (replacing !== undefined) cmd.replacing = replacing;
    const mode = f.optInt('mode', 0, modeMax);
    if (mode !== undefined) cmd.mode = mode;
    if (f.has('xattrName') || f.has('xattrValue')) {
      cmd.xattrName = xattrName(f, 'xattrName');
      cmd.xattrValue = xattrValue(f, 'xattrValue');
    }
    return cmd;
  },
  commitLength: (f, s) => {
    const path = f.optPath('path');
    const inodeId = f.optInt('inodeId', 1, Number.MAX_SAFE_INTEGER);
    if ((path === undefined) === (inodeId === undefined)) throw invalid(`${f.where}: give exactly one of 'path' and 'inodeId'`);
    const cmd: CommitLengthCommand = { op: 'commitLength', ...s, lengthBytes: f.int('lengthBytes', 0, fileSizeBytesMax) };
    if (path !== undefined) cmd.path = path;
    if (inodeId !== undefined) cmd.inodeId = inodeId;
    const chunks = optChunkRanges(f);
    if (chunks !== undefined) cmd.chunks = chunks;
    return cmd;
  },
};

function xattrName(f: MetaFields, key = 'name'): string {
  const name = f.str(key, xattrNameBytesMax);
  if (!name.startsWith(xattrNamePrefix) || name.length === xattrNamePrefix.length) throw new MetaError(FsErrorCode.EINVAL, `${f.where}: only user.* extended attributes are kept ('${name.slice(0, 64)}')`, { errno: 'EOPNOTSUPP' });
  if (name.includes('\0')) throw invalid(`${f.where}: an extended attribute's name has no NUL byte`);
  return name;
}

function xattrValue(f: MetaFields, key = 'value'): Uint8Array {
  const v = f.req(key);
  if (!(v instanceof Uint8Array)) throw invalid(`${f.where}: '${key}' must be bytes, not ${describe(v)}`);
  if (v.length > xattrValueBytesMax) throw new MetaError(FsErrorCode.E2BIG, `${f.where}: an extended attribute's value has ${v.length} bytes, more than ${xattrValueBytesMax}`);
  return v;
}

/** Access key ids as AWS's tools accept them: letters, digits and . _ - (AWS's own are 20 letters and digits). */
export const s3AccessKeyIdPattern = /^[A-Za-z0-9._-]{3,128}$/;
/** Secrets of printable ASCII without spaces; never empty: an empty secret would sign with a known key. */
export const s3SecretKeyPattern = /^[\x21-\x7e]{8,128}$/;
/** S3's bucket naming rules (lower case, digits, '.', '-'; 3 to 63; a letter or digit at each end). */
export const s3BucketNamePattern = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
export const s3UserBucketsMax = 1000;
/** Access keys the masters keep at most. */
export const s3UsersMax = 10_000;

/** Dashboard login names: a letter, then letters, digits and . _ - (as user names usually are). */
export const dashboardUserNamePattern = /^[A-Za-z][A-Za-z0-9._-]{0,63}$/;
/** `scrypt$N$r$p$salt$hash` (base64url salt and hash), as src/web/passwords.ts writes it. */
const dashboardPasswordHashPattern = /^scrypt\$\d{1,8}\$\d{1,2}\$\d{1,2}\$[A-Za-z0-9_-]{16,64}\$[A-Za-z0-9_-]{32,128}$/;
/** Dashboard logins the masters keep at most. */
export const dashboardUsersMax = 1000;

/**
 * Whether a stored hash is well formed and its scrypt cost bounded (N a power of two from 2^10 to
 * 2^17, r up to 16, p up to 4: at most 256 MiB and well under a second a check), so that no hash
 * can make a login attempt exhaust a master.
 */
export function dashboardPasswordHashOk(hash: string): boolean {
  if (!dashboardPasswordHashPattern.test(hash)) return false;
  const [N, r, p] = hash.split('$').slice(1, 4).map(Number);
  return N >= 1024 && N <= 131_072 && (N & (N - 1)) === 0 && r >= 1 && r <= 16 && p >= 1 && p <= 4;
}

function dashboardUserName(f: MetaFields): string {
  const name = f.str('name', 64);
  if (!dashboardUserNamePattern.test(name)) throw invalid(`${f.where}: 'name' must be a letter followed by up to 63 letters, digits, '.', '_' or '-'`);
  return name;
}

function s3AccessKeyId(f: MetaFields): string {
  const id = f.str('accessKeyId', 128);
  if (!s3AccessKeyIdPattern.test(id)) throw invalid(`${f.where}: 'accessKeyId' must be 3 to 128 letters, digits, '.', '_' or '-'`);
  return id;
}

function s3SecretKey(f: MetaFields): string {
  const secret = f.str('secretKey', 128);
  if (!s3SecretKeyPattern.test(secret)) throw invalid(`${f.where}: 'secretKey' must be 8 to 128 printable ASCII characters without spaces`);
  return secret;
}

function s3Buckets(f: MetaFields): string[] {
  const list = f.array('buckets', s3UserBucketsMax).map((b, i) => {
    if (typeof b !== 'string' || (b !== '*' && !s3BucketNamePattern.test(b))) throw invalid(`${f.where}: buckets[${i}] must be a bucket name or '*'`);
    return b;
  });
  if (list.length === 0) throw invalid(`${f.where}: 'buckets' must name at least one bucket, or '*' for all`);
  if (list.includes('*') && list.length > 1) throw invalid(`${f.where}: 'buckets' is either '*' (all) or a list of names, not both`);
  return [...new Set(list)].sort();
}

/** One op of a dirBatch; its caller acts for the batch's holder. */
function dirBatchOp(f: MetaFields, holder: string): DirBatchOp {
  const op = f.str('op', 16);
  const name = f.req('name');
  if (typeof name !== 'string') throw invalid(`${f.where}: 'name' must be a string, not ${describe(name)}`);
  const problem = nameProblem(name);
  if (problem !== undefined) throw new MetaError(problem.code, `${f.where}: ${problem.message}`);
  const caller = readCaller(f, undefined);
  if (caller.holder !== undefined && caller.holder !== holder) throw invalid(`${f.where}: the op's caller names another holder`);
  const withHolder: Caller = { ...caller, holder };
  let out: DirBatchOp;
  if (op === 'create') {
    out = { op: 'create', name, inodeId: f.int('inodeId', 1, Number.MAX_SAFE_INTEGER), mode: f.int('mode', 0, modeMax), ...owner(f), openSession: f.bool('openSession', false), caller: withHolder };
  } else if (op === 'unlink') {
    out = { op: 'unlink', name, caller: withHolder };
  } else {
    throw invalid(`${f.where}: op must be 'create' or 'unlink', not ${describe(op)}`);
  }
  f.done();
  return out;
}

const clusterReaders: Record<ClusterCommandOp, (f: MetaFields, s: ClientStamp) => MetaCommand> = {
  noop: (_f, s) => ({ op: 'noop', ...s }),
  expireDirLeases: (f, s) => ({
    op: 'expireDirLeases',
    ...s,
    leases: f.array('leases', expireDirLeasesMax).map((raw, i) => {
      const lf = new MetaFields(raw, `${f.where}: leases[${i}]`);
      const lease = { dirInodeId: lf.int('dirInodeId', 1, Number.MAX_SAFE_INTEGER), holder: checkHolder(lf, 'holder', lf.raw('holder')) };
      lf.done();
      return lease;
    }),
  }),
  initCluster: (f, s) => ({ op: 'initCluster', ...s, clusterId: f.str('clusterId', clusterIdBytesMax) }),
  expireSessions: (f, s) => ({
    op: 'expireSessions',
    ...s,
    sessionIds: f.array('sessionIds', expireSessionsMax).map((id, i) => f.checkStr(`sessionIds[${i}]`, id, sessionIdBytesMax)),
  }),
  gcDone: (f, s) => ({
    op: 'gcDone',
    ...s,
    inodeIds: f.array('inodeIds', gcDoneInodesMax).map((id, i) => f.checkInt(`inodeIds[${i}]`, id, 1, Number.MAX_SAFE_INTEGER)),
  }),
  targetReclaimed: (f, s) => ({
    op: 'targetReclaimed',
    ...s,
    targetId: f.int('targetId', 1, idMax),
    leftChainAt: f.int('leftChainAt', 1, Number.MAX_SAFE_INTEGER),
  }),
  registerWorker: (f, s) => ({
    op: 'registerWorker',
    ...s,
    workerId: f.int('workerId', 1, idMax),
    instance: f.str('instance', instanceBytesMax),
    address: validateAddress(f),
    domain: f.raw('domain') === '' ? '' : (f.optStr('domain', domainBytesMax) ?? ''),
    targets: validateTargets(f),
  }),
  addChains: (f, s) => ({ op: 'addChains', ...s, tableId: f.int('tableId', 1, idMax), chains: validateNewChains(f) }),
  updateChains: (f, s) => ({ op: 'updateChains', ...s, chains: validateChainUpdates(f) }),
  decommissionWorker: (f, s) => ({ op: 'decommissionWorker', ...s, workerId: f.int('workerId', 1, idMax) }),
  resizeTargets: (f, s) => {
    const seen = new Set<number>();
    const targets = f.array('targets', resizeTargetsMax).map((t, i) => {
      const tf = new MetaFields(t, `${f.where}: targets[${i}]`);
      const spec = { targetId: tf.int('targetId', 1, idMax), capacityBytes: tf.int('capacityBytes', 0, Number.MAX_SAFE_INTEGER) };
      tf.done();
      if (seen.has(spec.targetId)) throw invalid(`${f.where}: target ${spec.targetId} is listed twice`);
      seen.add(spec.targetId);
      return spec;
    });
    return { op: 'resizeTargets', ...s, targets };
  },
  s3UserAdd: (f, s) => ({
    op: 's3UserAdd',
    ...s,
    accessKeyId: s3AccessKeyId(f),
    secretKey: s3SecretKey(f),
    buckets: s3Buckets(f),
    uid: f.int('uid', 0, idMax),
    gid: f.int('gid', 0, idMax),
  }),
  s3UserRemove: (f, s) => ({ op: 's3UserRemove', ...s, accessKeyId: s3AccessKeyId(f) }),
  dashboardUserAdd: (f, s) => {
    const passwordHash = f.str('passwordHash', 256);
    if (!dashboardPasswordHashOk(passwordHash)) throw invalid(`${f.where}: 'passwordHash' must be an scrypt hash (scrypt$N$r$p$salt$hash, N at most 2^17, r at most 16, p at most 4), never a password`);
    return { op: 'dashboardUserAdd', ...s, name: dashboardUserName(f), passwordHash, uid: f.int('uid', 0, idMax), gid: f.int('gid', 0, idMax) };
  },
  dashboardUserRemove: (f, s) => ({ op: 'dashboardUserRemove', ...s, name: dashboardUserName(f) }),
  replaceChainMember: (f, s) => {
    const cmd: ReplaceChainMemberCommand = {
      op: 'replaceChainMember',
      ...s,
      chainId: f.int('chainId', 1, idMax),
      version: f.int('version', 1, Number.MAX_SAFE_INTEGER),
      lostTargetId: f.int('lostTargetId', 1, idMax),
      newTargetId: f.int('newTargetId', 1, idMax),
    };
    if (cmd.lostTargetId === cmd.newTargetId) throw invalid(`${f.where}: target ${cmd.newTargetId} cannot replace itself`);
    return cmd;
  },
  moveChainMember: (f, s) => {
    const cmd: MoveChainMemberCommand = {
      op: 'moveChainMember',
      ...s,
      chainId: f.int('chainId', 1, idMax),
      version: f.int('version', 1, Number.MAX_SAFE_INTEGER),
      fromTargetId: f.int('fromTargetId', 1, idMax),
      toTargetId: f.int('toTargetId', 1, idMax),
    };
    if (cmd.fromTargetId === cmd.toTargetId) throw invalid(`${f.where}: target ${cmd.toTargetId} cannot move to itself`);
    return cmd;
  },
  endChainMove: (f, s) => ({
    op: 'endChainMove',
    ...s,
    chainId: f.int('chainId', 1, idMax),
    version: f.int('version', 1, Number.MAX_SAFE_INTEGER),
    outcome: validateMoveOutcome(f),
  }),
};

/** `host:port`, port 1 to 65535 (src/address.ts); the host is not resolved here. */
function validateAddress(f: MetaFields): string {
  const address = f.str('address', addressBytesMax);
  const parsed = parseAddress(address);
  if ('problem' in parsed) throw invalid(`${f.where}: 'address' must be host:port, not '${address}': ${parsed.problem}`);
  return address;
}

function opOf(f: MetaFields, readers: Record<string, unknown>, kind: string): string {
  const op = f.req('op');
  if (typeof op !== 'string' || !Object.hasOwn(readers, op)) {
    throw invalid(`${f.where}: unknown ${kind} op ${describe(op)} (known: ${Object.keys(readers).join(', ')})`);
  }
  return op;
}

/** The commands and queries that act on the namespace: each carries its caller. */
export const namespaceCommandOps: ReadonlySet<string> = new Set(Object.keys(namespaceReaders));
const commandReaders = { ...namespaceReaders, ...clusterReaders };

function isNamespaceCommandOp(op: MetaCommandOp): op is NamespaceCommandOp {
  return namespaceCommandOps.has(op);
}

function readCaller(f: MetaFields, absent: Caller | undefined): Caller {
  const v = f.raw('caller');
  if (v === undefined) {
    if (absent !== undefined) return absent;
    throw invalid(`${f.where}: missing field 'caller' (who the request acts as: { uid, gid, groups }; a client too old to send it must be upgraded)`);
  }
  const cf = new MetaFields(v, `${f.where}: caller`);
  const caller: Caller = {
    uid: cf.int('uid', 0, idMax),
    gid: cf.int('gid', 0, idMax),
    groups: cf.has('groups') ? cf.array('groups', callerGroupsMax).map((g, i) => cf.checkInt(`groups[${i}]`, g, 0, idMax)) : [],
  };
  const holder = cf.raw('holder');
  cf.done();
  return holder === undefined ? caller : { ...caller, holder: checkHolder(cf, 'holder', holder) };
}

function checkHolder(f: MetaFields, where: string, x: unknown): string {
  if (typeof x !== 'string' || !holderPattern.test(x)) throw invalid(`${f.where}: ${where} must be a lease holder's token (1 to 64 of A-Z a-z 0-9 _ -), not ${describe(x)}`);
  return x;
}

/** validateCommand, with the caller a namespace command without one is taken to act as (log entries only). */
function readCommand(x: unknown, absentCaller: Caller | undefined): MetaCommand {
  const op = opOf(new MetaFields(x, 'command'), commandReaders, 'command') as MetaCommandOp;
  const where = new MetaFields(x, `${op} command`);
  where.raw('op');
  const s = stamp(where);
  const cmd = isNamespaceCommandOp(op)
    ? namespaceReaders[op](where, { ...s, caller: readCaller(where, absentCaller) })
    : clusterReaders[op](where, s);
  where.done();
  return cmd;
}

/**
 * A well-formed command from untrusted input, as a fresh object holding only known fields with
 * defaults filled in. Throws a MetaError (EINVAL, or ENAMETOOLONG for a long name or path); a
 * namespace command without its caller is refused (EINVAL).
 */
export function validateCommand(x: unknown): MetaCommand {
  return readCommand(x, undefined);
}

// ---------------------------------------------------------------------------------------------
// Queries

type NamespaceQueryOp = Extract<MetaQuery, { caller: Caller }>['op'];
type ClusterQueryOp = Exclude<MetaQueryOp, NamespaceQueryOp>;

const namespaceQueryReaders: Record<NamespaceQueryOp, (f: MetaFields, caller: Caller) => MetaQuery> = {
  stat: (f, caller) => ({ op: 'stat', path: f.path('path'), ...(f.has('xattr') ? { xattr: xattrName(f, 'xattr') } : {}), caller }),
  statInode: (f, caller) => ({ op: 'statInode', inodeId: f.int('inodeId', 1, Number.MAX_SAFE_INTEGER), caller }),
  lookup: (f, caller) => {
    const parentId = f.int('parentId', 1, Number.MAX_SAFE_INTEGER);
    const name = f.req('name');
    if (typeof name !== 'string') throw invalid(`${f.where}: 'name' must be a string, not ${describe(name)}`);
    const problem = nameProblem(name);
    if (problem !== undefined) throw new MetaError(problem.code, `${f.where}: ${problem.message}`);
    return { op: 'lookup', parentId, name, caller };
  },
  readdir: (f, caller) => {
    const q: MetaQuery = { op: 'readdir', path: f.path('path'), limit: f.int('limit', 1, Number.MAX_SAFE_INTEGER), caller };
    const after = f.raw('after');
    if (after !== undefined) {
      if (typeof after !== 'string') throw invalid(`${f.where}: 'after' must be a string, not ${describe(after)}`);
      q.after = after;
    }
    if (f.bool('plus', false)) q.plus = true;
    if (f.bool('attrs', false)) q.attrs = true;
    if (f.has('xattr')) {
      if (q.plus !== true) throw invalid(`${f.where}: 'xattr' needs 'plus'`);
      q.xattr = xattrName(f, 'xattr');
    }
    return q;
  },
  readlink: (f, caller) => ({ op: 'readlink', path: f.path('path'), caller }),
  getxattr: (f, caller) => ({ op: 'getxattr', path: f.path('path'), name: xattrName(f), caller }),
  listxattr: (f, caller) => ({ op: 'listxattr', path: f.path('path'), caller }),
  open: (f, caller) => ({ op: 'open', path: f.path('path'), ...(f.has('xattr') ? { xattr: xattrName(f, 'xattr') } : {}), caller }),
};

const clusterQueryReaders: Record<ClusterQueryOp, (f: MetaFields) => MetaQuery> = {
  statfs: () => ({ op: 'statfs' }),
  workers: () => ({ op: 'workers' }),
  targets: () => ({ op: 'targets' }),
  chains: () => ({ op: 'chains' }),
  chainTables: () => ({ op: 'chainTables' }),
  routing: () => ({ op: 'routing' }),
  session: (f) => ({ op: 'session', sessionId: f.str('sessionId', sessionIdBytesMax) }),
  sessions: (f) => {
    const client = f.optStr('client', clientIdBytesMax);
    const openedBeforeMs = f.has('openedBeforeMs') ? f.int('openedBeforeMs', 0, Number.MAX_SAFE_INTEGER) : undefined;
    return { op: 'sessions', limit: f.int('limit', 1, sessionsLimitMax), ...(client === undefined ? {} : { client }), ...(openedBeforeMs === undefined ? {} : { openedBeforeMs }) };
  },
  pendingGc: (f) => ({ op: 'pendingGc', limit: f.int('limit', 1, Number.MAX_SAFE_INTEGER) }),
  s3Users: () => ({ op: 's3Users' }),
  s3Credential: (f) => ({ op: 's3Credential', accessKeyId: s3AccessKeyId(f) }),
  dashboardUsers: () => ({ op: 'dashboardUsers' }),
};

export const namespaceQueryOps: ReadonlySet<string> = new Set(Object.keys(namespaceQueryReaders));
const queryReaders = { ...namespaceQueryReaders, ...clusterQueryReaders };

function isNamespaceQueryOp(op: MetaQueryOp): op is NamespaceQueryOp {
  return namespaceQueryOps.has(op);
}

/** A well-formed query from untrusted input; throws a MetaError like validateCommand. */
export function validateQuery(x: unknown): MetaQuery {
  const op = opOf(new MetaFields(x, 'query'), queryReaders, 'query') as MetaQueryOp;
  const where = new MetaFields(x, `${op} query`);
  where.raw('op');
  const q = isNamespaceQueryOp(op) ? namespaceQueryReaders[op](where, readCaller(where, undefined)) : clusterQueryReaders[op](where);
  where.done();
  return q;
}

// ---------------------------------------------------------------------------------------------
// Encoding

/** Plain msgpack maps (no records extension), so each message stands alone and other tools read it. */
export const metaPackr = new Packr({ useRecords: false, moreTypes: false });

export function encodeCommand(cmd: MetaCommand): Uint8Array {
  const bytes = metaPackr.pack(cmd);
  if (bytes.length > commandBytesMax) {
    throw invalid(`${cmd.op} command encodes to ${bytes.length} bytes, more than ${commandBytesMax}`);
  }
  return bytes;
}

/**
 * Decodes and validates one log entry's command; throws a MetaError (EINVAL) for anything else. A
 * namespace command without a caller was written before callers were carried, and was applied
 * then without permission checks: it replays as root, so that replaying reaches the same state.
 */
export function decodeCommand(bytes: Uint8Array): MetaCommand {
  if (bytes.length > commandBytesMax) throw invalid(`command of ${bytes.length} bytes is longer than ${commandBytesMax}`);
  let x: unknown;
  try {
    x = metaPackr.unpack(bytes);
  } catch (err) {
    throw invalid(`command is not valid msgpack: ${(err as Error).message}`);
  }
  return readCommand(x, rootCaller);
}

// The tables behind MetaState (inodes, sessions, pending GC, clients, cluster) and the value types
// its results and queries return. Internal records are mutable; values handed out are copies.

import type { Layout, TargetState } from './commands.ts';
import type { ResultErrorCode } from './errors.ts';

export type InodeType = 'file' | 'dir' | 'symlink' | SpecialInodeType;
/** Inodes with a name and attributes but no data here: the kernel of whoever opens them serves them. */
export const specialInodeTypes = ['fifo', 'socket', 'chardev', 'blockdev'] as const;
export type SpecialInodeType = (typeof specialInodeTypes)[number];

export function isSpecialInodeType(type: string): type is SpecialInodeType {
  return (specialInodeTypes as readonly string[]).includes(type);
}

/** Device nodes, the special files with a device number. */
export function isDeviceType(type: string): boolean {
  return type === 'chardev' || type === 'blockdev';
}

export const rootInodeId = 1;
/** Files without an explicit layout use this chain table, at its current version. */
export const defaultChainTableId = 1;
export const clientIdleMsMaxDefault = 60 * 60 * 1000;
export const clientsMaxDefault = 65_536;
export const sessionsMaxDefault = 1_000_000;

/** Limits that change what apply does, so every master must use the same: snapshots carry them. */
export interface MetaStateOptions {
  /** A client record unused for longer (by the commands' clock) is forgotten. */
  clientIdleMsMax: number;
  /** At most this many client records; the least recently used goes first. */
  clientsMax: number;
  /** At most this many open sessions; openSession answers EMFILE beyond. */
  sessionsMax: number;
}

/** One inode; `children` and `parentId` for directories, `layout` for files, `target` for symlinks. */
export interface Inode {
  id: number;
  type: InodeType;
  mode: number;
  uid: number;
  gid: number;
  /** Files and symlinks: their dentries. Directories: 2 + subdirectories. 0: an orphan held open. */
  nlink: number;
  sizeBytes: number;
  atimeMs: number;
  mtimeMs: number;
  ctimeMs: number;
  /** Directories: the directory holding them (the root holds itself); others 0. */
  parentId: number;
  layout: Layout | null;
  /** Files: the chunks ever written, as ranges (src/meta/chunk-ranges.ts); null when untracked (too scattered) or not a file. */
  chunks: number[] | null;
  target: string | null;
  /** Device nodes: the device number (as st_rdev); 0 for every other inode. */
  rdev: number;
  children: Map<string, number> | null;
  /** Directories: the children's names sorted, built on demand for readdir; null when stale. */
  sortedNames: string[] | null;
  /** Extended attributes (user.* names), null while there are none. */
  xattrs: Map<string, Uint8Array> | null;
}

export interface Session {
  sessionId: string;
  inodeId: number;
  clientId: string;
  openedMs: number;
  /** A temporary file's session (create's `ephemeral`): where the file was made, removed if the session expires while it is still there. */
  ephemeral?: { parentId: number; name: string };
}

/**
 * A directory a mount holds (dir-leases.ts): nobody else's request may look up a non-directory
 * name in it, list it or change its entries, so the holder answers those itself.
 */
export interface DirLease {
  dirInodeId: number;
  holder: string;
  clientId: string;
  grantedMs: number;
  /** The inode ids the holder's creates take, in order: the next one, and the end of the range. */
  idNext: number;
  idEnd: number;
}

/** What leaseDir answers: the directory, and the inode ids the holder's creates in it take. */
export interface LeaseDirValue {
  dir: InodeAttr;
  idNext: number;
  idEnd: number;
}

/** One op's outcome in a dirBatch: its value, or its failure. */
export type DirBatchResult = { ok: true; value: CreateValue | UnlinkValue } | { ok: false; code: string; message: string };

/** A deleted file whose chunks the workers may now remove. */
export interface GcEntry {
  inodeId: number;
  layout: Layout;
  /** The chunks to remove as ranges; null: unknown, remove every chunk of the inode. */
  chunks: number[] | null;
  sizeBytes: number;
  deletedMs: number;
}

/**
 * An S3 gateway's access key. SigV4 needs the secret itself (it signs with it), so the masters keep
 * it as given: in the journal, checkpoints and backups. Listings never show it.
 */
export interface S3User {
  accessKeyId: string;
  secretKey: string;
  /** The buckets (top-level directories) the key may use; ['*']: all. */
  buckets: string[];
  /** Who the gateway acts as for this key: owner of what it creates, checked like any caller. */
  uid: number;
  gid: number;
  createdMs: number;
}

/** An S3 user as listings show it: without the secret. */
export type S3UserInfo = Omit<S3User, 'secretKey'>;

/** A read-only dashboard login. Only the password's scrypt hash is kept (src/web/passwords.ts). */
export interface DashboardUser {
  name: string;
  passwordHash: string;
  /** Whom its file browser acts as. */
  uid: number;
  gid: number;
  createdMs: number;
}

export type DashboardUserInfo = Omit<DashboardUser, 'passwordHash'>;

export interface ClientRecord {
  seq: number;
  result: MetaResult;
  lastUsedMs: number;
}

export interface Worker {
  workerId: number;
  /** The process that registered last (random per start). */
  instance: string;
  address: string;
  /** Failure domain (rack, power feed): chains avoid two replicas in one when they can. '' when not given. */
  domain: string;
  targetIds: number[];
  registeredMs: number;
  updatedMs: number;
  /**
   * When it was decommissioned (lost for good); absent while it is in service. A decommissioned
   * worker stays in the tables so that its id is never registered again by mistake (a machine
   * that comes back under it would claim targets whose chains moved on): it is refused, and
   * returns as a new worker with a new id and empty targets.
   */
  decommissionedMs?: number;
}

export interface Target {
  targetId: number;
  workerId: number;
  path: string;
  capacityBytes: number;
  /** The public state the cluster manager gave it (serving, syncing, ...). */
  state: TargetState;
  /** The chain it is a replica in; 0 while in none. */
  chainId: number;
  /**
   * Set when the target leaves a chain (the routing version of that change), until the leader has
   * reclaimed the chunks it kept from it (targetReclaimed) or it joins a chain again. Only such a
   * target is reclaimed: a free target without it may hold a chain's only copies (after a restore
   * from a backup older than the chain's last moves).
   */
  leftChainAt?: number;
}

/**
 * A replicated chain: its targets in order (the first serving one is the head, writes flow to the
 * last), kept sorted by state: serving, lastsrv, syncing, waiting, offline. The version goes up on
 * every change of its members, their order or their states.
 */
export interface Chain {
  chainId: number;
  version: number;
  targetIds: readonly number[];
  /**
   * A member moving to another worker (rebalancing onto new workers): `to` joined as an extra
   * member and resyncs; once every member but `from` serves, `from` leaves. Absent when none moves.
   */
  moving?: Readonly<ChainMove>;
}

export interface ChainMove {
  fromTargetId: number;
  toTargetId: number;
}

/**
 * The chains files are striped over. Chains are only ever appended, so a file's layout names a
 * version and sees the first chainCounts[version - 1] chains, whatever came later.
 */
export interface ChainTable {
  tableId: number;
  version: number;
  chainIds: readonly number[];
  /** Chains in each version: chainCounts[v - 1] for version v. */
  chainCounts: readonly number[];
  publishedMs: number;
}

// ---------------------------------------------------------------------------------------------
// Values handed out

/** What stat answers: an inode's attributes, with the type-specific fields only where they apply. */
export type InodeAttr = Pick<Inode, 'type' | 'mode' | 'uid' | 'gid' | 'nlink' | 'sizeBytes' | 'atimeMs' | 'mtimeMs' | 'ctimeMs'> & {
  inodeId: number;
  /** Directories only. */
  parentId?: number;
  /** Files only. */
  layout?: Layout;
  /** Files only: the chunks ever written (ranges of chunk indexes), null when not tracked. */
  chunks?: number[] | null;
  /** The extended attribute a stat or open asked for, when the inode has it. */
  xattr?: Uint8Array;
  /** Symlinks only. */
  target?: string;
  /** Device nodes only. */
  rdev?: number;
};

export interface DirEntry {
  name: string;
  inodeId: number;
  type: InodeType;
  /** With readdir's `plus`: the size (0 for a directory), mtime and owner, whether a directory is empty, and the asked-for xattr. */
  sizeBytes?: number;
  mtimeMs?: number;
  uid?: number;
  empty?: boolean;
  xattr?: Uint8Array;
  /** With readdir's `attrs`: the entry's attributes, as stat answers them less a file's list of written chunks. */
  attr?: InodeAttr;
}

export interface ReaddirPage {
  entries: DirEntry[];
  /** Pass as `after` for the next page; absent on the last page. */
  next?: string;
}

export interface StatFs {
  inodes: number;
  files: number;
  dirs: number;
  symlinks: number;
  /** Sum of the lengths of all files, orphans included. */
  logicalBytes: number;
  sessions: number;
  /** Files unlinked while open, kept until their last session closes. */
  orphans: number;
  pendingGc: number;
  clients: number;
  indexApplied: number;
}

export interface UnlinkValue {
  inodeId: number;
  /** Links left: 0 means the file is gone, or an orphan while sessions hold it. */
  nlink: number;
  /** The file's chunks are now on the pending GC list. */
  pendingGc: boolean;
  /** The directory the name was in, as this change left it (a mount answers the kernel's next getattr of it). */
  parent?: InodeAttr;
}

export interface CreateValue {
  inode: InodeAttr;
  /** False when a non-exclusive create found the file already there. */
  created: boolean;
  /** With `openSession`: the write session opened on the file in the same step. */
  sessionId?: string;
  /** The directory the file is in, as this step left it. */
  parent?: InodeAttr;
}

export interface RenameValue {
  inodeId: number;
  /** What the rename replaced at `to`, if anything. */
  replaced: UnlinkValue | null;
}

export interface SessionValue {
  sessionId: string;
  inode: InodeAttr;
}

/** The file as publish left it, at its new name, and what the rename replaced there. */
export interface PublishValue {
  inode: InodeAttr;
  replaced: UnlinkValue | null;
}

export interface CloseSessionValue {
  inode: InodeAttr;
  pendingGc: boolean;
}

export type TargetInfo = Readonly<Target>;

export interface WorkerInfo {
  workerId: number;
  instance: string;
  address: string;
  domain: string;
  targets: TargetInfo[];
  registeredMs: number;
  updatedMs: number;
  /** Present once the worker is decommissioned. */
  decommissionedMs?: number;
}

export type ChainInfo = Readonly<Chain>;
export type ChainTableInfo = Readonly<ChainTable>;

/**
 * Everything a client or worker needs to route chunk requests, as one consistent picture: the
 * version goes up with every change to workers, targets, chains or tables.
 */
export interface RoutingInfo {
  /** '' until the first leader names the cluster. */
  clusterId: string;
  routingVersion: number;
  workers: { workerId: number; address: string }[];
  targets: TargetInfo[];
  chains: ChainInfo[];
  tables: ChainTableInfo[];
}

/** The value each command answers with when it succeeds. */
export interface MetaValues {
  noop: null;
  initCluster: { clusterId: string };
  mkdir: InodeAttr;
  create: CreateValue;
  unlink: UnlinkValue;
  leaseDir: LeaseDirValue;
  releaseDir: { released: boolean };
  expireDirLeases: { ended: number };
  dirBatch: { results: DirBatchResult[]; parent: InodeAttr };
  rmdir: { inodeId: number };
  rename: RenameValue;
  symlink: InodeAttr;
  mknod: InodeAttr;
  link: InodeAttr;
  setattr: InodeAttr;
  openSession: SessionValue;
  closeSession: CloseSessionValue;
  publish: PublishValue;
  commitLength: InodeAttr;
  expireSessions: { ended: number; pendingGc: number };
  gcDone: { removed: number };
  targetReclaimed: { cleared: boolean };
  registerWorker: WorkerInfo;
  addChains: { tableId: number; version: number };
  updateChains: { chains: ChainInfo[] };
  decommissionWorker: WorkerInfo;
  resizeTargets: { targets: number };
  replaceChainMember: ChainInfo;
  moveChainMember: ChainInfo;
  endChainMove: ChainInfo;
  setxattr: null;
  removexattr: null;
  s3UserAdd: S3UserInfo;
  s3UserRemove: S3UserInfo;
  dashboardUserAdd: DashboardUserInfo;
  dashboardUserRemove: DashboardUserInfo;
}
export type MetaValue = MetaValues[keyof MetaValues];

export interface MetaOk<V> {
  ok: true;
  value: V;
}
export interface MetaFail {
  ok: false;
  code: ResultErrorCode;
  message: string;
  /** With CAIRN_DIR_LEASED: the held directory, which the leader recalls from its holder. */
  leasedDirId?: number;
}
/** Errors are results: a failed operation changes nothing and answers with a code. */
export type MetaResult<V = MetaValue> = MetaOk<V> | MetaFail;

export function ok<V>(value: V): MetaOk<V> {
  return { ok: true, value };
}

export function fail(code: ResultErrorCode, message: string): MetaFail {
  return { ok: false, code, message };
}

export function isFail(x: unknown): x is MetaFail {
  return (x as { ok?: unknown }).ok === false;
}

// ---------------------------------------------------------------------------------------------

/** Every table of the state; MetaState owns one and guards its invariants. */
export class MetaTables {
  readonly options: MetaStateOptions;
  indexApplied = 0;
  /** The largest `nowMs` applied: a clock that never runs back, for client eviction. */
  clockMs = 0;
  nextInodeId = rootInodeId + 1;
  nextSessionNo = 1;
  /** Set once by initCluster; '' before. */
  clusterId = '';
  readonly inodes = new Map<number, Inode>();
  readonly sessions = new Map<string, Session>();
  /** Held directories by inode id (dir-leases.ts). */
  readonly dirLeases = new Map<number, DirLease>();
  /** Open sessions per inode. */
  readonly sessionsByInode = new Map<number, number>();
  /** Inodes with nlink 0 that sessions keep alive. */
  readonly orphans = new Set<number>();
  readonly pendingGc = new Map<number, GcEntry>();
  /** In least-recently-used order: a use moves a record to the end. */
  readonly clients = new Map<string, ClientRecord>();
  readonly workers = new Map<number, Worker>();
  readonly targets = new Map<number, Target>();
  readonly chains = new Map<number, Chain>();
  readonly chainTables = new Map<number, ChainTable>();
  readonly s3Users = new Map<string, S3User>();
  readonly dashboardUsers = new Map<string, DashboardUser>();
  /** Bumped by every change to workers, targets, chains or tables. */
  routingVersion = 0;
  files = 0;
  dirs = 0;
  symlinks = 0;
  logicalBytes = 0;
  dentries = 0;

  constructor(options: MetaStateOptions) {
    this.options = options;
  }
}

export function newInode(id: number, type: InodeType, mode: number, uid: number, gid: number, nowMs: number): Inode {
  return {
    id,
    type,
    mode,
    uid,
    gid,
    nlink: type === 'dir' ? 2 : 1,
    sizeBytes: 0,
    atimeMs: nowMs,
    mtimeMs: nowMs,
    ctimeMs: nowMs,
    parentId: 0,
    layout: null,
    chunks: type === 'file' ? [] : null,
    target: null,
    rdev: 0,
    children: type === 'dir' ? new Map() : null,
    sortedNames: type === 'dir' ? [] : null,
    xattrs: null,
  };
}

export function attrOf(inode: Inode): InodeAttr {
  const attr: InodeAttr = {
    inodeId: inode.id,
    type: inode.type,
    mode: inode.mode,
    uid: inode.uid,
    gid: inode.gid,
    nlink: inode.nlink,
    sizeBytes: inode.sizeBytes,
    atimeMs: inode.atimeMs,
    mtimeMs: inode.mtimeMs,
    ctimeMs: inode.ctimeMs,
  };
  if (inode.type === 'dir') attr.parentId = inode.parentId;
  if (inode.layout !== null) attr.layout = { ...inode.layout };
  if (inode.type === 'file') attr.chunks = inode.chunks === null ? null : [...inode.chunks];
  if (inode.target !== null) attr.target = inode.target;
  if (inode.rdev !== 0) attr.rdev = inode.rdev;
  return attr;
}

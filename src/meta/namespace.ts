// The masters' metadata state machine: every master applies the same committed commands in the
// same order and reaches the same state. Pure and deterministic: times come inside the commands.

import { createHash } from 'node:crypto';
import { assert } from '../errors.ts';
import { upperBound } from '../sorted.ts';
import { decodeCommand, pendingGcLimitMax, readdirLimitMax } from './commands.ts';
import type { Caller, MetaCommand, MetaCommandOp, MetaQuery } from './commands.ts';
import { FsErrorCode, MetaError, ResultErrorCode } from './errors.ts';
import { addChains, decommissionWorker, endChainMove, initCluster, moveChainMember, registerWorker, replaceChainMember, resizeTargets, routing, sortedChains, sortedChainTables, sortedTargets, sortedWorkers, targetReclaimed, updateChains } from './namespace-cluster.ts';
import { answerSeen, evictClients, remember } from './namespace-clients.ts';
import { readSnapshot, SnapshotReader, sortedNamesOf, writeSnapshot } from './namespace-snapshot.ts';
import {
  attrOf,
  clientIdleMsMaxDefault,
  clientsMaxDefault,
  fail,
  isFail,
  MetaTables,
  ok,
  sessionsMaxDefault,
} from './namespace-state.ts';
import type {
  DirLease,
  DashboardUser,
  ChainInfo,
  ChainTableInfo,
  DirEntry,
  GcEntry,
  Inode,
  InodeAttr,
  MetaResult,
  MetaStateOptions,
  MetaValues,
  ReaddirPage,
  RoutingInfo,
  Session,
  StatFs,
  TargetInfo,
  WorkerInfo,
} from './namespace-state.ts';
import * as tree from './namespace-tree.ts';
import { getxattr, listxattr, removexattr, setxattr } from './namespace-xattrs.ts';
import { publish } from './namespace-publish.ts';
import { s3Credential, s3UserAdd, s3UserRemove, s3Users } from './namespace-s3.ts';
import { dashboardUserAdd, dashboardUserRemove, dashboardUsers } from './namespace-dashboard.ts';
import { continueRestored, raiseInodeIds } from './restore-floor.ts';
import { Access, accessDenied } from './permissions.ts';
import { dirBatch, expireDirLeases, leaseDir, releaseDir } from './dir-leases.ts';

type Handler = (t: MetaTables, cmd: never) => MetaResult;

const handlers: Record<MetaCommandOp, Handler> = {
  noop: () => ok(null),
  initCluster,
  mkdir: tree.mkdir,
  create: tree.create,
  unlink: tree.unlink,
  leaseDir,
  releaseDir,
  expireDirLeases,
  dirBatch,
  rmdir: tree.rmdir,
  rename: tree.rename,
  symlink: tree.symlink,
  mknod: tree.mknod,
  link: tree.link,
  setattr: tree.setattr,
  openSession: tree.openSession,
  closeSession: tree.closeSession,
  publish,
  commitLength: tree.commitLength,
  expireSessions: tree.expireSessions,
  gcDone: tree.gcDone,
  targetReclaimed,
  registerWorker,
  addChains,
  updateChains,
  decommissionWorker,
  resizeTargets,
  replaceChainMember,
  moveChainMember,
  endChainMove,
  setxattr,
  removexattr,
  s3UserAdd,
  s3UserRemove,
  dashboardUserAdd,
  dashboardUserRemove,
};

export interface ReaddirOptions {
  /** Start after this name (the `next` of the previous page). */
  after?: string;
  /** Entries per page, at most readdirLimitMax (larger asks are capped). */
  limit: number;
  /** Each entry with its size and mtime (what a listing of objects needs), as READDIRPLUS. */
  plus?: boolean;
  /** With plus: each entry's extended attribute of this name, where it has one. */
  xattr?: string;
  /** Each entry with its attributes, as stat answers them less a file's list of written chunks (a mount's lookups in a directory it lists). */
  attrs?: boolean;
}

export class MetaState {
  /** Replaced only by restore. */
  #t: MetaTables;

  constructor(options: Partial<MetaStateOptions> = {}) {
    const resolved: MetaStateOptions = {
      clientIdleMsMax: options.clientIdleMsMax ?? clientIdleMsMaxDefault,
      clientsMax: options.clientsMax ?? clientsMaxDefault,
      sessionsMax: options.sessionsMax ?? sessionsMaxDefault,
    };
    assert(Number.isSafeInteger(resolved.clientIdleMsMax) && resolved.clientIdleMsMax >= 0, 'clientIdleMsMax must be an integer >= 0');
    assert(Number.isSafeInteger(resolved.clientsMax) && resolved.clientsMax >= 1, 'clientsMax must be an integer >= 1');
    assert(Number.isSafeInteger(resolved.sessionsMax) && resolved.sessionsMax >= 1, 'sessionsMax must be an integer >= 1');
    this.#t = new MetaTables(resolved);
    tree.createRoot(this.#t);
  }

  /** Rebuilds a state from the chunks of `snapshot()`; throws a MetaError (CAIRN_META_SNAPSHOT_CORRUPT) on damage. */
  static restore(chunks: Iterable<Uint8Array>): MetaState {
    const tables = readSnapshot(chunks);
    const state = new MetaState(tables.options);
    state.#t = tables;
    return state;
  }

  /** As restore(), a chunk at a time: add() each chunk, then finish() for the state. */
  static restorer(): { add(chunk: Uint8Array): void; finish(): MetaState } {
    const reader = new SnapshotReader();
    return {
      add: (chunk) => reader.add(chunk),
      finish: () => {
        const tables = reader.finish();
        const state = new MetaState(tables.options);
        state.#t = tables;
        return state;
      },
    };
  }

  get indexApplied(): number {
    return this.#t.indexApplied;
  }

  /** Continues a state restored from a backup at this cluster's log position (the backup's own means nothing here). */
  rebaseIndex(index: number): void {
    this.#t.indexApplied = index;
  }

  /** As rebaseIndex, with its counters at `floor` or above and every worker to register again (restore-floor.ts). */
  continueRestored(index: number, floor: number): void {
    continueRestored(this.#t, index, floor);
  }

  /** Applies, at `index`, a move of the inode counter past an inode a worker holds chunks of; true if it moved. */
  raiseInodeIds(index: number, heldInodeId: number): boolean {
    const t = this.#t;
    assert(Number.isSafeInteger(index) && index > t.indexApplied, `apply at index ${index} after ${t.indexApplied}`);
    t.indexApplied = index;
    return raiseInodeIds(t, heldInodeId);
  }

  /** The next inode id a create gets: every id below it was handed out (or skipped), none above. */
  get nextInodeId(): number {
    return this.#t.nextInodeId;
  }

  /** Whether chunks of inode `id` belong to anything: a live inode (orphans too), a file awaiting garbage collection, or neither. */
  inodeStatus(id: number): 'live' | 'pendingGc' | 'unknown' {
    if (this.#t.inodes.has(id)) return 'live';
    return this.#t.pendingGc.has(id) ? 'pendingGc' : 'unknown';
  }

  get options(): Readonly<MetaStateOptions> {
    return this.#t.options;
  }

  /**
   * Applies the committed command at `index` (indexes only grow; gaps are entries that were not
   * ours). A (clientId, seq) seen before is answered from the client table without applying.
   * The result is shared with that table: do not mutate it.
   */
  apply<C extends MetaCommand>(index: number, cmd: C): MetaResult<MetaValues[C['op']]> {
    const t = this.#t;
    assert(Number.isSafeInteger(index) && index > t.indexApplied, `apply at index ${index} after ${t.indexApplied}`);
    t.indexApplied = index;
    if (cmd.nowMs > t.clockMs) t.clockMs = cmd.nowMs;
    let result = answerSeen(t, cmd.clientId, cmd.seq);
    if (result === undefined) {
      result = handlers[cmd.op](t, cmd as never);
      // A refusal for a held directory changed nothing and is retried with the same seq: kept,
      // it would answer every retry after the directory was given back.
      if (result.ok || result.code !== ResultErrorCode.DirLeased) remember(t, cmd.clientId, cmd.seq, result);
    }
    evictClients(t);
    return result as MetaResult<MetaValues[C['op']]>;
  }

  /** Applies an encoded log entry; an entry that does not decode is answered EINVAL, still in order. */
  applyEntry(index: number, entry: Uint8Array): MetaResult {
    let cmd: MetaCommand;
    try {
      cmd = decodeCommand(entry);
    } catch (err) {
      if (!(err instanceof MetaError)) throw err;
      const t = this.#t;
      assert(Number.isSafeInteger(index) && index > t.indexApplied, `apply at index ${index} after ${t.indexApplied}`);
      t.indexApplied = index;
      return fail(FsErrorCode.EINVAL, err.message);
    }
    return this.apply(index, cmd);
  }

  // -------------------------------------------------------------------------------------------
  // Queries: read-only; every value returned is a copy (or frozen). Namespace queries check the
  // caller's permissions as the commands do.

  /** Needs search permission on the directories of the path only. */
  stat(path: string, caller: Caller, xattr?: string): MetaResult<InodeAttr> {
    const inode = tree.resolve(this.#t, path, caller);
    return isFail(inode) ? inode : ok(this.withXattr(attrOf(inode), inode, xattr, caller, path));
  }

  /** A file opened for reading: its attributes, if the caller may read it. */
  open(path: string, caller: Caller, xattr?: string): MetaResult<InodeAttr> {
    const inode = tree.openForReading(this.#t, path, caller);
    return isFail(inode) ? inode : ok(this.withXattr(attrOf(inode), inode, xattr, caller, path));
  }

  /** The attributes with one extended attribute's value, where there is one the caller may read (as getxattr). */
  private withXattr(attr: InodeAttr, inode: Inode, name: string | undefined, caller: Caller, path: string): InodeAttr {
    const value = name === undefined ? undefined : inode.xattrs?.get(name);
    if (value !== undefined && accessDenied(caller, inode, Access.Read, path) === undefined) attr.xattr = Uint8Array.from(value);
    return attr;
  }

  /** By inode id there is no path to search: no check, as for a file handle. */
  statInode(inodeId: number): MetaResult<InodeAttr> {
    const inode = this.#t.inodes.get(inodeId);
    return inode === undefined ? fail(FsErrorCode.ENOENT, `no inode ${inodeId}`) : ok(attrOf(inode));
  }

  /** Looking a name up needs search permission on the directory. */
  lookup(parentId: number, name: string, caller: Caller): MetaResult<InodeAttr> {
    const parent = this.#t.inodes.get(parentId);
    if (parent === undefined) return fail(FsErrorCode.ENOENT, `no inode ${parentId}`);
    if (parent.children === null) return fail(FsErrorCode.ENOTDIR, `inode ${parentId} is not a directory`);
    const denied = accessDenied(caller, parent, Access.Search, `inode ${parentId}`);
    if (denied !== undefined) return denied;
    const id = parent.children.get(name);
    if (id === undefined || tree.inodeOf(this.#t, id).type !== 'dir') {
      const held = tree.heldByOther(this.#t, parent, caller);
      if (held !== undefined) return held;
    }
    if (id === undefined) return fail(FsErrorCode.ENOENT, `no '${name}' in directory ${parentId}`);
    return ok(attrOf(tree.inodeOf(this.#t, id)));
  }

  /** One page of a directory, sorted by name (UTF-16 code units), starting after `after`; needs read permission on it. */
  readdir(path: string, options: ReaddirOptions, caller: Caller): MetaResult<ReaddirPage> {
    if (!Number.isSafeInteger(options.limit) || options.limit < 1) return fail(FsErrorCode.EINVAL, `readdir limit ${options.limit} is not a positive integer`);
    const dir = tree.resolve(this.#t, path, caller);
    if (isFail(dir)) return dir;
    if (dir.children === null) return fail(FsErrorCode.ENOTDIR, `'${path}' is not a directory`);
    const denied = accessDenied(caller, dir, Access.Read, path);
    if (denied !== undefined) return denied;
    const held = tree.heldByOther(this.#t, dir, caller);
    if (held !== undefined) return held;
    const names = sortedNamesOf(dir);
    const start = options.after === undefined ? 0 : upperBound(names, options.after);
    const end = Math.min(names.length, start + Math.min(options.limit, readdirLimitMax));
    const entries: DirEntry[] = [];
    for (let i = start; i < end; i++) {
      const inode = tree.inodeOf(this.#t, dir.children.get(names[i]) as number);
      const entry: DirEntry = { name: names[i], inodeId: inode.id, type: inode.type };
      if (options.plus === true) {
        entry.sizeBytes = inode.type === 'dir' ? 0 : inode.sizeBytes;
        entry.mtimeMs = inode.mtimeMs;
        entry.uid = inode.uid;
        // As getxattr: only from an entry the caller may read.
        const readable = options.xattr !== undefined && inode.xattrs !== null && accessDenied(caller, inode, Access.Read, path) === undefined;
        const value = readable ? inode.xattrs!.get(options.xattr!) : undefined;
        if (value !== undefined) entry.xattr = Uint8Array.from(value);
        if (inode.type === 'dir') entry.empty = inode.children!.size === 0;
      }
      if (options.attrs === true) {
        // Without the list of written chunks, which a sparse file makes long: a page stays small.
        const attr = attrOf(inode);
        delete attr.chunks;
        entry.attr = attr;
      }
      entries.push(entry);
    }
    return ok(end < names.length ? { entries, next: names[end - 1] } : { entries });
  }

  /** Needs search permission on the way only, as readlink(2). */
  readlink(path: string, caller: Caller): MetaResult<string> {
    const inode = tree.resolve(this.#t, path, caller);
    if (isFail(inode)) return inode;
    if (inode.target === null) return fail(FsErrorCode.EINVAL, `'${path}' is not a symlink`);
    return ok(inode.target);
  }

  statfs(): StatFs {
    const t = this.#t;
    return {
      inodes: t.inodes.size,
      files: t.files,
      dirs: t.dirs,
      symlinks: t.symlinks,
      logicalBytes: t.logicalBytes,
      sessions: t.sessions.size,
      orphans: t.orphans.size,
      pendingGc: t.pendingGc.size,
      clients: t.clients.size,
      indexApplied: t.indexApplied,
    };
  }

  session(sessionId: string): MetaResult<Session> {
    const s = this.#t.sessions.get(sessionId);
    return s === undefined ? fail(FsErrorCode.ENOENT, `no open session '${sessionId}'`) : ok({ ...s });
  }

  /** Every open write session, in the order they opened (a view: not to be kept across changes). */
  openSessions(): IterableIterator<Readonly<Session>> {
    return this.#t.sessions.values();
  }

  /**
   * Open write sessions, oldest first, that match: of a client whose id starts with `client`, opened
   * at or before `openedBeforeMs`; at most `limit` of them, and how many match in all.
   */
  sessions(q: { limit: number; client?: string; openedBeforeMs?: number }): { sessions: Session[]; matched: number; open: number } {
    const out: Session[] = [];
    let matched = 0;
    for (const s of this.#t.sessions.values()) {
      if (q.client !== undefined && !s.clientId.startsWith(q.client)) continue;
      if (q.openedBeforeMs !== undefined && s.openedMs > q.openedBeforeMs) continue;
      matched++;
      if (out.length < q.limit) out.push({ ...s });
    }
    out.sort((a, b) => a.openedMs - b.openedMs);
    return { sessions: out, matched, open: this.#t.sessions.size };
  }

  /** The oldest deleted files whose chunks await removal, at most `limit` (capped at pendingGcLimitMax). */
  pendingGc(limit: number): GcEntry[] {
    const out: GcEntry[] = [];
    const count = Math.min(Math.max(0, limit), pendingGcLimitMax);
    for (const g of this.#t.pendingGc.values()) {
      if (out.length >= count) break;
      out.push({ ...g, layout: { ...g.layout }, chunks: g.chunks === null ? null : [...g.chunks] });
    }
    return out;
  }

  workers(): WorkerInfo[] {
    return sortedWorkers(this.#t);
  }

  targets(): TargetInfo[] {
    return sortedTargets(this.#t);
  }

  chains(): ChainInfo[] {
    return sortedChains(this.#t);
  }

  chainTables(): ChainTableInfo[] {
    return sortedChainTables(this.#t);
  }

  /** Workers' addresses, targets, chains and tables in one consistent picture, with its version. */
  routing(): RoutingInfo {
    return routing(this.#t);
  }

  get routingVersion(): number {
    return this.#t.routingVersion;
  }

  /** The held directories by inode id (dir-leases.ts), live: not to be changed. */
  dirLeases(): ReadonlyMap<number, DirLease> {
    return this.#t.dirLeases;
  }

  /** Answers a validated query (see validateQuery); the RPC layer's single entry point. */
  query(q: MetaQuery): MetaResult<unknown> {
    switch (q.op) {
      case 'stat':
        return this.stat(q.path, q.caller, q.xattr);
      case 'open':
        return this.open(q.path, q.caller, q.xattr);
      case 'statInode':
        return this.statInode(q.inodeId);
      case 'lookup':
        return this.lookup(q.parentId, q.name, q.caller);
      case 'readdir':
        return this.readdir(q.path, { limit: q.limit, ...(q.after === undefined ? {} : { after: q.after }), ...(q.plus === true ? { plus: true } : {}), ...(q.xattr === undefined ? {} : { xattr: q.xattr }), ...(q.attrs === true ? { attrs: true } : {}) }, q.caller);
      case 'readlink':
        return this.readlink(q.path, q.caller);
      case 'statfs':
        return ok(this.statfs());
      case 'workers':
        return ok(this.workers());
      case 'targets':
        return ok(this.targets());
      case 'chains':
        return ok(this.chains());
      case 'chainTables':
        return ok(this.chainTables());
      case 'routing':
        return ok(this.routing());
      case 'session':
        return this.session(q.sessionId);
      case 'sessions':
        return ok(this.sessions(q));
      case 'pendingGc':
        return ok(this.pendingGc(q.limit));
      case 'getxattr':
        return getxattr(this.#t, q.path, q.name, q.caller);
      case 'listxattr':
        return listxattr(this.#t, q.path, q.caller);
      case 's3Users':
        return ok(s3Users(this.#t));
      case 's3Credential':
        return s3Credential(this.#t, q.accessKeyId);
      case 'dashboardUsers':
        return ok(dashboardUsers(this.#t));
    }
  }

  // -------------------------------------------------------------------------------------------

  /** The state as msgpack chunks of at most snapshotChunkBytesMax; consume before the next apply. */
  snapshot(): Iterable<Uint8Array> {
    return writeSnapshot(this.#t);
  }

  /** A dashboard login with its password hash, for the master checking a login (never sent to clients). */
  dashboardUser(name: string): DashboardUser | undefined {
    const u = this.#t.dashboardUsers.get(name);
    return u === undefined ? undefined : { ...u };
  }

  /** SHA-256 (hex) of the canonical snapshot: equal on masters that applied the same entries. */
  stateHash(): string {
    const hash = createHash('sha256');
    for (const chunk of writeSnapshot(this.#t)) hash.update(chunk);
    return hash.digest('hex');
  }
}

// The namespace operations apply runs: path resolution, and each mutation of the inode tree with
// POSIX semantics, permission checks on the caller included (permissions.ts), in Linux's order. A
// failed operation returns before changing anything.

import { assert } from '../errors.ts';
import { chunkSizeBytesDefault, generatedSessionPrefix, stripeWidthDefault } from './commands.ts';
import type {
  Caller,
  CloseSessionCommand,
  CommitLengthCommand,
  CreateCommand,
  ExpireSessionsCommand,
  GcDoneCommand,
  Layout,
  LinkCommand,
  MkdirCommand,
  NamespaceStamp,
  OpenSessionCommand,
  RenameCommand,
  RmdirCommand,
  SetattrCommand,
  SymlinkCommand,
  MknodCommand,
  UnlinkCommand,
} from './commands.ts';
import { FsErrorCode, ResultErrorCode } from './errors.ts';
import { attrOf, defaultChainTableId, fail, isFail, newInode, ok, rootInodeId } from './namespace-state.ts';
import type { Inode, InodeAttr, InodeType, MetaFail, MetaResult, MetaTables, MetaValues, RenameValue, Session, UnlinkValue } from './namespace-state.ts';
import { utf8Bytes } from '../fields.ts';
import { inRanges, mergeRanges, trimRanges } from './chunk-ranges.ts';
import { pathNames } from './paths.ts';
import { Access, accessDenied, chmodMode, chownDenied, isOwnerOrRoot, newOwnerDenied, ownerOnly, stickyDenied } from './permissions.ts';

type Result<K extends keyof MetaValues> = MetaResult<MetaValues[K]>;

export function inodeOf(t: MetaTables, id: number): Inode {
  const inode = t.inodes.get(id);
  assert(inode !== undefined, `inode ${id} is referenced but missing`);
  return inode;
}

/** The path of the first `count` names, for messages. */
function prefix(names: string[], count: number): string {
  return `/${names.slice(0, count).join('/')}`;
}

/**
 * CAIRN_DIR_LEASED if a holder other than the caller's holds `dir` (dir-leases.ts), else
 * undefined: the caller may not use its entries now.
 */
export function heldByOther(t: MetaTables, dir: Inode, caller: Caller): MetaFail | undefined {
  if (t.dirLeases.size === 0) return undefined;
  const lease = t.dirLeases.get(dir.id);
  if (lease === undefined || lease.holder === caller.holder) return undefined;
  return { ...fail(ResultErrorCode.DirLeased, `directory ${dir.id} is held by another mount, which is asked to give it back: retry`), leasedDirId: dir.id };
}

/**
 * heldByOther, for looking `childId` up in `dir`: a directory entry may be looked up (a holder
 * makes and removes only other entries on its own), any other name, or its absence, not.
 */
function lookupHeldByOther(t: MetaTables, dir: Inode, childId: number | undefined, caller: Caller): MetaFail | undefined {
  if (t.dirLeases.size === 0 || (childId !== undefined && inodeOf(t, childId).type === 'dir')) return undefined;
  return heldByOther(t, dir, caller);
}

/** Follows the first `count` names from the root; looking a name up needs search permission on its directory. */
function walk(t: MetaTables, names: string[], count: number, caller: Caller): Inode | MetaFail {
  let dir = inodeOf(t, rootInodeId);
  for (let i = 0; i < count; i++) {
    if (dir.children === null) return fail(FsErrorCode.ENOTDIR, `'${prefix(names, i)}' is not a directory`);
    const denied = accessDenied(caller, dir, Access.Search, prefix(names, i));
    if (denied !== undefined) return denied;
    const childId = dir.children.get(names[i]);
    const held = lookupHeldByOther(t, dir, childId, caller);
    if (held !== undefined) return held;
    if (childId === undefined) return fail(FsErrorCode.ENOENT, `'${prefix(names, i + 1)}' does not exist`);
    dir = inodeOf(t, childId);
  }
  return dir;
}

/** The inode at `path`, if the caller may search every directory on the way; a symlink along the way is not followed (ENOTDIR). */
export function resolve(t: MetaTables, path: string, caller: Caller): Inode | MetaFail {
  const names = pathNames(path);
  return walk(t, names, names.length, caller);
}

export interface ParentAndName {
  parent: Inode;
  name: string;
}

/**
 * The directory that holds (or would hold) the last name of a path other than the root, if the
 * caller may search it and every directory above it.
 */
function resolveParent(t: MetaTables, path: string, caller: Caller): ParentAndName | MetaFail {
  const names = pathNames(path);
  assert(names.length > 0, 'resolveParent of the root');
  const parent = walk(t, names, names.length - 1, caller);
  if (isFail(parent)) return parent;
  const parentPath = prefix(names, names.length - 1);
  if (parent.children === null) return fail(FsErrorCode.ENOTDIR, `'${parentPath}' is not a directory`);
  const denied = accessDenied(caller, parent, Access.Search, parentPath);
  if (denied !== undefined) return denied;
  // Every caller of this looks up or changes the last name in the parent.
  return heldByOther(t, parent, caller) ?? { parent, name: names[names.length - 1] };
}

/** The path of the directory holding `path`'s last name, for messages. */
function parentPathOf(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash === 0 ? '/' : path.slice(0, slash);
}

/** EACCES unless the caller may add or remove entries of the directory holding `path`. */
function changeDenied(caller: Caller, parent: Inode, path: string): MetaFail | undefined {
  return accessDenied(caller, parent, Access.Write | Access.Search, parentPathOf(path));
}

/** Where a new entry at `path` goes: its directory and name, or EEXIST when the name is taken, or EACCES. */
function resolveFreeName(t: MetaTables, path: string, caller: Caller): ParentAndName | MetaFail {
  if (path === '/') return fail(FsErrorCode.EEXIST, `'/' exists`);
  const at = resolveParent(t, path, caller);
  if (isFail(at)) return at;
  if (at.parent.children?.has(at.name)) return fail(FsErrorCode.EEXIST, `'${path}' exists`);
  return changeDenied(caller, at.parent, path) ?? at;
}

/** EACCES or EPERM unless the caller may remove `entry` from `parent` (write and search, and the sticky bit). */
function removeDenied(caller: Caller, parent: Inode, entry: Inode, path: string): MetaFail | undefined {
  return changeDenied(caller, parent, path) ?? stickyDenied(caller, parent, entry, path);
}

function addEntry(t: MetaTables, parent: Inode, name: string, child: Inode, nowMs: number): void {
  assert(parent.children !== null && !parent.children.has(name), `adding '${name}' to ${parent.id}`);
  parent.children.set(name, child.id);
  const sorted = parent.sortedNames;
  // Names often arrive in order (f1, f2, ...): keep the readdir order then, rebuild it otherwise.
  if (sorted !== null) {
    if (sorted.length === 0 || sorted[sorted.length - 1] < name) sorted.push(name);
    else parent.sortedNames = null;
  }
  parent.mtimeMs = nowMs;
  parent.ctimeMs = nowMs;
  t.dentries++;
  if (child.type === 'dir') {
    parent.nlink++;
    child.parentId = parent.id;
  }
}

function removeEntry(t: MetaTables, parent: Inode, name: string, child: Inode, nowMs: number): void {
  assert(parent.children !== null && parent.children.get(name) === child.id, `removing '${name}' from ${parent.id}`);
  parent.children.delete(name);
  const sorted = parent.sortedNames;
  if (sorted !== null) {
    if (sorted[sorted.length - 1] === name) sorted.pop();
    else parent.sortedNames = null;
  }
  parent.mtimeMs = nowMs;
  parent.ctimeMs = nowMs;
  t.dentries--;
  if (child.type === 'dir') parent.nlink--;
}

function insertInode(t: MetaTables, inode: Inode): void {
  assert(!t.inodes.has(inode.id), `inode ${inode.id} already exists`);
  t.inodes.set(inode.id, inode);
  if (inode.type === 'file') t.files++;
  else if (inode.type === 'dir') t.dirs++;
  else if (inode.type === 'symlink') t.symlinks++;
}

function deleteInode(t: MetaTables, inode: Inode): void {
  assert(inode.id !== rootInodeId, 'deleting the root');
  assert(t.inodes.delete(inode.id), `deleting missing inode ${inode.id}`);
  if (inode.type === 'file') {
    t.files--;
    t.logicalBytes -= inode.sizeBytes;
  } else if (inode.type === 'dir') {
    t.dirs--;
    t.dirLeases.delete(inode.id); // its holder's own rmdir
  } else if (inode.type === 'symlink') t.symlinks--;
}

function setSize(t: MetaTables, inode: Inode, sizeBytes: number): void {
  t.logicalBytes += sizeBytes - inode.sizeBytes;
  // A cut file forgets its chunks past the new end (their bytes stay on the workers until a
  // collection of truncated chunks exists: docs/data-path.md).
  if (sizeBytes < inode.sizeBytes && inode.chunks !== null && inode.layout !== null) {
    inode.chunks = trimRanges(inode.chunks, Math.ceil(sizeBytes / inode.layout.chunkSizeBytes));
  }
  inode.sizeBytes = sizeBytes;
}

/**
 * Whether the file may hold written bytes at or past `sizeBytes` on the workers: a recorded chunk
 * past the cut, or the chunk the cut falls in. An untracked file is assumed to.
 */
function holdsDataFrom(inode: Inode, sizeBytes: number): boolean {
  if (inode.layout === null || sizeBytes >= inode.sizeBytes) return false;
  if (inode.chunks === null) return true;
  const cs = inode.layout.chunkSizeBytes;
  const firstWhole = Math.ceil(sizeBytes / cs);
  const last = inode.chunks[inode.chunks.length - 1];
  if (last !== undefined && last > firstWhole) return true;
  return sizeBytes % cs !== 0 && inRanges(inode.chunks, Math.floor(sizeBytes / cs));
}

function untrimmed(path: string, sizeBytes: number): MetaFail {
  return fail(FsErrorCode.EINVAL, `'${path}' holds data past byte ${sizeBytes}: truncate it through the client library (cairn fs truncate), which removes those chunks from the workers first`);
}

/**
 * Adds what a writer reports it wrote; too scattered a file stops being tracked. A writer that
 * commits a length without saying which chunks it wrote (an older or simpler client) makes the
 * file untracked too: its data must never read as holes.
 */
function recordChunks(inode: Inode, written: number[] | null | undefined, lengthBytes: number | undefined): void {
  if (inode.chunks === null) return;
  if (written === undefined) {
    if (lengthBytes !== undefined) inode.chunks = null;
    return;
  }
  inode.chunks = written === null ? null : mergeRanges(inode.chunks, written);
}

/** The file's chunks are free: forget the inode and put it on the pending GC list. */
function releaseFile(t: MetaTables, inode: Inode, nowMs: number): void {
  assert(inode.layout !== null, `file ${inode.id} has no layout`);
  deleteInode(t, inode);
  t.pendingGc.set(inode.id, { inodeId: inode.id, layout: inode.layout, chunks: inode.chunks, sizeBytes: inode.sizeBytes, deletedMs: nowMs });
}

/** Drops one link of a file or symlink whose dentry is already gone. */
function dropLink(t: MetaTables, inode: Inode, nowMs: number): UnlinkValue {
  assert(inode.type !== 'dir' && inode.nlink > 0, `dropping a link of ${inode.type} ${inode.id}`);
  inode.nlink--;
  inode.ctimeMs = nowMs;
  if (inode.nlink > 0) return { inodeId: inode.id, nlink: inode.nlink, pendingGc: false };
  if (inode.type !== 'file') {
    // No data and no sessions: a symlink, FIFO, socket or device node goes with its last name.
    deleteInode(t, inode);
    return { inodeId: inode.id, nlink: 0, pendingGc: false };
  }
  if ((t.sessionsByInode.get(inode.id) ?? 0) > 0) {
    t.orphans.add(inode.id);
    return { inodeId: inode.id, nlink: 0, pendingGc: false };
  }
  releaseFile(t, inode, nowMs);
  return { inodeId: inode.id, nlink: 0, pendingGc: true };
}

function newId(t: MetaTables): number {
  const id = t.nextInodeId++;
  assert(Number.isSafeInteger(t.nextInodeId), 'inode ids exhausted');
  return id;
}

/** A 32-bit mix of the inode id: the default shuffle seed, spread without randomness. */
export function seedFromId(id: number): number {
  let x = (id ^ Math.floor(id / 0x1_0000_0000)) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d);
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b);
  return (x ^ (x >>> 16)) >>> 0;
}

function layoutFor(t: MetaTables, id: number, given: Layout | undefined): Layout {
  if (given !== undefined) {
    // Rebuilt field by field: the same key order everywhere keeps results and hashes canonical.
    return {
      chunkSizeBytes: given.chunkSizeBytes,
      stripeWidth: given.stripeWidth,
      chainTableId: given.chainTableId,
      chainTableVersion: given.chainTableVersion,
      shuffleSeed: given.shuffleSeed,
    };
  }
  return {
    chunkSizeBytes: chunkSizeBytesDefault,
    stripeWidth: stripeWidthDefault,
    chainTableId: defaultChainTableId,
    chainTableVersion: t.chainTables.get(defaultChainTableId)?.version ?? 0,
    shuffleSeed: seedFromId(id),
  };
}

// ---------------------------------------------------------------------------------------------

/** Owner write and search: what mkdir -p adds to the directories it makes on the way, as coreutils does. */
const ownerWriteSearch = 0o300;

export function mkdir(t: MetaTables, cmd: MkdirCommand): Result<'mkdir'> {
  const owned = newOwnerDenied(cmd.caller, cmd.uid, cmd.gid, cmd.path);
  if (owned !== undefined) return owned;
  const names = pathNames(cmd.path);
  let dir = inodeOf(t, rootInodeId);
  if (names.length === 0) return cmd.parents ? ok(attrOf(dir)) : fail(FsErrorCode.EEXIST, `'/' exists`);
  for (let i = 0; i < names.length; i++) {
    const last = i === names.length - 1;
    assert(dir.children !== null, 'walking through a non-directory');
    const searchDenied = accessDenied(cmd.caller, dir, Access.Search, prefix(names, i));
    if (searchDenied !== undefined) return searchDenied;
    const childId = dir.children.get(names[i]);
    const held = last ? heldByOther(t, dir, cmd.caller) : lookupHeldByOther(t, dir, childId, cmd.caller);
    if (held !== undefined) return held;
    if (childId !== undefined) {
      const child = inodeOf(t, childId);
      if (last) return cmd.parents && child.type === 'dir' ? ok(attrOf(child)) : fail(FsErrorCode.EEXIST, `'${cmd.path}' exists`);
      if (child.type !== 'dir') return fail(FsErrorCode.ENOTDIR, `'${prefix(names, i + 1)}' is not a directory`);
      dir = child;
      continue;
    }
    if (!last && !cmd.parents) return fail(FsErrorCode.ENOENT, `'${prefix(names, i + 1)}' does not exist`);
    // Once one directory is made nothing below can fail: the caller owns it, with write and search.
    const denied = accessDenied(cmd.caller, dir, Access.Write | Access.Search, prefix(names, i));
    if (denied !== undefined) return denied;
    const created = newInode(newId(t), 'dir', last ? cmd.mode : cmd.mode | ownerWriteSearch, cmd.uid, cmd.gid, cmd.nowMs);
    insertInode(t, created);
    addEntry(t, dir, names[i], created, cmd.nowMs);
    dir = created;
  }
  return ok(attrOf(dir));
}

export function create(t: MetaTables, cmd: CreateCommand): Result<'create'> {
  if (cmd.path === '/') return fail(FsErrorCode.EISDIR, `'/' is a directory`);
  const owned = newOwnerDenied(cmd.caller, cmd.uid, cmd.gid, cmd.path);
  if (owned !== undefined) return owned;
  const at = resolveParent(t, cmd.path, cmd.caller);
  return isFail(at) ? at : createAt(t, cmd, at);
}

/**
 * create, once `at` is resolved (the owner already checked). `inodeId`: the id a new file takes (a
 * held directory's batch: dir-leases.ts), else the next one.
 */
export function createAt(t: MetaTables, cmd: CreateCommand, at: ParentAndName, inodeId?: number): Result<'create'> {
  const existingId = at.parent.children?.get(at.name);
  if (existingId !== undefined) {
    const existing = inodeOf(t, existingId);
    if (existing.type === 'dir') return fail(FsErrorCode.EISDIR, `'${cmd.path}' is a directory`);
    if (cmd.exclusive || existing.type !== 'file') return fail(FsErrorCode.EEXIST, `'${cmd.path}' exists`);
    if (cmd.openSession !== true) return ok({ inode: attrOf(existing), created: false, parent: attrOf(at.parent) });
    const denied = accessDenied(cmd.caller, existing, Access.Write, cmd.path);
    if (denied !== undefined) return denied;
    const session = startSession(t, existing, cmd);
    return isFail(session) ? session : ok({ inode: attrOf(existing), created: false, sessionId: session, parent: attrOf(at.parent) });
  }
  const denied = changeDenied(cmd.caller, at.parent, cmd.path);
  if (denied !== undefined) return denied;
  // Refused before anything changes: a create that cannot open its session makes no file.
  if (cmd.openSession === true) {
    const full = sessionsFull(t);
    if (full !== undefined) return full;
  }
  const inode = newInode(inodeId ?? newId(t), 'file', cmd.mode, cmd.uid, cmd.gid, cmd.nowMs);
  inode.layout = layoutFor(t, inode.id, cmd.layout);
  insertInode(t, inode);
  addEntry(t, at.parent, at.name, inode, cmd.nowMs);
  if (cmd.openSession !== true) return ok({ inode: attrOf(inode), created: true, parent: attrOf(at.parent) });
  const session = startSession(t, inode, cmd);
  assert(!isFail(session), 'a session refused after its check');
  if (cmd.ephemeral === true) t.sessions.get(session)!.ephemeral = { parentId: at.parent.id, name: at.name };
  return ok({ inode: attrOf(inode), created: true, sessionId: session, parent: attrOf(at.parent) });
}

export function unlink(t: MetaTables, cmd: UnlinkCommand): Result<'unlink'> {
  if (cmd.path === '/') return fail(FsErrorCode.EISDIR, `'/' is a directory`);
  const at = resolveParent(t, cmd.path, cmd.caller);
  return isFail(at) ? at : unlinkAt(t, cmd, at);
}

/** unlink, once `at` is resolved. */
export function unlinkAt(t: MetaTables, cmd: UnlinkCommand, at: ParentAndName): Result<'unlink'> {
  const id = at.parent.children?.get(at.name);
  if (id === undefined) return fail(FsErrorCode.ENOENT, `'${cmd.path}' does not exist`);
  const inode = inodeOf(t, id);
  const denied = removeDenied(cmd.caller, at.parent, inode, cmd.path);
  if (denied !== undefined) return denied;
  if (inode.type === 'dir') return fail(FsErrorCode.EISDIR, `'${cmd.path}' is a directory (use rmdir)`);
  removeEntry(t, at.parent, at.name, inode, cmd.nowMs);
  return ok({ ...dropLink(t, inode, cmd.nowMs), parent: attrOf(at.parent) });
}

export function rmdir(t: MetaTables, cmd: RmdirCommand): Result<'rmdir'> {
  if (cmd.path === '/') return fail(FsErrorCode.EPERM, `the root directory cannot be removed`);
  const at = resolveParent(t, cmd.path, cmd.caller);
  if (isFail(at)) return at;
  const id = at.parent.children?.get(at.name);
  if (id === undefined) return fail(FsErrorCode.ENOENT, `'${cmd.path}' does not exist`);
  const inode = inodeOf(t, id);
  const denied = removeDenied(cmd.caller, at.parent, inode, cmd.path);
  if (denied !== undefined) return denied;
  if (inode.children === null) return fail(FsErrorCode.ENOTDIR, `'${cmd.path}' is not a directory`);
  // Its holder may have made entries in it that the masters do not have yet.
  const held = heldByOther(t, inode, cmd.caller);
  if (held !== undefined) return held;
  if (inode.children.size > 0) return fail(FsErrorCode.ENOTEMPTY, `'${cmd.path}' is not empty`);
  removeEntry(t, at.parent, at.name, inode, cmd.nowMs);
  deleteInode(t, inode);
  return ok({ inodeId: id });
}

/** Whether `dir` is `ancestor` or lies below it, by parent pointers. */
function isWithin(t: MetaTables, dir: Inode, ancestor: Inode): boolean {
  for (let d = dir; ; d = inodeOf(t, d.parentId)) {
    if (d.id === ancestor.id) return true;
    if (d.id === rootInodeId) return false;
  }
}

/** heldByOther for the first directory below `dir` another holder holds: moving `dir` renames it under its holder. */
function heldBelowByOther(t: MetaTables, dir: Inode, caller: Caller): MetaFail | undefined {
  for (const lease of t.dirLeases.values()) {
    if (lease.holder === caller.holder) continue;
    const held = t.inodes.get(lease.dirInodeId);
    if (held !== undefined && isWithin(t, held, dir)) return heldByOther(t, held, caller);
  }
  return undefined;
}

/** Why `victim` may not be replaced by `source`, or undefined if it may. */
function replaceProblem(source: Inode, victim: Inode, to: string): MetaFail | undefined {
  if (source.type === 'dir' && victim.type !== 'dir') return fail(FsErrorCode.ENOTDIR, `'${to}' is not a directory`);
  if (source.type !== 'dir' && victim.type === 'dir') return fail(FsErrorCode.EISDIR, `'${to}' is a directory`);
  if (victim.children !== null && victim.children.size > 0) return fail(FsErrorCode.ENOTEMPTY, `'${to}' is not empty`);
  return undefined;
}

/**
 * Why the caller may not move `source` from `src` to `dst`: removing it from its directory,
 * adding it to the other (and removing what it replaces), and, for a directory that changes
 * parent, write permission on it (its '..' changes), as Linux asks.
 */
function renameDenied(t: MetaTables, cmd: RenameCommand, src: ParentAndName, source: Inode, dst: ParentAndName, victimId: number | undefined): MetaFail | undefined {
  const { caller } = cmd;
  const denied = removeDenied(caller, src.parent, source, cmd.from);
  if (denied !== undefined) return denied;
  const victim = victimId === undefined ? undefined : inodeOf(t, victimId);
  const dstDenied = victim === undefined ? changeDenied(caller, dst.parent, cmd.to) : removeDenied(caller, dst.parent, victim, cmd.to);
  if (dstDenied !== undefined) return dstDenied;
  if (source.type === 'dir' && src.parent !== dst.parent) return accessDenied(caller, source, Access.Write, cmd.from);
  return undefined;
}

export function rename(t: MetaTables, cmd: RenameCommand): Result<'rename'> {
  const plan = planRename(t, cmd);
  return isFail(plan) ? plan : ok(applyRename(t, plan, cmd.nowMs));
}

/** A rename found possible and allowed, not yet made. */
export interface RenamePlan {
  src: ParentAndName;
  dst: ParentAndName;
  source: Inode;
  victimId: number | undefined;
}

/** Every check of a rename, changing nothing: its plan, or why it cannot be made. */
export function planRename(t: MetaTables, cmd: RenameCommand): RenamePlan | MetaFail {
  if (cmd.from === '/' || cmd.to === '/') return fail(FsErrorCode.EINVAL, `the root directory cannot be renamed or replaced`);
  const src = resolveParent(t, cmd.from, cmd.caller);
  if (isFail(src)) return src;
  const sourceId = src.parent.children?.get(src.name);
  if (sourceId === undefined) return fail(FsErrorCode.ENOENT, `'${cmd.from}' does not exist`);
  const dst = resolveParent(t, cmd.to, cmd.caller);
  if (isFail(dst)) return dst;
  const source = inodeOf(t, sourceId);
  const victimId = dst.parent.children?.get(dst.name);
  if (cmd.replacing !== undefined && (victimId ?? 0) !== cmd.replacing) {
    if (cmd.replacing === 0) return fail(FsErrorCode.EEXIST, `'${cmd.to}' exists, and the rename replaces nothing`);
    return fail(FsErrorCode.EAGAIN, `'${cmd.to}' is ${victimId === undefined ? 'gone' : `inode ${victimId}`} now, not inode ${cmd.replacing}, which the rename was to replace`);
  }
  // POSIX: renaming a file onto itself, or onto another link of itself, does nothing (Linux
  // answers so before it checks permissions).
  if (victimId === sourceId) return { src, dst, source, victimId };
  // A held directory moved or replaced: its holder names it by path, and may hold entries in it.
  const held =
    heldByOther(t, source, cmd.caller) ??
    (victimId === undefined ? undefined : heldByOther(t, inodeOf(t, victimId), cmd.caller)) ??
    (source.type === 'dir' ? heldBelowByOther(t, source, cmd.caller) : undefined);
  if (held !== undefined) return held;
  const denied = renameDenied(t, cmd, src, source, dst, victimId);
  if (denied !== undefined) return denied;
  if (source.type === 'dir' && isWithin(t, dst.parent, source)) {
    return fail(FsErrorCode.EINVAL, `cannot move '${cmd.from}' into its own subtree ('${cmd.to}')`);
  }
  if (victimId !== undefined) {
    const problem = replaceProblem(source, inodeOf(t, victimId), cmd.to);
    if (problem !== undefined) return problem;
  }
  return { src, dst, source, victimId };
}

export function applyRename(t: MetaTables, plan: RenamePlan, nowMs: number): RenameValue {
  const { src, dst, source, victimId } = plan;
  if (victimId === source.id) return { inodeId: source.id, replaced: null };
  let replaced: UnlinkValue | null = null;
  if (victimId !== undefined) {
    const victim = inodeOf(t, victimId);
    removeEntry(t, dst.parent, dst.name, victim, nowMs);
    if (victim.type === 'dir') {
      deleteInode(t, victim);
      replaced = { inodeId: victimId, nlink: 0, pendingGc: false };
    } else {
      replaced = dropLink(t, victim, nowMs);
    }
  }
  removeEntry(t, src.parent, src.name, source, nowMs);
  addEntry(t, dst.parent, dst.name, source, nowMs);
  source.ctimeMs = nowMs;
  return { inodeId: source.id, replaced };
}

export function symlink(t: MetaTables, cmd: SymlinkCommand): Result<'symlink'> {
  return makeNode(t, cmd, 'symlink', 0o777, (inode) => {
    inode.target = cmd.target;
    inode.sizeBytes = utf8Bytes(cmd.target);
  });
}

export function mknod(t: MetaTables, cmd: MknodCommand): Result<'mknod'> {
  return makeNode(t, cmd, cmd.type, cmd.mode, (inode) => {
    inode.rdev = cmd.rdev;
  });
}

/** A new inode without data (a symlink or a special file) at a free name, owned as the command says. */
function makeNode(t: MetaTables, cmd: SymlinkCommand | MknodCommand, type: InodeType, mode: number, fill: (inode: Inode) => void): MetaResult<InodeAttr> {
  const owned = newOwnerDenied(cmd.caller, cmd.uid, cmd.gid, cmd.path);
  if (owned !== undefined) return owned;
  const at = resolveFreeName(t, cmd.path, cmd.caller);
  if (isFail(at)) return at;
  const inode = newInode(newId(t), type, mode, cmd.uid, cmd.gid, cmd.nowMs);
  fill(inode);
  insertInode(t, inode);
  addEntry(t, at.parent, at.name, inode, cmd.nowMs);
  return ok(attrOf(inode));
}

export function link(t: MetaTables, cmd: LinkCommand): Result<'link'> {
  const source = resolve(t, cmd.existing, cmd.caller);
  if (isFail(source)) return source;
  if (source.type === 'dir') return fail(FsErrorCode.EPERM, `'${cmd.existing}' is a directory: no hard links to directories`);
  const at = resolveFreeName(t, cmd.path, cmd.caller);
  if (isFail(at)) return at;
  addEntry(t, at.parent, at.name, source, cmd.nowMs);
  source.nlink++;
  source.ctimeMs = cmd.nowMs;
  return ok(attrOf(source));
}

/** Why the caller may not make this change (checks in Linux's order), or why the change is not possible. */
export function setattrDenied(cmd: SetattrCommand, inode: Inode): MetaFail | undefined {
  const { caller, path } = cmd;
  if (cmd.sizeBytes !== undefined) {
    if (inode.type === 'dir') return fail(FsErrorCode.EISDIR, `'${path}' is a directory: cannot truncate`);
    if (inode.type !== 'file') return fail(FsErrorCode.EINVAL, `'${path}' is a ${inode.type}: cannot truncate`);
    const denied = accessDenied(caller, inode, Access.Write, path);
    if (denied !== undefined) return denied;
  }
  if (cmd.mode !== undefined) {
    const denied = ownerOnly(caller, inode, path, 'change its mode');
    if (denied !== undefined) return denied;
  }
  const chown = chownDenied(caller, inode, cmd.uid, cmd.gid, path);
  if (chown !== undefined) return chown;
  if (cmd.atimeMs !== undefined || cmd.mtimeMs !== undefined) {
    const denied = ownerOnly(caller, inode, path, 'set its times to given values');
    if (denied !== undefined) return denied;
  }
  // Setting both times to now needs only write permission (utimes with no times), as for touch.
  if (cmd.timesNow && !isOwnerOrRoot(caller, inode)) {
    const denied = accessDenied(caller, inode, Access.Write, path);
    if (denied !== undefined) return denied;
  }
  if (cmd.sizeBytes !== undefined && !cmd.chunksTrimmed && holdsDataFrom(inode, cmd.sizeBytes)) return untrimmed(path, cmd.sizeBytes);
  return undefined;
}

export function setattr(t: MetaTables, cmd: SetattrCommand): Result<'setattr'> {
  const inode = resolve(t, cmd.path, cmd.caller);
  if (isFail(inode)) return inode;
  const denied = setattrDenied(cmd, inode);
  if (denied !== undefined) return denied;
  // A held directory's mode and owner decide its holder's creates, and it answers its times.
  const held = inode.type === 'dir' ? heldByOther(t, inode, cmd.caller) : undefined;
  if (held !== undefined) return held;
  if (cmd.sizeBytes !== undefined) {
    setSize(t, inode, cmd.sizeBytes);
    inode.mtimeMs = cmd.nowMs;
  }
  if (cmd.mode !== undefined) inode.mode = chmodMode(cmd.caller, cmd.mode, cmd.gid ?? inode.gid);
  if (cmd.uid !== undefined) inode.uid = cmd.uid;
  if (cmd.gid !== undefined) inode.gid = cmd.gid;
  if (cmd.atimeMs !== undefined) inode.atimeMs = cmd.atimeMs;
  if (cmd.mtimeMs !== undefined) inode.mtimeMs = cmd.mtimeMs;
  if (cmd.timesNow) {
    inode.atimeMs = cmd.nowMs;
    inode.mtimeMs = cmd.nowMs;
  }
  inode.ctimeMs = cmd.nowMs;
  return ok(attrOf(inode));
}

/** The regular file `path` names, if the caller may `want` it (Access bits), or why not. */
function resolveFile(t: MetaTables, path: string, caller: Caller, want: number): Inode | MetaFail {
  const inode = resolve(t, path, caller);
  if (isFail(inode)) return inode;
  if (inode.type === 'dir') return fail(FsErrorCode.EISDIR, `'${path}' is a directory`);
  if (inode.type === 'symlink') return fail(FsErrorCode.EINVAL, `'${path}' is a symlink (the client resolves symlinks)`);
  if (inode.type !== 'file') return fail(FsErrorCode.EINVAL, `'${path}' is a ${inode.type}: it has no data here`);
  return accessDenied(caller, inode, want, path) ?? inode;
}

/** The file a reader opens: read permission on it, search on the way. */
export function openForReading(t: MetaTables, path: string, caller: Caller): Inode | MetaFail {
  return resolveFile(t, path, caller, Access.Read);
}

/** A session is a writer's: it needs write permission, truncating or not. */
export function openSession(t: MetaTables, cmd: OpenSessionCommand): Result<'openSession'> {
  const inode = resolveFile(t, cmd.path, cmd.caller, Access.Write);
  if (isFail(inode)) return inode;
  if (cmd.truncate && !cmd.chunksTrimmed && holdsDataFrom(inode, 0)) return untrimmed(cmd.path, 0);
  const sessionId = startSession(t, inode, cmd);
  if (isFail(sessionId)) return sessionId;
  if (cmd.truncate) {
    setSize(t, inode, 0);
    inode.mtimeMs = cmd.nowMs;
    inode.ctimeMs = cmd.nowMs;
  }
  return ok({ sessionId, inode: attrOf(inode) });
}

function sessionsFull(t: MetaTables): MetaFail | undefined {
  if (t.sessions.size < t.options.sessionsMax) return undefined;
  return fail(FsErrorCode.EMFILE, `${t.sessions.size} sessions are open, the limit (sessionsMax)`);
}

/** Opens a write session on a file: its id (the client's, or generated), or why not. */
function startSession(t: MetaTables, inode: Inode, cmd: NamespaceStamp & { sessionId?: string }): string | MetaFail {
  const full = sessionsFull(t);
  if (full !== undefined) return full;
  if (cmd.sessionId !== undefined && t.sessions.has(cmd.sessionId)) {
    return fail(FsErrorCode.EEXIST, `session '${cmd.sessionId}' is already open`);
  }
  const sessionId = cmd.sessionId ?? `${generatedSessionPrefix}${t.nextSessionNo++}`;
  assert(!t.sessions.has(sessionId), `generated session id ${sessionId} is taken`);
  t.sessions.set(sessionId, { sessionId, inodeId: inode.id, clientId: cmd.clientId, openedMs: cmd.nowMs });
  t.sessionsByInode.set(inode.id, (t.sessionsByInode.get(inode.id) ?? 0) + 1);
  return sessionId;
}

/** Writers report high-water marks: a committed length only grows a file (truncation is setattr). */
function commitGrowth(t: MetaTables, inode: Inode, lengthBytes: number, nowMs: number): void {
  if (lengthBytes > inode.sizeBytes) setSize(t, inode, lengthBytes);
  inode.mtimeMs = nowMs;
  inode.ctimeMs = nowMs;
}

export function closeSession(t: MetaTables, cmd: CloseSessionCommand): Result<'closeSession'> {
  const session = t.sessions.get(cmd.sessionId);
  if (session === undefined) return fail(FsErrorCode.ENOENT, `no open session '${cmd.sessionId}'`);
  const inode = inodeOf(t, session.inodeId);
  recordChunks(inode, cmd.chunks, cmd.lengthBytes);
  if (cmd.lengthBytes !== undefined) commitGrowth(t, inode, cmd.lengthBytes, cmd.nowMs);
  if (cmd.abandoned === true && session.ephemeral !== undefined) removeEphemeral(t, session, cmd.nowMs);
  const attr = attrOf(inode);
  return ok({ inode: attr, pendingGc: endSession(t, session, cmd.nowMs) });
}

export function expireSessions(t: MetaTables, cmd: ExpireSessionsCommand): Result<'expireSessions'> {
  let ended = 0;
  let pendingGc = 0;
  for (const id of cmd.sessionIds) {
    const session = t.sessions.get(id);
    if (session === undefined) continue;
    ended++;
    if (session.ephemeral !== undefined) removeEphemeral(t, session, cmd.nowMs);
    if (endSession(t, session, cmd.nowMs)) pendingGc++;
  }
  return ok({ ended, pendingGc });
}

/**
 * The temporary file of a writer that died (its session expired) goes, if it still has the name it
 * was made with and no other: renamed, it is someone's file now. Every chunk of it goes with it
 * (untracked): the writer may have written chunks it never recorded, and nobody reads them again.
 */
function removeEphemeral(t: MetaTables, session: Session, nowMs: number): void {
  const { parentId, name } = session.ephemeral!;
  const parent = t.inodes.get(parentId);
  if (parent?.children?.get(name) !== session.inodeId) return;
  // Its holder answers for the names in a held directory: the file stays, as a renamed one would.
  if (t.dirLeases.has(parentId)) return;
  const inode = inodeOf(t, session.inodeId);
  if (inode.nlink !== 1) return;
  removeEntry(t, parent, name, inode, nowMs);
  inode.chunks = null;
  dropLink(t, inode, nowMs);
}

/** Removes a session; true when it held the last of an unlinked file, which is now garbage. */
function endSession(t: MetaTables, session: Session, nowMs: number): boolean {
  const inode = inodeOf(t, session.inodeId);
  t.sessions.delete(session.sessionId);
  const left = (t.sessionsByInode.get(inode.id) ?? 0) - 1;
  assert(left >= 0, `session count of inode ${inode.id} below zero`);
  if (left > 0) {
    t.sessionsByInode.set(inode.id, left);
    return false;
  }
  t.sessionsByInode.delete(inode.id);
  if (inode.nlink > 0) return false;
  assert(t.orphans.delete(inode.id), `unlinked inode ${inode.id} was not an orphan`);
  releaseFile(t, inode, nowMs);
  return true;
}

export function commitLength(t: MetaTables, cmd: CommitLengthCommand): Result<'commitLength'> {
  let inode: Inode | MetaFail;
  if (cmd.path !== undefined) inode = resolveFile(t, cmd.path, cmd.caller, Access.Write);
  else {
    const id = cmd.inodeId ?? 0;
    const found = t.inodes.get(id);
    if (found === undefined) inode = fail(FsErrorCode.ENOENT, `no inode ${id}`);
    else if (found.type !== 'file') inode = fail(found.type === 'dir' ? FsErrorCode.EISDIR : FsErrorCode.EINVAL, `inode ${id} is a ${found.type}`);
    else inode = accessDenied(cmd.caller, found, Access.Write, `inode ${id}`) ?? found;
  }
  if (isFail(inode)) return inode;
  recordChunks(inode, cmd.chunks, cmd.lengthBytes);
  commitGrowth(t, inode, cmd.lengthBytes, cmd.nowMs);
  return ok(attrOf(inode));
}

export function gcDone(t: MetaTables, cmd: GcDoneCommand): Result<'gcDone'> {
  let removed = 0;
  for (const id of cmd.inodeIds) if (t.pendingGc.delete(id)) removed++;
  return ok({ removed });
}

/** The root of a fresh namespace: mode 0755, owned by 0:0, its own parent. */
export function createRoot(t: MetaTables): void {
  const root = newInode(rootInodeId, 'dir', 0o755, 0, 0, 0);
  root.parentId = rootInodeId;
  insertInode(t, root);
}

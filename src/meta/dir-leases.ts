// Directory leases: a mount may hold a directory, so that it answers creates and unlinks in it
// itself, at once, and sends them to the masters afterwards in batches (src/fuse/dir-holds.ts).
// While it holds the directory, no other request may look up a name in it other than a
// subdirectory's, list it, change its entries, remove it or move it (CAIRN_DIR_LEASED, which
// clients retry while the leader recalls the lease): so the holder knows every name in it, and
// what it answered stays true until its batch lands. Holding is journaled state, checked as each
// command applies; renewals and recalls live on the leader (src/master/dir-lease-renewals.ts).
// The holder's creates take inode ids from a range its lease reserved, so it answers with the
// id the file will have. Pure.

import { FsErrorCode, ResultErrorCode } from './errors.ts';
import type { CreateCommand, DirBatchCommand, ExpireDirLeasesCommand, LeaseDirCommand, ReleaseDirCommand, UnlinkCommand } from './commands.ts';
import { attrOf, fail, isFail, ok } from './namespace-state.ts';
import type { DirBatchResult, DirLease, MetaResult, MetaTables, MetaValues } from './namespace-state.ts';
import { createAt, heldByOther, resolve, unlinkAt } from './namespace-tree.ts';
import { Access, accessDenied, newOwnerDenied } from './permissions.ts';

type Result<K extends keyof MetaValues> = MetaResult<MetaValues[K]>;

/** Inode ids a lease reserves for its holder's creates at a time. */
export const dirLeaseIds = 4096;
/** Directories held at once, by all holders together. */
export const dirLeasesMax = 65_536;

/**
 * Takes the directory at `path` for the caller's holder, or gives it a new range of inode ids if
 * it holds it already. The holder lists it afterwards, so it needs read permission, as readdir.
 */
export function leaseDir(t: MetaTables, cmd: LeaseDirCommand): Result<'leaseDir'> {
  const { holder } = cmd.caller;
  if (holder === undefined) return fail(FsErrorCode.EINVAL, 'leaseDir: the caller names no lease holder');
  const dir = resolve(t, cmd.path, cmd.caller);
  if (isFail(dir)) return dir;
  if (dir.children === null) return fail(FsErrorCode.ENOTDIR, `'${cmd.path}' is not a directory`);
  const denied = accessDenied(cmd.caller, dir, Access.Read | Access.Search, cmd.path);
  if (denied !== undefined) return denied;
  // Not CAIRN_DIR_LEASED: that would recall the other mount's lease, and be retried.
  if (heldByOther(t, dir, cmd.caller) !== undefined) return fail(FsErrorCode.EAGAIN, `'${cmd.path}' is held by another mount`);
  if (!t.dirLeases.has(dir.id) && t.dirLeases.size >= dirLeasesMax) return fail(FsErrorCode.EMFILE, `${t.dirLeases.size} directories are held, the limit`);
  const idNext = t.nextInodeId;
  t.nextInodeId += dirLeaseIds;
  t.dirLeases.set(dir.id, { dirInodeId: dir.id, holder, clientId: cmd.clientId, grantedMs: cmd.nowMs, idNext, idEnd: t.nextInodeId });
  return ok({ dir: attrOf(dir), idNext, idEnd: t.nextInodeId });
}

/** Gives the directory back if the caller's holder holds it (else nothing changes: released is false). */
export function releaseDir(t: MetaTables, cmd: ReleaseDirCommand): Result<'releaseDir'> {
  const lease = t.dirLeases.get(cmd.dirInodeId);
  if (lease === undefined || lease.holder !== cmd.caller.holder) return ok({ released: false });
  endLease(t, lease);
  return ok({ released: true });
}

/** Ends a lease; its unused inode ids go back when nothing was handed out after them. */
export function endLease(t: MetaTables, lease: DirLease): void {
  t.dirLeases.delete(lease.dirInodeId);
  if (lease.idEnd === t.nextInodeId) t.nextInodeId = lease.idNext;
}

/** Ends the leases named, each if the holder named still holds it (its holder stopped renewing it). */
export function expireDirLeases(t: MetaTables, cmd: ExpireDirLeasesCommand): Result<'expireDirLeases'> {
  let ended = 0;
  for (const { dirInodeId, holder } of cmd.leases) {
    const lease = t.dirLeases.get(dirInodeId);
    if (lease?.holder !== holder) continue;
    endLease(t, lease);
    ended++;
  }
  return ok({ ended });
}

/**
 * The holder's creates and unlinks in its directory, in the order it answered them, each with its
 * own outcome (as if sent one by one). Refused whole (CAIRN_DIR_LEASE_LOST) if the holder no longer
 * holds the directory: what it answered may then no longer be true, and nothing is applied.
 */
export function dirBatch(t: MetaTables, cmd: DirBatchCommand): Result<'dirBatch'> {
  const lease = t.dirLeases.get(cmd.dirInodeId);
  const dir = t.inodes.get(cmd.dirInodeId);
  if (lease === undefined || lease.holder !== cmd.caller.holder || dir === undefined) {
    return fail(ResultErrorCode.DirLeaseLost, `directory ${cmd.dirInodeId} is no longer held by this mount: its changes there since it lost it are not applied`);
  }
  const results: DirBatchResult[] = [];
  const stamp = { clientId: cmd.clientId, seq: cmd.seq, nowMs: cmd.nowMs };
  for (const op of cmd.ops) {
    const path = `directory ${dir.id}: '${op.name}'`;
    let r: MetaResult<unknown>;
    if (op.op === 'create') {
      const owned = newOwnerDenied(op.caller, op.uid, op.gid, path);
      if (owned !== undefined) r = owned;
      else if (op.inodeId < lease.idNext || op.inodeId >= lease.idEnd) {
        r = fail(FsErrorCode.EINVAL, `${path}: inode id ${op.inodeId} is not the next of the lease's range [${lease.idNext}, ${lease.idEnd})`);
      } else {
        const create: CreateCommand = { op: 'create', ...stamp, caller: op.caller, path, mode: op.mode, uid: op.uid, gid: op.gid, exclusive: true, ...(op.openSession ? { openSession: true } : {}) };
        r = createAt(t, create, { parent: dir, name: op.name }, op.inodeId);
        if (!isFail(r)) lease.idNext = op.inodeId + 1;
      }
    } else {
      const unlink: UnlinkCommand = { op: 'unlink', ...stamp, caller: op.caller, path };
      r = unlinkAt(t, unlink, { parent: dir, name: op.name });
    }
    results.push(isFail(r) ? { ok: false, code: r.code, message: r.message } : { ok: true, value: dropParent(r.value as { parent?: unknown }) as never });
  }
  return ok({ results, parent: attrOf(dir) });
}

/** An op's value without the directory's attributes, which the batch answers once. */
function dropParent<V extends { parent?: unknown }>(value: V): Omit<V, 'parent'> {
  const { parent: _parent, ...rest } = value;
  return rest;
}

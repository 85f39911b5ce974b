// POSIX permission checks on the caller a namespace request presents: which class of the mode bits
// applies (owner, group, other), root's bypass, the sticky bit, and the owner-only operations.
// Pure and deterministic: apply runs them on every master.

import type { Caller } from './commands.ts';
import { FsErrorCode } from './errors.ts';
import { fail } from './namespace-state.ts';
import type { Inode, MetaFail } from './namespace-state.ts';

/** Permission bits as the owner, group and other triples hold them. */
export const Access = { Read: 4, Write: 2, Search: 1 } as const;

const stickyBit = 0o1000;
export const setgidBit = 0o2000;

export function isRoot(caller: Caller): boolean {
  return caller.uid === 0;
}

export function inGroup(caller: Caller, gid: number): boolean {
  return caller.gid === gid || caller.groups.includes(gid);
}

/** What a permission check reads of an inode (an InodeAttr has it too). */
type Owned = Pick<Inode, 'mode' | 'uid' | 'gid'>;

function isOwner(caller: Caller, inode: Owned): boolean {
  return caller.uid === inode.uid;
}

export function isOwnerOrRoot(caller: Caller, inode: Inode): boolean {
  return isRoot(caller) || isOwner(caller, inode);
}

/** The one triple that applies, as Linux picks it: the owner's, else the group's, else other's. */
function bitsFor(caller: Caller, inode: Owned): number {
  if (isOwner(caller, inode)) return (inode.mode >> 6) & 7;
  if (inGroup(caller, inode.gid)) return (inode.mode >> 3) & 7;
  return inode.mode & 7;
}

/** Whether the caller has every permission in `want` (a sum of Access bits); root has all. */
export function mayAccess(caller: Caller, inode: Owned, want: number): boolean {
  return isRoot(caller) || (bitsFor(caller, inode) & want) === want;
}

function accessNames(want: number): string {
  const names = [];
  if (want & Access.Read) names.push('read');
  if (want & Access.Write) names.push('write');
  if (want & Access.Search) names.push('search');
  return names.join(' and ');
}

function who(caller: Caller): string {
  return `uid ${caller.uid} (gid ${caller.gid}${caller.groups.length > 0 ? `, groups ${caller.groups.join(',')}` : ''})`;
}

function describeInode(inode: Inode): string {
  return `mode ${inode.mode.toString(8).padStart(4, '0')}, owner ${inode.uid}:${inode.gid}`;
}

/** EACCES when the caller lacks `want` on `inode` (named `path` in the message), else undefined. */
export function accessDenied(caller: Caller, inode: Inode, want: number, path: string): MetaFail | undefined {
  if (mayAccess(caller, inode, want)) return undefined;
  return fail(FsErrorCode.EACCES, `permission denied: ${who(caller)} has no ${accessNames(want)} permission on '${path}' (${describeInode(inode)})`);
}

/**
 * EPERM when a sticky directory keeps the caller from removing or renaming `entry` out of it: only
 * the entry's owner, the directory's owner, or root may.
 */
export function stickyDenied(caller: Caller, dir: Inode, entry: Inode, path: string): MetaFail | undefined {
  if ((dir.mode & stickyBit) === 0 || isRoot(caller) || isOwner(caller, entry) || isOwner(caller, dir)) return undefined;
  return fail(FsErrorCode.EPERM, `operation not permitted: '${path}' is in a sticky directory and belongs to uid ${entry.uid}; only it, the directory's owner (uid ${dir.uid}) or root may remove or rename it, not ${who(caller)}`);
}

/** EPERM unless the caller owns `inode` or is root: for chmod and explicit times. */
export function ownerOnly(caller: Caller, inode: Inode, path: string, what: string): MetaFail | undefined {
  if (isOwnerOrRoot(caller, inode)) return undefined;
  return fail(FsErrorCode.EPERM, `operation not permitted: only the owner of '${path}' (uid ${inode.uid}) or root may ${what}, not ${who(caller)}`);
}

/**
 * EPERM unless the change of owner is allowed: root may give any uid and gid; the owner may keep
 * its uid and set the group to one of its own groups (or keep it), as chown(2) says.
 */
export function chownDenied(caller: Caller, inode: Inode, uid: number | undefined, gid: number | undefined, path: string): MetaFail | undefined {
  if (isRoot(caller)) return undefined;
  const owner = isOwner(caller, inode);
  if (uid !== undefined && !(owner && uid === inode.uid)) {
    return fail(FsErrorCode.EPERM, `operation not permitted: only root may change the owner of '${path}' (uid ${inode.uid} to ${uid}), not ${who(caller)}`);
  }
  if (gid !== undefined && !(owner && (gid === inode.gid || inGroup(caller, gid)))) {
    return fail(FsErrorCode.EPERM, `operation not permitted: only root, or the owner for a group it is in, may change the group of '${path}' to ${gid}, not ${who(caller)}`);
  }
  return undefined;
}

/** EPERM when a caller other than root names an owner for a new entry other than itself and one of its groups. */
export function newOwnerDenied(caller: Caller, uid: number, gid: number, path: string): MetaFail | undefined {
  if (isRoot(caller) || (uid === caller.uid && inGroup(caller, gid))) return undefined;
  return fail(FsErrorCode.EPERM, `operation not permitted: only root may create '${path}' owned by ${uid}:${gid} (another user, or a group it is not in), not ${who(caller)}`);
}

/** The mode chmod sets: a caller other than root that is not in the file's group loses setgid, as Linux does. */
export function chmodMode(caller: Caller, mode: number, gid: number): number {
  return isRoot(caller) || inGroup(caller, gid) ? mode : mode & ~setgidBit;
}

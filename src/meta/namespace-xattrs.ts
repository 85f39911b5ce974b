// Extended attributes of inodes (user.* names only): set and removed through the journal, read by
// queries. Linux's rules: only regular files and directories carry user.* attributes; reading one
// needs read permission, changing one write permission. Pure.

import type { Caller, RemovexattrCommand, SetxattrCommand } from './commands.ts';
import { XattrFlag, xattrsBytesMax } from './commands.ts';
import { FsErrorCode } from './errors.ts';
import { fail, isFail, ok } from './namespace-state.ts';
import type { Inode, MetaFail, MetaResult, MetaTables, MetaValues } from './namespace-state.ts';
import { resolve } from './namespace-tree.ts';
import { Access, accessDenied } from './permissions.ts';

export function setxattr(t: MetaTables, cmd: SetxattrCommand): MetaResult<MetaValues['setxattr']> {
  const inode = xattrSettable(t, cmd.path, cmd.caller, cmd.name, cmd.value, cmd.flags);
  if (isFail(inode)) return inode;
  putXattr(inode, cmd.name, cmd.value, cmd.nowMs);
  return ok(null);
}

/** The inode at `path`, if the caller may set this attribute on it as `flags` ask, or why not; changes nothing. */
export function xattrSettable(t: MetaTables, path: string, caller: Caller, name: string, value: Uint8Array, flags: XattrFlag): Inode | MetaFail {
  const inode = writable(t, path, caller);
  if (isFail(inode)) return inode;
  const had = inode.xattrs?.get(name);
  if (flags === XattrFlag.Create && had !== undefined) return fail(FsErrorCode.EEXIST, `'${path}' has extended attribute '${name}'`);
  if (flags === XattrFlag.Replace && had === undefined) return fail(FsErrorCode.ENODATA, `'${path}' has no extended attribute '${name}'`);
  const bytes = xattrBytes(inode) - (had === undefined ? 0 : name.length + had.length) + name.length + value.length;
  if (bytes > xattrsBytesMax) return fail(FsErrorCode.E2BIG, `'${path}' would hold ${bytes} bytes of extended attributes, more than ${xattrsBytesMax}`);
  return inode;
}

export function putXattr(inode: Inode, name: string, value: Uint8Array, nowMs: number): void {
  inode.xattrs ??= new Map();
  inode.xattrs.set(name, Uint8Array.from(value));
  inode.ctimeMs = nowMs;
}

export function removexattr(t: MetaTables, cmd: RemovexattrCommand): MetaResult<MetaValues['removexattr']> {
  const inode = writable(t, cmd.path, cmd.caller);
  if (isFail(inode)) return inode;
  if (inode.xattrs?.delete(cmd.name) !== true) return fail(FsErrorCode.ENODATA, `'${cmd.path}' has no extended attribute '${cmd.name}'`);
  if (inode.xattrs.size === 0) inode.xattrs = null;
  inode.ctimeMs = cmd.nowMs;
  return ok(null);
}

export function getxattr(t: MetaTables, path: string, name: string, caller: Caller): MetaResult<Uint8Array> {
  const inode = resolve(t, path, caller);
  if (isFail(inode)) return inode;
  const denied = accessDenied(caller, inode, Access.Read, path);
  if (denied !== undefined) return denied;
  const value = inode.xattrs?.get(name);
  return value === undefined ? fail(FsErrorCode.ENODATA, `'${path}' has no extended attribute '${name}'`) : ok(Uint8Array.from(value));
}

/** The names, sorted (listing needs no permission on the inode itself, as listxattr(2)). */
export function listxattr(t: MetaTables, path: string, caller: Caller): MetaResult<string[]> {
  const inode = resolve(t, path, caller);
  if (isFail(inode)) return inode;
  return ok([...(inode.xattrs?.keys() ?? [])].sort());
}

/** Names and values of an inode's attributes: what the bound counts. */
export function xattrBytes(inode: Inode): number {
  let n = 0;
  for (const [name, value] of inode.xattrs ?? []) n += name.length + value.length;
  return n;
}

function writable(t: MetaTables, path: string, caller: Caller): Inode | MetaFail {
  const inode = resolve(t, path, caller);
  if (isFail(inode)) return inode;
  if (inode.type !== 'file' && inode.type !== 'dir') return fail(FsErrorCode.EPERM, `'${path}' is a ${inode.type}: only files and directories carry user.* extended attributes`);
  return accessDenied(caller, inode, Access.Write, path) ?? inode;
}

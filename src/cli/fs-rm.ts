// `cairn fs rm`: refuses the root, and asks before a recursive removal of a large tree (or, with no
// terminal to ask on, refuses unless --yes), checking every path before it removes any.

import path from 'node:path';
import { ask } from './ask.ts';
import type { MasterClient } from '../client/index.ts';
import { CairnError, ErrorCode } from '../errors.ts';
import { FsErrorCode, MetaError, type DirEntry, type InodeAttr } from '../meta/index.ts';
import { configError } from './config.ts';
import { printable } from './format.ts';

/** A recursive removal of more entries than this (below the directory named) needs confirmation. */
export const rmConfirmEntriesMin = 1000;

export interface RmFlags {
  recursive?: boolean;
  /** Remove without asking. */
  yes?: boolean;
  /** Remove without asking, and no error for a path that does not exist (as rm -f). */
  force?: boolean;
}

/** Lists a directory's entries, all pages. */
export type Lister = (dir: string) => AsyncIterable<DirEntry>;

/** Whether `p` names the root, however it is spelled ('/', '//', '/a/..'). */
export function isRoot(p: string): boolean {
  return p.startsWith('/') && path.posix.normalize(p) === '/';
}

/** The entries below `dir`, counted until more than `max` are found (then max + 1): a large tree costs no more than that to check. */
export async function countEntries(list: Lister, dir: string, max: number): Promise<number> {
  let n = 0;
  const pending = [dir];
  while (pending.length > 0) {
    const d = pending.pop()!;
    for await (const e of list(d)) {
      if (++n > max) return n;
      if (e.type === 'dir') pending.push(join(d, e.name));
    }
  }
  return n;
}

/** What a removal of `large` trees needs: go ahead, ask on the terminal, or refuse (no terminal to ask on). */
export function rmConfirmation(large: boolean, flags: RmFlags, terminal: boolean): 'go' | 'ask' | 'refuse' {
  if (!large || flags.yes === true || flags.force === true) return 'go';
  return terminal ? 'ask' : 'refuse';
}

export async function rmPaths(c: MasterClient, list: Lister, paths: string[], flags: RmFlags): Promise<void> {
  const root = paths.find(isRoot);
  if (root !== undefined) throw configError(`refusing to remove the root '${root}' (nothing removed); remove the entries in it by name instead`);
  const found: { path: string; attr: InodeAttr }[] = [];
  for (const p of paths) {
    const attr = await statOrMissing(c, p, flags.force === true);
    if (attr === undefined) continue;
    if (attr.type === 'dir' && flags.recursive !== true) throw new MetaError(FsErrorCode.EISDIR, `${p} is a directory (use rm -r)`);
    found.push({ path: p, attr });
  }
  const large: string[] = [];
  if (flags.yes !== true && flags.force !== true) {
    for (const f of found) if (f.attr.type === 'dir' && (await countEntries(list, f.path, rmConfirmEntriesMin)) > rmConfirmEntriesMin) large.push(f.path);
  }
  const what = `${large.join(', ')} and everything in ${large.length === 1 ? 'it' : 'them'} (more than ${rmConfirmEntriesMin} entries)`;
  switch (rmConfirmation(large.length > 0, flags, process.stdin.isTTY === true)) {
    case 'refuse':
      throw new CairnError(ErrorCode.NotConfirmed, `rm -r would remove ${what}; pass --yes to confirm (nothing removed)`);
    case 'ask':
      if (!(await ask(printable(`cairn: remove ${what}? [y/N] `)))) throw new CairnError(ErrorCode.NotConfirmed, 'not confirmed (nothing removed)');
      break;
    case 'go':
      break;
  }
  for (const f of found) await removeTree(c, list, f.path, f.attr.type);
}

async function statOrMissing(c: MasterClient, p: string, force: boolean): Promise<InodeAttr | undefined> {
  try {
    return await c.query<InodeAttr>('meta.query', { op: 'stat', path: p });
  } catch (err) {
    if (force && (err as { code?: string }).code === FsErrorCode.ENOENT) return undefined;
    throw err;
  }
}

async function removeTree(c: MasterClient, list: Lister, p: string, type: DirEntry['type']): Promise<void> {
  if (type !== 'dir') {
    await c.mutate('meta.mutate', { op: 'unlink', path: p });
    return;
  }
  for (;;) {
    const children: DirEntry[] = [];
    for await (const e of list(p)) children.push(e);
    if (children.length === 0) break;
    for (const e of children) await removeTree(c, list, join(p, e.name), e.type);
  }
  await c.mutate('meta.mutate', { op: 'rmdir', path: p });
}

export function join(dir: string, name: string): string {
  return dir.endsWith('/') ? `${dir}${name}` : `${dir}/${name}`;
}

// `cairn fs find --inode`: the paths of an inode, found by walking the namespace (files keep no
// link to their directories, and a hard-linked one has several). For an operator holding an inode
// number from a worker's log (a chunk damaged on every replica names INODE-INDEX in hex).

import type { DirEntry } from '../meta/index.ts';
import { configError } from './config.ts';
import { join } from './fs-rm.ts';

/**
 * An inode id as an operator has it: decimal (`42`), hex (`0x2a`), or a chunk's name from a
 * worker's log or chunk directory (`000000000000002a-00000003`, inode then index, in hex).
 */
export function parseInodeId(s: string): number {
  const chunk = /^([0-9a-fA-F]{1,16})-[0-9a-fA-F]{1,8}$/.exec(s);
  const hex = /^0x([0-9a-fA-F]{1,16})$/.exec(s);
  const id = chunk !== null ? parseInt(chunk[1], 16) : hex !== null ? parseInt(hex[1], 16) : /^\d{1,16}$/.test(s) ? Number(s) : NaN;
  if (!Number.isSafeInteger(id) || id < 1) throw configError(`--inode must be an inode number (decimal, 0x hex, or a chunk name INODE-INDEX in hex), got '${s}'`);
  return id;
}

export interface FindProgress {
  dirs: number;
  entries: number;
  /** Directories that could not be listed (no permission, removed meanwhile), with why. */
  skipped: { path: string; error: string }[];
}

/**
 * Walks the tree under `root` (depth first, a directory's pages as `list` gives them) and calls
 * `found` for each path whose entry is `inodeId`. A directory that cannot be listed is noted in
 * `progress.skipped` and passed over; the walk goes on.
 */
export async function findInode(list: (dir: string) => AsyncIterable<DirEntry>, root: string, inodeId: number, found: (path: string) => void, progress: FindProgress): Promise<void> {
  const dirs = [root];
  for (let dir = dirs.pop(); dir !== undefined; dir = dirs.pop()) {
    progress.dirs++;
    const below: string[] = [];
    try {
      for await (const e of list(dir)) {
        progress.entries++;
        const p = join(dir, e.name);
        if (e.inodeId === inodeId) found(p);
        if (e.type === 'dir') below.push(p);
      }
    } catch (err) {
      progress.skipped.push({ path: dir, error: (err as Error).message });
    }
    // Names in order: the last pushed is walked first.
    for (let i = below.length - 1; i >= 0; i--) dirs.push(below[i]);
  }
}

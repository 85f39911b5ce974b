// Directory creation that survives a crash: each directory it creates is made durable in its
// parent. Shared by the WAL, the snapshot files and the directory lock.

import path from 'node:path';
import type { Disk } from './disk.ts';

/** Creates `dir` and any missing parents, syncing the parent of each one it creates; resolves to the syncs made. */
export async function ensureDir(disk: Disk, dir: string): Promise<number> {
  const created = await disk.mkdirs(dir);
  if (created === undefined) return 0;
  const top = path.resolve(created);
  let syncs = 0;
  for (let d = path.resolve(dir); d !== path.dirname(d); d = path.dirname(d)) {
    await disk.syncDir(path.dirname(d));
    syncs++;
    if (d === top) break;
  }
  return syncs;
}

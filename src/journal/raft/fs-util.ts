// Directory creation that survives a crash, shared by the WAL and the snapshot files.

import path from 'node:path';
import type { Disk } from '../../io/index.ts';

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

// Small durable-file helpers shared by the WAL and the snapshot files: full writes, directory
// fsync, and directory creation that survives a crash.

import { mkdir, open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';

/** Writes all of `buf` at `position`; a file write may legally write less than asked. */
export async function writeFully(fh: FileHandle, buf: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < buf.byteLength) {
    const { bytesWritten } = await fh.write(buf, done, buf.byteLength - done, position + done);
    if (bytesWritten <= 0) throw new Error(`write made no progress at offset ${position + done}`);
    done += bytesWritten;
  }
}

/** Makes the names in `dir` (created, renamed or deleted files) durable. */
export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Creates `dir` and any missing parents, syncing the parent of each one it creates. */
export async function ensureDir(dir: string): Promise<number> {
  const created = await mkdir(dir, { recursive: true });
  if (created === undefined) return 0;
  const top = path.resolve(created);
  let syncs = 0;
  for (let d = path.resolve(dir); d !== path.dirname(d); d = path.dirname(d)) {
    await syncDir(path.dirname(d));
    syncs++;
    if (d === top) break;
  }
  return syncs;
}

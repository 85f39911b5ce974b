// Reads of what the page cache holds, on the calling thread (src/io/native/cached-read.c). A read
// through libuv's I/O threads costs a thread wake-up, an eventfd write and an epoll wake-up, far
// more than copying a few cached KiB: for a worker serving 4 KiB random reads that hand-off was a
// third of its CPU. Data not cached is left to the I/O threads, so a slow disk never stalls the
// event loop. Without the addon (no C compiler at install) every read goes to the threads.

import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface Addon {
  readCached(fd: number, buffer: Uint8Array, position: number): number;
}

/**
 * Largest read tried on the calling thread: bigger copies (a whole chunk for a resync or a
 * read-ahead) would hold the event loop for hundreds of microseconds, and gain little from it.
 */
export const cachedReadBytesMax = 256 << 10;

const addonFile = fileURLToPath(new URL('../../build/cached-read.node', import.meta.url));
let addon: Addon | undefined;
let disabled = process.env.CAIRN_CACHED_READS === '0';
if (!disabled && existsSync(addonFile)) addon = createRequire(import.meta.url)(addonFile) as Addon;

/** Whether reads can be answered on the calling thread (the addon is built and not turned off). */
export function cachedReadsAvailable(): boolean {
  return addon !== undefined && !disabled;
}

/**
 * Reads into `buf` from `position` what the page cache holds, without waiting for the disk: the
 * bytes read from the start of `buf` (0: none cached, at the end of the file, or not available).
 * Errors other than "not cached" are left for the ordinary read to meet and report.
 */
export function readCached(fd: number, buf: Uint8Array, position: number): number {
  if (addon === undefined || disabled || buf.byteLength > cachedReadBytesMax) return 0;
  const n = addon.readCached(fd, buf, position);
  if (n > 0) return n;
  // EOPNOTSUPP or EINVAL: the file system or kernel has no RWF_NOWAIT for buffered reads.
  if (n === -95 || n === -22) disabled = true;
  return 0;
}

// A worker's two uses of the page cache that node:fs lacks (src/io/native/page-cache.c).
//
// Reads of what the page cache holds, on the calling thread. A read
// through libuv's I/O threads costs a thread wake-up, an eventfd write and an epoll wake-up, far
// more than copying a few cached KiB: for a worker serving 4 KiB random reads that hand-off was a
// third of its CPU. Data not cached is left to the I/O threads, so a slow disk never stalls the
// event loop. Without the addon (no C compiler at install) every read goes to the threads.
//
// Dropping a written chunk file's pages once they are durable (ChunkStoreOptions.cacheWrites).
//
// Where a buffer's first byte falls modulo an alignment, for direct I/O (node-disk.ts, directIo).
//
// Large reads with their block CRCs checked on libuv's I/O thread that reads them (node-disk.ts,
// readChecked), not on the event loop.

import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';

interface Addon {
  readCached(fd: number, buffer: Uint8Array, position: number): number;
  dropCached(fd: number): number;
  addressOffset?(buffer: Uint8Array, align: number): number;
  readChecked?(fd: number, buffer: Uint8Array, position: number, blockBytes: number, crcs: Uint32Array): Promise<number>;
}

/**
 * Largest read tried on the calling thread: bigger copies (a whole chunk for a resync or a
 * read-ahead) would hold the event loop for hundreds of microseconds, and gain little from it.
 */
export const cachedReadBytesMax = 256 << 10;

/** Where scripts/build-io-addon.ts puts the addon (that script names it too: importing this module would load the file it rebuilds). */
const pageCacheAddonFile = fileURLToPath(new URL('../../build/page-cache.node', import.meta.url));

/** The addon; undefined when not built. */
const loaded: Addon | undefined = existsSync(pageCacheAddonFile) ? (createRequire(import.meta.url)(pageCacheAddonFile) as Addon) : undefined;
/** The addon for reads; undefined when not built, turned off (CAIRN_CACHED_READS=0), or refused by the file system. */
let addon: Addon | undefined = process.env.CAIRN_CACHED_READS !== '0' ? loaded : undefined;

/** Whether reads can be answered on the calling thread. */
export function cachedReadsAvailable(): boolean {
  return addon !== undefined;
}

/**
 * Reads into `buf` from `position` what the page cache holds, without waiting for the disk: the
 * bytes read from the start of `buf` (0: none cached, at the end of the file, or not available).
 * Errors other than "not cached" are left for the ordinary read to meet and report.
 */
export function readCached(fd: number, buf: Uint8Array, position: number): number {
  if (addon === undefined || buf.byteLength > cachedReadBytesMax) return 0;
  const n = addon.readCached(fd, buf, position);
  if (n > 0) return n;
  // The file system or kernel has no RWF_NOWAIT for buffered reads: every read goes to the threads.
  if (n === -constants.errno.EOPNOTSUPP || n === -constants.errno.EINVAL) addon = undefined;
  return 0;
}

/** Whether dropCached can drop pages (the addon is built). */
export function pageDropsAvailable(): boolean {
  return loaded !== undefined;
}

/**
 * Asks the kernel to drop the open file's clean pages from the page cache; whether it was asked
 * (false: no addon, or the kernel refused). Only a hint: the file's contents never change, and
 * pages still dirty stay (so call it after an fdatasync).
 */
export function dropCached(fd: number): boolean {
  return loaded !== undefined && loaded.dropCached(fd) === 0;
}

/** The address of `buf`'s first byte modulo `align` (a power of two); undefined without the addon (or one built before it had this). */
export function addressOffset(buf: Uint8Array, align: number): number | undefined {
  return loaded?.addressOffset?.(buf, align);
}

/** Read once: the choice holds for the process. */
const checkedReads = loaded?.readChecked !== undefined && process.env.CAIRN_CHECKED_READS !== '0';

/** Whether checkedRead can check reads off the event loop (an addon built with readChecked; CAIRN_CHECKED_READS=0 turns it off). */
export function checkedReadsAvailable(): boolean {
  return checkedReads;
}

/**
 * Reads `buf.byteLength` bytes from `position` into `buf` and checks each `blockBytes` block
 * against `crcs` on an I/O thread: the index of the first block that differs (-1: all match), or
 * 'EOF' when the file ends first, or the read's errno code ('EIO'). Only when
 * checkedReadsAvailable(); the caller keeps `fd` open and `buf` untouched until it settles.
 */
export async function checkedRead(fd: number, buf: Uint8Array, position: number, blockBytes: number, crcs: Uint32Array): Promise<number | string> {
  const r = await loaded!.readChecked!(fd, buf, position, blockBytes, crcs);
  if (r >= -1) return r;
  if (r === -2) return 'EOF';
  const errno = -r - 1000;
  return errnoNames.get(errno) ?? `errno ${errno}`;
}

const errnoNames = new Map(Object.entries(constants.errno).map(([name, n]) => [n, name]));

// The file operations cairn's durable state goes through (the WAL, snapshot files and, next, the
// chunk store). Production passes the node:fs implementation (node-disk.ts); the simulator passes
// its own, which loses unsynced writes, tears them and fails operations on command.
//
// Errors carry Node's errno codes (`err.code`: ENOENT, EEXIST, ENOSPC, EIO), whichever side made them.

import { crc32c } from '@node-rs/crc32';

/** The index of the first `blockBytes` block of `data` whose CRC32C is not its entry in `crcs`; -1 when all match. */
export function firstBadCrc(data: Uint8Array, blockBytes: number, crcs: Uint32Array): number {
  for (let off = 0, b = 0; off < data.byteLength; off += blockBytes, b++) {
    if (b >= crcs.length || crc32c(data.subarray(off, off + blockBytes)) !== crcs[b]) return b;
  }
  return -1;
}

/** An open file. Positions are explicit; every write is whole (a short write is retried inside). */
export interface DiskFile {
  readonly path: string;
  write(buf: Uint8Array, position: number): Promise<void>;
  /** The buffers one after another from `position`, in one system call when it takes them all (no copy into one buffer first). */
  writev(bufs: readonly Uint8Array[], position: number): Promise<void>;
  /** For writers that must stream at one consistent point (a state machine's snapshot). */
  writeSync(buf: Uint8Array, position: number): void;
  /**
   * Exactly `length` bytes; fewer available is an error. With `into` (at least `length` bytes),
   * they are read into it and its first `length` bytes returned, so a caller can reuse buffers.
   */
  read(length: number, position: number, into?: Uint8Array): Promise<Uint8Array>;
  /**
   * `read`, then each `blockBytes` block of the bytes read (the last may be shorter) checked
   * against `crcs` (CRC32C, in order): the bytes, and the index of the first block that differs
   * (-1: all match). Where it can, the disk checks beside the read, off the event loop
   * (node-disk.ts with the I/O addon), so that a large read's checksum does not hold the loop.
   */
  readChecked(length: number, position: number, into: Uint8Array | undefined, blockBytes: number, crcs: Uint32Array): Promise<{ data: Uint8Array; badBlock: number }>;
  readSync(length: number, position: number): Uint8Array;
  size(): Promise<number>;
  sizeSync(): number;
  truncate(length: number): Promise<void>;
  /** fdatasync: the data written so far survives a crash. Once it fails, the file's state is unknown. */
  sync(): Promise<void>;
  /**
   * Asks that the file's clean pages leave the page cache (a hint: the contents stay, pages still
   * dirty stay too, so call it after sync). Where there is no page cache, nothing.
   */
  dropCache(): void;
  close(): Promise<void>;
  closeSync(): void;
}

/** How a file is opened: read only, read-write existing, create new exclusively (read-write). */
export type OpenMode = 'read' | 'update' | 'create';

export interface DiskSpace {
  bytesTotal: number;
  /** What an unprivileged writer may still use. */
  bytesFree: number;
  /** The file system's device number (stat's st_dev), where known: targets on one disk share it. */
  device?: number;
}

export interface Disk {
  open(path: string, mode: OpenMode): Promise<DiskFile>;
  openSync(path: string, mode: OpenMode): DiskFile;
  readFile(path: string): Promise<Uint8Array>;
  /** Names in a directory; ENOENT if it does not exist. */
  readdir(path: string): Promise<string[]>;
  /** Creates the directory and missing parents; resolves to the top one it created, if any. */
  mkdirs(path: string): Promise<string | undefined>;
  /** Atomic replace within one file system; durable once the directory is synced. */
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  /** Makes the names in a directory (created, renamed, deleted files) durable. */
  syncDir(path: string): Promise<void>;
  statfs(path: string): Promise<DiskSpace>;
  /** Writes that bypass the page cache (O_DIRECT), where this disk offers them. */
  readonly directIo?: DirectIo;
}

/**
 * Direct I/O: a write goes from the caller's buffer to the device, with no copy into the page cache
 * (the chunk store's use: docs/chunk-store.md, "Direct writes"). Every buffer's address and length,
 * and every file position, must be multiples of `alignBytes`.
 */
export interface DirectIo {
  readonly alignBytes: number;
  /** Creates a new file (exclusively, as open's 'create') for direct writes; EINVAL where its file system has no direct I/O (tmpfs). */
  create(path: string): Promise<DiskFile>;
  /** An aligned buffer of at least `bytes`, from a pool; `give` it back once written. */
  take(bytes: number): Uint8Array;
  give(buf: Uint8Array): void;
}

/** True for an error carrying the given errno code. */
export function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}

// Local reads: a client on a worker's machine reads a chunk's committed file itself, as Alluxio's
// short-circuit reads and HDFS's local reads do. A 4 KiB read through a worker costs a socket
// round trip, two wake-ups and the worker's own work (about as much CPU as the client's); read
// here it costs a pread from the page cache and a CRC.
//
// The worker says where the committed version lies (chunk.locate), only for a clean chunk (no
// write in flight there), and what its header must say. The file is kept open: a committed
// version is never changed in place, only replaced or removed by name, so an open file keeps the
// bytes it was located with. What keeps that from going stale:
// - this client's own writes, truncates and removals forget the chunks they touch (DataClient);
// - the mount forgets a file's chunks when it is opened (close-to-open: another client's writes
//   are seen by the next open, as with the kernel's page cache).
// Every block read is checked against the header's CRCs; a failed check, a short file or any error
// sends the read through the chain, where the worker finds the damage, reports and repairs it.

import { basename, isAbsolute } from 'node:path';
import type { BufferPool } from '../buffer-pool.ts';
import type { DiskFile } from '../io/disk.ts';
import { nodeDisk } from '../io/node-disk.ts';
import { blockCrcsFrom, blockSpan, chunkFileName, readChunkHeader, type ChunkHeader } from '../worker/chunk-file.ts';
import { RpcErrorCode } from '../rpc/errors.ts';
import { WorkerErrorCode } from '../worker/errors.ts';
import type { LocateReply } from '../worker/protocol.ts';

/** Chunk files kept open by default: each is one file descriptor. */
export const localFilesMaxDefault = 256;
/** Chunks remembered as not readable here (absent, dirty, damaged) before the list starts afresh. */
const missesMax = 4096;
/** A worker whose locate failed (no answer, a connection error) is not asked for this long. */
const restMs = 10_000;
/** Answers about the chunk, not the worker: the worker is asked again for other chunks. */
const chunkAnswers: ReadonlySet<string> = new Set([WorkerErrorCode.ChunkNotFound, WorkerErrorCode.ChunkDirty, WorkerErrorCode.ChunkCorrupt, WorkerErrorCode.StaleChainVersion]);

export interface LocalReadStats {
  /** Reads answered from local files, and their bytes. */
  reads: number;
  bytes: number;
  /** Chunk files located and opened. */
  opened: number;
  /** Reads that went through the chain instead: the chunk was not clean, not here, or failed a check. */
  declined: number;
  /** Blocks that failed their CRC or files cut short: read through the chain, which reports them. */
  damaged: number;
}

interface LocalChunk {
  inodeId: number;
  index: number;
  /** Read as the workers read theirs: what the page cache holds on this thread, the rest on libuv's. */
  file: DiskFile;
  header: ChunkHeader;
  users: number;
  /** No longer kept: closed once its reads are done. */
  dropped: boolean;
  closed: boolean;
}

interface Locating {
  inodeId: number;
  index: number;
  /** A write of this client touched the chunk meanwhile: use the answer for the reads waiting, do not keep it. */
  stale: boolean;
  done: Promise<LocalChunk | undefined>;
}

export interface LocalReadsOptions {
  /** This machine's identity (io/host-id.ts): a worker naming another is not on this machine. */
  hostId: string;
  /** Chunk files kept open at most (default localFilesMaxDefault). */
  filesMax?: number;
  /** Where reads of pooledBytesMin and more are read into, given back by the read's `release` (the mount's receive pool). */
  buffers?: BufferPool;
}

/** Reads this large take a pooled buffer: whole chunks read ahead, which fresh made V8 collect every few. */
const pooledBytesMin = 64 * 1024;

/** What a local read found: the bytes, the chunk's length, and, for a pooled buffer, how to give it back. */
export interface LocalRead {
  data: Uint8Array;
  lengthBytes: number;
  release?: () => void;
}

export class LocalReads {
  private readonly hostId: string;
  private readonly filesMax: number;
  private readonly buffers: BufferPool | undefined;
  /** Kept-open chunk files by `inode:index`, least recently used first. */
  private readonly files = new Map<string, LocalChunk>();
  /** How many of `files` each inode has: forgetting an inode with none costs nothing. */
  private readonly filesPerInode = new Map<number, number>();
  private readonly locating = new Map<string, Locating>();
  /** Chunks read through the chain until this client writes them or the file is opened again, by inode. */
  private readonly misses = new Map<number, Set<number>>();
  private missCount = 0;
  /** Workers on other machines (or offering no locate): never asked again. */
  private readonly elsewhere = new Set<number>();
  /** Workers whose last locate failed, until when (performance.now()): a hung worker costs one wait, not one a chunk. */
  private readonly resting = new Map<number, number>();
  private readonly counts: LocalReadStats = { reads: 0, bytes: 0, opened: 0, declined: 0, damaged: 0 };

  constructor(opts: LocalReadsOptions) {
    this.hostId = opts.hostId;
    this.filesMax = Math.max(1, opts.filesMax ?? localFilesMaxDefault);
    this.buffers = opts.buffers;
  }

  stats(): LocalReadStats {
    return { ...this.counts };
  }

  /**
   * Bytes [offset, min(offset + length, chunk length)) of a chunk from a local file, with the
   * chunk's length; undefined when this read must go through the chain. `members` are the chain's
   * readable members in the order to try; `locate` asks one of their workers.
   */
  async read(inodeId: number, index: number, offset: number, length: number, members: readonly { workerId: number }[], locate: (workerId: number) => Promise<LocateReply>): Promise<LocalRead | undefined> {
    const key = `${inodeId}:${index}`;
    let f = this.files.get(key);
    if (f !== undefined) {
      this.files.delete(key);
      this.files.set(key, f);
    } else {
      if (this.misses.get(inodeId)?.has(index) === true) return this.decline();
      f = await this.located(key, inodeId, index, members, locate);
      if (f === undefined || f.closed) return this.decline();
    }
    f.users++;
    try {
      const r = await this.readFrom(f, offset, length);
      if (r === undefined) {
        this.counts.damaged++;
        this.drop(key, f);
        return this.decline();
      }
      this.counts.reads++;
      this.counts.bytes += r.data.byteLength;
      return r;
    } finally {
      f.users--;
      closeIfDone(f);
    }
  }

  /** Forgets what is kept of an inode's chunks (all, or chunk `index`): this client changes them, or opens the file again. */
  forget(inodeId: number, index?: number): void {
    if (index !== undefined) {
      const key = `${inodeId}:${index}`;
      const f = this.files.get(key);
      if (f !== undefined) this.drop(key, f);
    } else if (this.filesPerInode.has(inodeId)) {
      for (const [key, f] of this.files) if (f.inodeId === inodeId) this.drop(key, f);
    }
    for (const l of this.locating.values()) if (l.inodeId === inodeId && (index === undefined || l.index === index)) l.stale = true;
    const missed = this.misses.get(inodeId);
    if (missed === undefined) return;
    if (index === undefined) {
      this.missCount -= missed.size;
      this.misses.delete(inodeId);
    } else if (missed.delete(index)) {
      this.missCount--;
    }
  }

  /** Closes every kept file (once its reads are done). */
  close(): void {
    for (const [key, f] of this.files) this.drop(key, f);
  }

  private decline(): undefined {
    this.counts.declined++;
    return undefined;
  }

  /** The chunk's local file, located once however many reads wait for it. */
  private located(key: string, inodeId: number, index: number, members: readonly { workerId: number }[], locate: (workerId: number) => Promise<LocateReply>): Promise<LocalChunk | undefined> {
    const going = this.locating.get(key);
    if (going !== undefined) return going.done;
    const l: Locating = { inodeId, index, stale: false, done: Promise.resolve(undefined) };
    l.done = this.locateAndOpen(inodeId, index, members, locate).then((f) => {
      this.locating.delete(key);
      if (f === undefined) {
        if (!l.stale) this.miss(inodeId, index);
      } else if (l.stale) {
        f.dropped = true; // closed after the reads waiting for it
      } else {
        this.keep(key, f);
      }
      return f;
    });
    this.locating.set(key, l);
    return l.done;
  }

  private async locateAndOpen(inodeId: number, index: number, members: readonly { workerId: number }[], locate: (workerId: number) => Promise<LocateReply>): Promise<LocalChunk | undefined> {
    for (const m of members) {
      if (this.elsewhere.has(m.workerId)) continue;
      const rest = this.resting.get(m.workerId);
      if (rest !== undefined && performance.now() < rest) return undefined;
      let r: LocateReply;
      try {
        r = await locate(m.workerId);
      } catch (err) {
        // A worker without chunk.locate is asked no more; one that did not answer rests a while;
        // either way, and for any refusal about the chunk (not clean, not held, damaged), the
        // chain read decides.
        const code = String((err as { code?: unknown }).code);
        if (code === RpcErrorCode.UnknownMethod) {
          this.elsewhere.add(m.workerId);
          continue;
        }
        if (!chunkAnswers.has(code)) this.resting.set(m.workerId, performance.now() + restMs);
        return undefined;
      }
      this.resting.delete(m.workerId);
      if (!isLocateReply(r) || r.hostId !== this.hostId) {
        this.elsewhere.add(m.workerId);
        continue;
      }
      return this.openLocated(r, inodeId, index, m.workerId);
    }
    return undefined;
  }

  /** Opens the file the worker named, if its header is the version it named. */
  private async openLocated(r: LocateReply, inodeId: number, index: number, workerId: number): Promise<LocalChunk | undefined> {
    // Only a file of the chunk's own name, found where the worker said: never a path of its choosing.
    if (!isAbsolute(r.file) || basename(r.file) !== chunkFileName({ inodeId, index }, r.commitVersion, 'chunk')) return undefined;
    let file: DiskFile;
    try {
      file = await nodeDisk.open(r.file, 'read');
    } catch (err) {
      // Files this process may not read (a worker run as another user): none of that worker's will be.
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EACCES' || code === 'EPERM') this.elsewhere.add(workerId);
      return undefined; // else replaced or removed since
    }
    try {
      const h = await readChunkHeader((bytes) => file.read(bytes, 0));
      if (typeof h === 'string' || h.inodeId !== inodeId || h.index !== index || h.version !== r.commitVersion || h.lengthBytes !== r.lengthBytes || h.crc32c !== r.crc32c) throw new Error('another chunk or version');
      this.counts.opened++;
      return { inodeId, index, file, header: h, users: 0, dropped: false, closed: false };
    } catch {
      await file.close().catch(() => undefined);
      return undefined;
    }
  }

  /** The range's bytes, every block they touch checked; undefined if a check or the read failed. */
  private async readFrom(f: LocalChunk, offset: number, length: number): Promise<LocalRead | undefined> {
    const h = f.header;
    const span = blockSpan(h, offset, offset + length);
    if (span === undefined) return { data: new Uint8Array(0), lengthBytes: h.lengthBytes };
    const { firstBlock, from, bytes, to } = span;
    const pool = bytes >= pooledBytesMin ? this.buffers : undefined;
    const taken = pool?.take(bytes);
    let buf: Uint8Array;
    let ok = false;
    try {
      // A file cut short fails the read (EOF): read through the chain.
      const r = await f.file.readChecked(bytes, h.headerBytes + from, taken, h.blockSizeBytes, blockCrcsFrom(h, firstBlock));
      if (r.badBlock >= 0) return undefined;
      buf = r.data;
      ok = true;
    } catch {
      return undefined;
    } finally {
      if (!ok && taken !== undefined) pool!.give(taken);
    }
    const data = buf.subarray(offset - from, to - from);
    return taken === undefined ? { data, lengthBytes: h.lengthBytes } : { data, lengthBytes: h.lengthBytes, release: () => pool!.give(taken) };
  }

  private keep(key: string, f: LocalChunk): void {
    this.files.set(key, f);
    this.filesPerInode.set(f.inodeId, (this.filesPerInode.get(f.inodeId) ?? 0) + 1);
    for (const [k, old] of this.files) {
      if (this.files.size <= this.filesMax) break;
      this.drop(k, old);
    }
  }

  private drop(key: string, f: LocalChunk): void {
    if (this.files.get(key) === f) {
      this.files.delete(key);
      const n = (this.filesPerInode.get(f.inodeId) ?? 1) - 1;
      if (n === 0) this.filesPerInode.delete(f.inodeId);
      else this.filesPerInode.set(f.inodeId, n);
    }
    f.dropped = true;
    closeIfDone(f);
  }

  private miss(inodeId: number, index: number): void {
    if (this.missCount >= missesMax) {
      this.misses.clear();
      this.missCount = 0;
    }
    let set = this.misses.get(inodeId);
    if (set === undefined) this.misses.set(inodeId, (set = new Set()));
    if (!set.has(index)) {
      set.add(index);
      this.missCount++;
    }
  }
}

function closeIfDone(f: LocalChunk): void {
  if (!f.dropped || f.users > 0 || f.closed) return;
  f.closed = true;
  void f.file.close().catch(() => undefined);
}

function isLocateReply(r: unknown): r is LocateReply {
  const x = r as Partial<LocateReply> | null;
  return (
    typeof x === 'object' &&
    x !== null &&
    typeof x.hostId === 'string' &&
    typeof x.file === 'string' &&
    Number.isSafeInteger(x.commitVersion) &&
    Number.isSafeInteger(x.lengthBytes) &&
    Number.isSafeInteger(x.crc32c)
  );
}

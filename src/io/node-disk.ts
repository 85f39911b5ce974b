// The Disk of a real process: node:fs, with whole writes and reads, fdatasync, and directory fsync.

import { Buffer } from 'node:buffer';
import { close, closeSync, constants as fsConstants, fdatasync, fstatSync, ftruncate, openSync, readSync, writeSync } from 'node:fs';
import { promisify } from 'node:util';
import { mkdir, open, readFile, readdir, rename, stat, statfs, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { firstBadCrc, type DirectIo, type Disk, type DiskFile, type DiskSpace, type OpenMode } from './disk.ts';
import { BufferPool } from '../buffer-pool.ts';
import { addressOffset, cachedReadBytesMax, checkedRead, checkedReadsAvailable, dropCached, readCached } from './page-cache.ts';

const flags: Record<OpenMode, string> = { read: 'r', update: 'r+', create: 'wx+' };
/**
 * New files and directories are the owner's alone: the journal, chunks and snapshots are the
 * cluster's data, readable by no other local user (the umask can only narrow this further).
 */
export const fileMode = 0o600;
export const dirMode = 0o700;

/** This process's reads of open files (not the synchronous ones): answered from the page cache on the event loop, or sent (at least in part) to libuv's I/O threads. */
export const fileReadCounts = { pageCache: 0, ioThreads: 0 };

class NodeFile implements DiskFile {
  readonly path: string;
  private readonly fh: FileHandle | undefined;
  private fd: number | undefined;
  /** Checked reads in flight: they use the descriptor without the FileHandle knowing, so it is closed after them. */
  private checking = 0;
  private checksDone: PromiseWithResolvers<void> | undefined;

  constructor(file: string, fh: FileHandle | undefined, fd: number) {
    this.path = file;
    this.fh = fh;
    this.fd = fd;
  }

  async write(buf: Uint8Array, position: number): Promise<void> {
    if (this.fh === undefined) return this.writeSync(buf, position);
    const fh = this.handle();
    for (let done = 0; done < buf.byteLength; ) {
      const { bytesWritten } = await fh.write(buf, done, buf.byteLength - done, position + done);
      if (bytesWritten <= 0) throw new Error(`${this.path}: write made no progress at offset ${position + done}`);
      done += bytesWritten;
    }
  }

  async writev(bufs: readonly Uint8Array[], position: number): Promise<void> {
    if (this.fh === undefined) {
      for (const b of bufs) {
        this.writeSync(b, position);
        position += b.byteLength;
      }
      return;
    }
    const fh = this.handle();
    let rest = bufs.filter((b) => b.byteLength > 0);
    while (rest.length > 0) {
      const { bytesWritten } = await fh.writev(rest as Uint8Array[], position);
      if (bytesWritten <= 0) throw new Error(`${this.path}: write made no progress at offset ${position}`);
      position += bytesWritten;
      // A short write: go on from the first byte not written.
      let skip = bytesWritten;
      while (rest.length > 0 && skip >= rest[0].byteLength) {
        skip -= rest[0].byteLength;
        rest = rest.slice(1);
      }
      if (rest.length > 0 && skip > 0) rest = [rest[0].subarray(skip), ...rest.slice(1)];
    }
  }

  writeSync(buf: Uint8Array, position: number): void {
    const fd = this.descriptor();
    for (let done = 0; done < buf.byteLength; ) {
      const n = writeSync(fd, buf, done, buf.byteLength - done, position + done);
      if (n <= 0) throw new Error(`${this.path}: write made no progress at offset ${position + done}`);
      done += n;
    }
  }

  async read(length: number, position: number, into?: Uint8Array): Promise<Uint8Array> {
    if (this.fh === undefined) return readInto(this.readSync(length, position), into);
    const fh = this.handle();
    const buf = into === undefined ? Buffer.allocUnsafe(length) : intoView(into, length);
    // What the page cache holds is copied here; the I/O threads read the rest (or report the error).
    let done = readCached(this.descriptor(), buf, position);
    if (done === length) {
      fileReadCounts.pageCache++;
      return buf;
    }
    fileReadCounts.ioThreads++;
    while (done < length) {
      const { bytesRead } = await fh.read(buf, done, length - done, position + done);
      if (bytesRead <= 0) throw endOfFile(this.path, position + done);
      done += bytesRead;
    }
    return buf;
  }

  async readChecked(length: number, position: number, into: Uint8Array | undefined, blockBytes: number, crcs: Uint32Array): Promise<{ data: Uint8Array; badBlock: number }> {
    // Reads the page cache may answer on the calling thread stay there: cheaper than any hand-off.
    if (this.fh === undefined || length <= cachedReadBytesMax || !checkedReadsAvailable()) {
      const data = await this.read(length, position, into);
      return { data, badBlock: firstBadCrc(data, blockBytes, crcs) };
    }
    const buf = into === undefined ? Buffer.allocUnsafe(length) : intoView(into, length);
    const fd = this.descriptor();
    fileReadCounts.ioThreads++;
    this.checking++;
    let r: number | string;
    try {
      r = await checkedRead(fd, buf, position, blockBytes, crcs);
    } finally {
      if (--this.checking === 0) {
        this.checksDone?.resolve();
        this.checksDone = undefined;
      }
    }
    if (r === 'EOF') throw Object.assign(new Error(`${this.path}: ends before offset ${position + length}`), { code: 'EOF' });
    if (typeof r === 'string') throw Object.assign(new Error(`${this.path}: read of ${length} bytes at offset ${position} failed: ${r}`), { code: r });
    return { data: buf, badBlock: r };
  }

  /** Settles once no checked read uses the descriptor. */
  private afterChecks(): Promise<void> {
    if (this.checking === 0) return Promise.resolve();
    this.checksDone ??= Promise.withResolvers<void>();
    return this.checksDone.promise;
  }

  dropCache(): void {
    dropCached(this.descriptor());
  }

  readSync(length: number, position: number): Uint8Array {
    const fd = this.descriptor();
    const buf = Buffer.allocUnsafe(length);
    for (let done = 0; done < length; ) {
      const n = readSync(fd, buf, done, length - done, position + done);
      if (n <= 0) throw endOfFile(this.path, position + done);
      done += n;
    }
    return buf;
  }

  async size(): Promise<number> {
    if (this.fh === undefined) return this.sizeSync();
    return (await this.handle().stat()).size;
  }

  sizeSync(): number {
    return fstatSync(this.descriptor()).size;
  }

  truncate(length: number): Promise<void> {
    if (this.fh === undefined) return ftruncateAsync(this.descriptor(), length);
    return this.handle().truncate(length);
  }

  sync(): Promise<void> {
    if (this.fh === undefined) return fdatasyncAsync(this.descriptor());
    return this.handle().datasync();
  }

  async close(): Promise<void> {
    if (this.fd === undefined) return;
    const fd = this.fd;
    this.fd = undefined;
    await this.afterChecks();
    if (this.fh !== undefined) await this.fh.close();
    else await closeAsync(fd);
  }

  closeSync(): void {
    if (this.fd === undefined) return;
    const fd = this.fd;
    this.fd = undefined;
    if (this.fh === undefined) closeSync(fd);
    else void this.afterChecks().then(() => this.fh!.close());
  }

  private handle(): FileHandle {
    if (this.fd === undefined || this.fh === undefined) throw closed(this.path);
    return this.fh;
  }


  private descriptor(): number {
    if (this.fd === undefined) throw closed(this.path);
    return this.fd;
  }
}

function endOfFile(file: string, offset: number): Error {
  return Object.assign(new Error(`${file}: unexpected end of file at offset ${offset}`), { code: 'EOF' });
}

const fdatasyncAsync = promisify(fdatasync);
const ftruncateAsync = promisify(ftruncate);
const closeAsync = promisify(close);

function closed(file: string): Error {
  return Object.assign(new Error(`${file}: used after close`), { code: 'EBADF' });
}

/** Direct writes' alignment: a page, which covers every device's logical block (512 B or 4 KiB). */
const directAlignBytes = 4096;

/** A buffer of `bytes` at a page-aligned address: a view of one a page larger, from where the addon says the alignment falls. */
function alignedBuffer(bytes: number): Buffer {
  const raw = Buffer.allocUnsafeSlow(bytes + directAlignBytes);
  const skip = (directAlignBytes - addressOffset(raw, directAlignBytes)!) % directAlignBytes;
  return raw.subarray(skip, skip + bytes);
}

/** Direct I/O through node:fs, where the addon can align buffers (Linux has O_DIRECT). */
function nodeDirectIo(): DirectIo | undefined {
  const probe = new Uint8Array(1);
  if (fsConstants.O_DIRECT === undefined || addressOffset(probe, directAlignBytes) === undefined) return undefined;
  // Kept for reuse: a fresh buffer costs page faults on first touch, which on a VM that returns
  // free memory to its host cost more than the copy into it. In classes of 1 MiB (a chunk and its
  // header fit a few), 64 MiB idle at most.
  const idleBytesMax = 64 * 1024 * 1024;
  const buffers = new BufferPool({ idleBytesMax, classBytesMax: idleBytesMax, granularityBytes: 1024 * 1024, allocate: alignedBuffer });
  const createFlags = fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_RDWR | fsConstants.O_DIRECT;
  return {
    alignBytes: directAlignBytes,
    async create(file) {
      const fh = await open(file, createFlags, fileMode);
      return new NodeFile(file, fh, fh.fd);
    },
    take: (bytes) => buffers.take(bytes),
    give: (buf) => buffers.give(buf as Buffer), // the pool takes back only the buffers it made
  };
}

export const nodeDisk: Disk = {
  directIo: nodeDirectIo(),
  async open(file, mode) {
    const fh = await open(file, flags[mode], fileMode);
    return new NodeFile(file, fh, fh.fd);
  },
  openSync(file, mode) {
    return new NodeFile(file, undefined, openSync(file, flags[mode], fileMode));
  },
  readFile: (file) => readFile(file),
  readdir: (dir) => readdir(dir),
  mkdirs: (dir) => mkdir(dir, { recursive: true, mode: dirMode }),
  rename: (from, to) => rename(from, to),
  unlink: (file) => unlink(file),
  async syncDir(dir) {
    const fh = await open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  },
  async statfs(dir): Promise<DiskSpace> {
    const [s, st] = await Promise.all([statfs(dir), stat(dir)]);
    return { bytesTotal: s.blocks * s.bsize, bytesFree: s.bavail * s.bsize, device: st.dev };
  },
};

/** The first `length` bytes of `into`, which must hold them. */
function intoView(into: Uint8Array, length: number): Uint8Array {
  if (into.byteLength < length) throw new RangeError(`read of ${length} bytes into a buffer of ${into.byteLength}`);
  return into.subarray(0, length);
}

function readInto(data: Uint8Array, into: Uint8Array | undefined): Uint8Array {
  if (into === undefined) return data;
  const view = intoView(into, data.byteLength);
  view.set(data);
  return view;
}

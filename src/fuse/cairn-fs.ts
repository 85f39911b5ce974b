// The file system a FUSE mount serves, over the client library: each operation as an async method
// that returns its result or throws (errno.ts turns the error into the errno the program sees), so
// that it runs and is tested without a kernel. mount.ts binds these methods to fuse-native.
//
// Files are named by path, as libfuse's high-level API does. A file opened for writing holds a write
// session on the masters (its chunks are never collected meanwhile, even if it is unlinked) and a
// FileWriter that gathers writes into chunk-sized ones; `flush` (every close(2)) and `fsync` wait for
// the writes and commit the length, so another mount that opens the file afterwards sees them
// (close-to-open). Reads of a file this mount is writing see those writes.

import type { LocalReadStats } from '../client/local-reads.ts';
import type { Caller, Layout } from '../meta/commands.ts';
import { isDeviceType, type ChainInfo, type CloseSessionValue, type CreateValue, type DirEntry, type InodeAttr, type InodeType, type ReaddirPage, type SessionValue, type SpecialInodeType, type UnlinkValue, type StatFs, type TargetInfo } from '../meta/namespace-state.ts';
import { endWriteSession, fileRef, FileReader, FileWriter, truncateFile, WriteBudget, type DataClient, type FileRef, type MasterClient } from '../client/index.ts';
import { MetaError, FsErrorCode } from '../meta/errors.ts';
import { xattrNamePrefix } from '../meta/commands.ts';
import { BufferPool } from '../buffer-pool.ts';
import { ChunkReadAhead, ReadAheadBudget } from './read-ahead.ts';
import { mountSpace } from './space.ts';
import { DirHolds, newHolder, split } from './dir-holds.ts';
import { namespaceCommandOps, namespaceQueryOps } from '../meta/commands.ts';
import type { WorkerHealth } from '../worker/protocol.ts';

/** What getattr gives the kernel (fuse-native's stat fields; times in ms). */
export interface Stat {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  nlink: number;
  ino: number;
  rdev: number;
  blksize: number;
  blocks: number;
  atime: number;
  mtime: number;
  ctime: number;
}

export interface StatFsResult {
  bsize: number;
  frsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  favail: number;
  namemax: number;
}

export interface CairnFsOptions {
  meta: MasterClient;
  data: DataClient;
  /**
   * Who owns what the mount creates. fuse-native does not tell the daemon which process asks, so
   * the kernel checks permissions (default_permissions) and new inodes belong to this user.
   */
  owner: Caller;
  /** Entries readdir hands the kernel at most (fuse-native takes one array): a bound on memory. */
  readdirEntriesMax?: number;
  /** Bytes one open file keeps in flight to the workers at most. */
  writeBytesMax?: number;
  /** Bytes all open files keep in flight to the workers together at most (writes wait their turn). */
  writesBytesMax?: number;
  /** Whole chunks a sequential reader fetches ahead (counting the one it reads); 0: no read-ahead. */
  readAheadChunks?: number;
  /** Bytes the read-ahead of every open file holds together at most. */
  readAheadBytesMax?: number;
  /**
   * How long the attributes a create or unlink answered for its directory stand in for a getattr
   * of that directory (the kernel asks for them after every change in it); 0: never.
   */
  changedDirAttrMs?: number;
  /**
   * How long a directory's listing (every entry with its attributes, read when the kernel looks up
   * many names in it) answers lookups of names in it: at most the kernel's own attribute and entry
   * timeouts, so that nothing is older than the kernel could keep it; 0: never listed.
   */
  listingMs?: number;
  /**
   * How long the end of a write session with nothing left to commit waits, to go to the masters
   * with the others ending meanwhile (sessionCloseDelayMsDefault); 0: at once.
   */
  sessionCloseDelayMs?: number;
  /**
   * Creates and unlinks in one directory within a second after which the mount takes the
   * directory and answers them itself (dir-holds.ts); 0: never (each goes to the masters).
   */
  holdAfterChanges?: number;
  /** A held directory with no change for this long is given back (holdIdleMsDefault). */
  holdIdleMs?: number;
  /** How long a held directory's batch waits for more changes (batchLingerMsDefault). */
  holdBatchLingerMs?: number;
  log?: (level: 'info' | 'warn' | 'error', message: string) => void;
}

export const readdirEntriesMaxDefault = 1_000_000;
/**
 * A release's session end is one more journal mutation, and each one in flight makes the next
 * create in the directory wait for its fsync round too (6.7 ms a create, against 4.0 ms with no
 * release in between, one process). Ended together, they cost a create one round now and then.
 */
export const sessionCloseDelayMsDefault = 50;
/** The longest a directory's attributes from a change in it answer its getattr (and the default). */
export const changedDirAttrMsMax = 100;
/** A time utimens sets: ms since the epoch, the current time, or none (the time stays). */
export type UtimeMs = number | 'now' | 'omit';

/** Chunks a sequential reader has in flight by default (4 MiB chunks: 16 MiB a handle). */
export const readAheadChunksDefault = 4;
/** What all read-ahead holds at most by default. */
export const readAheadBytesMaxDefault = 256 * 1024 * 1024;
/** What a mount's writes keep in flight together by default: 16 files' worth at 4 chunks of 4 MiB each. */
export const writesBytesMaxDefault = 256 * 1024 * 1024;
/** Kernel writes this large are copied into pooled buffers (smaller ones would waste most of one). */
const pooledWriteBytesMin = 64 * 1024;
/** The largest pooled write buffer: the largest write the kernel sends (1 MiB through libfuse 3). */
const writeBufferBytesMax = 1024 * 1024;
const writeBuffersIdleBytesMax = 32 * 1024 * 1024;
/** Entries per readdir call to the masters. */
const readdirPageEntries = 1_000;
/** Lookups in one directory within a listing's life after which the mount lists it (a scan: ls -l, find, rsync). */
const listingAfterLookups = 8;
/**
 * Entries a listing holds at most (a bigger directory's first ones), and directories listed at
 * once: about 300 bytes of heap an entry, so the listings hold some 20 MiB at most.
 */
const listingEntriesMax = 16_384;
const listingsMax = 4;
const typeBits: Record<InodeType, number> = { file: 0o100000, dir: 0o040000, symlink: 0o120000, fifo: 0o010000, socket: 0o140000, chardev: 0o020000, blockdev: 0o060000 };
/** The inode type of a mode's S_IFMT bits, for mknod. */
const specialTypeOf = new Map<number, SpecialInodeType>([[0o010000, 'fifo'], [0o140000, 'socket'], [0o020000, 'chardev'], [0o060000, 'blockdev']]);
const typeMask = 0o170000;
const O_ACCMODE = 3;
const O_RDONLY = 0;
const O_TRUNC = 0o1000;
/** How near the current time a pair of equal times must be to be taken for UTIME_NOW (utimens). */
const touchSlackMs = 5_000;
/** The block size statfs reports (4 KiB, as local file systems do). */
const blockBytes = 4096;
/** Names longer than this are refused by the masters too (ENAMETOOLONG). */
const nameBytesMax = 255;
/** Inode count statfs reports as the total: the masters have no fixed table. (The addon passes 32 bits: 2^32 was 0.) */
const inodesMax = 2 ** 32 - 1;

/** The largest file: a length must be exact as a JavaScript number (the masters keep lengths so). */
const fileBytesMax = Number.MAX_SAFE_INTEGER;

/** An extended attribute outside user.*, which cairn does not keep. */
function notKept(name: string): MetaError {
  return new MetaError(FsErrorCode.EINVAL, `only user.* extended attributes are kept, not ${name}`, { errno: 'EOPNOTSUPP' });
}

/** EFBIG for a length past the largest file, as a local file system answers past its limit. */
function mustFit(endBytes: number): void {
  if (endBytes > fileBytesMax) throw new MetaError(FsErrorCode.EINVAL, `a file may hold at most ${fileBytesMax} bytes`, { errno: 'EFBIG' });
}

/** A directory's entries with their attributes, as the masters answered them at atMs (see lookupListed). */
interface Listing {
  atMs: number;
  /** The mount's change generation when the listing was asked for. */
  generation: number;
  /** Absent while being read. */
  entries?: Map<string, InodeAttr>;
}

interface Handle {
  path: string;
  inodeId: number;
  layout: Layout;
  /** Length and chunks as opened (readers read this version: close-to-open). */
  sizeBytes: number;
  chunks: number[] | null;
  /** Open for writing: the session and the writer. */
  sessionId?: string;
  writer?: FileWriter;
  /** The length last committed for this session. */
  committedBytes: number;
  /** Written since the last commit. */
  dirty?: boolean;
  /** A commit of the length under way (a flush by any path): the others wait for its outcome. */
  committing?: Promise<void>;
  /** Whole chunks fetched ahead of a sequential reader (handles not open for writing). */
  readAhead?: ChunkReadAhead;
  /** Its descriptor (the key in CairnFs.handles). */
  fd?: number;
  /** The attributes create answered, until libfuse's getattr right after it takes them. */
  createdAttr?: InodeAttr;
  /**
   * A file this mount created in a held directory, until its first write: its create's landing.
   * The write session opens then (as `creator`), and the layout is known.
   */
  lazy?: { landed: Promise<CreateValue>; creator: Caller | undefined; opening?: Promise<void> };
  /** Times utimens set while it had writes to commit: set right after that commit (deferTimes). */
  pendingTimes?: PendingTimes;
}

/** Explicit times a utimens asked for, and as whom (the masters check it then). */
interface PendingTimes {
  atimeMs?: number;
  mtimeMs?: number;
  caller: Caller | undefined;
}

/** A lazily created file's layout until its create landed: never used for I/O (see Handle.lazy). */
const unknownLayout: Layout = { chunkSizeBytes: 0, stripeWidth: 0, chainTableId: 0, chainTableVersion: 0, shuffleSeed: 0 };

export class CairnFs {
  private readonly meta: MasterClient;
  private readonly data: DataClient;
  private readonly owner: Caller;
  private readonly readdirEntriesMax: number;
  private readonly writeBytesMax: number | undefined;
  private readonly writeBudget: WriteBudget;
  private readonly readAheadChunks: number;
  private readonly readAheadBudget: ReadAheadBudget;
  private readonly log: NonNullable<CairnFsOptions['log']>;
  private readonly changedDirAttrMs: number;
  /** Directories this mount just created or unlinked in: their attributes as that change left them. */
  private readonly changedDirs = new Map<string, { attr: InodeAttr; atMs: number }>();
  /** Open handles by inode (local reads' files are kept while one is open). */
  private readonly openPerInode = new Map<number, number>();
  private readonly handles = new Map<number, Handle>();
  /** Set once releaseAll ran (the unmount): handles gone since are not the program's fault. */
  private released = false;
  /** Open write handles by inode: getattr and reads of that inode see their writes. */
  private readonly writers = new Map<number, Set<Handle>>();
  private readonly listingMs: number;
  private readonly sessionCloseDelayMs: number;
  /** Sessions whose end waits to go to the masters together (closeSessionSoon). */
  private readonly sessionsEnding: string[] = [];
  private sessionsEndingTimer: NodeJS.Timeout | undefined;
  /** Directories listed with their entries' attributes, by path (see lookupListed). */
  private readonly listings = new Map<string, Listing>();
  /** Lookups the masters answered per directory lately: enough of them, and the directory is listed. */
  private readonly lookupsIn = new Map<string, { count: number; sinceMs: number; generation: number }>();
  /** Goes up at the start and end of every change this mount makes: a listing read across one is not used. */
  private generation = 0;
  private nextFd = 1;
  /**
   * Told of a descriptor that stops being clean (isClean), synchronously, before the change that
   * could make its flush do something: the mount's addon answers a clean one's flush itself.
   */
  onUnclean: ((fd: number) => void) | undefined;
  /**
   * The clean descriptors the kernel released that the mount's addon answered itself (isClean), since
   * the last call: released here when asked for (releaseDeferred), as a kernel's release may come late.
   */
  releasedElsewhere: (() => number[]) | undefined;
  /** Directories this mount holds (dir-holds.ts). */
  readonly holds: DirHolds;
  /** Reads since the mount started: answered from read-ahead, or sent to the workers (/metrics). */
  readonly readStats = { readAheadHits: 0, readAheadMisses: 0 };

  /** What the local reads answered (undefined when the mount makes none: --no-local-reads). */
  localReadStats(): LocalReadStats | undefined {
    return this.data.localReadStats();
  }
  /** Directories listed, and lookups answered from a listing (/metrics). */
  readonly lookupStats = { listings: 0, listed: 0 };
  /**
   * Where the kernel's large writes are copied, each buffer back once the chunk writes holding it
   * succeeded (FileWriter.write's done): a fresh 128 KiB buffer for each kept V8's collector at a
   * fifth of the daemon's time during sequential writes.
   */
  private readonly writeBuffers = new BufferPool({ idleBytesMax: writeBuffersIdleBytesMax, classBytesMax: writeBufferBytesMax });

  constructor(opts: CairnFsOptions) {
    const holder = newHolder();
    this.meta = withHolder(opts.meta, holder, opts.owner);
    this.data = opts.data;
    this.owner = opts.owner;
    this.readdirEntriesMax = opts.readdirEntriesMax ?? readdirEntriesMaxDefault;
    this.writeBytesMax = opts.writeBytesMax;
    this.writeBudget = new WriteBudget(opts.writesBytesMax ?? writesBytesMaxDefault);
    this.readAheadChunks = opts.readAheadChunks ?? readAheadChunksDefault;
    this.readAheadBudget = new ReadAheadBudget(opts.readAheadBytesMax ?? readAheadBytesMaxDefault);
    this.changedDirAttrMs = Math.min(opts.changedDirAttrMs ?? changedDirAttrMsMax, changedDirAttrMsMax);
    this.listingMs = opts.listingMs ?? 0;
    this.sessionCloseDelayMs = opts.sessionCloseDelayMs ?? sessionCloseDelayMsDefault;
    this.log = opts.log ?? (() => undefined);
    this.holds = new DirHolds({
      meta: this.meta,
      holder,
      changesToHold: opts.holdAfterChanges ?? 0,
      ...(opts.holdIdleMs === undefined ? {} : { idleMs: opts.holdIdleMs }),
      ...(opts.holdBatchLingerMs === undefined ? {} : { lingerMs: opts.holdBatchLingerMs }),
      log: this.log,
      beforeGiveBack: async (dir) => {
        this.releaseDeferred(); // no write session for a file already closed
        const lazy = [...this.handles.values()].filter((h) => h.lazy !== undefined && split(h.path)[0] === dir);
        await Promise.all(lazy.map((h) => this.openLazy(h).catch(() => undefined))); // a failure is the handle's own
      },
    });
  }

  /** The caller field of a namespace request: the asking process, else the client's own caller. */
  private as(caller: Caller | undefined): { caller?: Caller } {
    return caller === undefined ? {} : { caller };
  }

  /** Who a request acts as: the asking process, else the client's own caller, else the mount's owner. */
  private callerOf(caller: Caller | undefined): Caller {
    return caller ?? this.meta.caller ?? this.owner;
  }

  /** Who a new inode belongs to: the asking process, else the mount's owner. */
  private ownerFor(caller: Caller | undefined): { uid: number; gid: number } {
    const c = caller ?? this.owner;
    return { uid: c.uid, gid: c.gid };
  }

  async getattr(path: string, caller?: Caller): Promise<Stat> {
    const local = this.getattrLocal(path);
    if (local === 'absent') throw new MetaError(FsErrorCode.ENOENT, `'${path}' does not exist`);
    return local ?? this.getattrAsked(path, caller);
  }

  /** Whether `path` is a directory this mount holds and knows the attributes of (see DirHolds). */
  isHeldDir(path: string): boolean {
    return this.holds.dirAttr(path) !== undefined;
  }

  /**
   * getattr's answer when the daemon has it without the masters (so without the caller, whose
   * groups cost a read of /proc), 'absent' when it knows there is no such name (a held
   * directory's), else undefined: then getattrAsked.
   */
  getattrLocal(path: string): Stat | 'absent' | undefined {
    const held = this.holds.lookup(path) ?? this.holds.dirAttr(path);
    if (held !== undefined) return held === 'absent' ? held : this.toStat(held, this.localLength(held.inodeId));
    const changed = this.changedDirs.get(path);
    if (changed !== undefined) {
      this.changedDirs.delete(path);
      // The kernel drops a directory's attributes after each create or unlink in it and asks
      // again before the next lookup there: the change's own answer, if recent, is that answer.
      if (performance.now() - changed.atMs <= this.changedDirAttrMs) return this.toStat(changed.attr, undefined);
    }
    const listed = this.lookupListed(path);
    return listed === undefined ? undefined : this.toStat(listed, this.localLength(listed.inodeId));
  }

  async getattrAsked(path: string, caller?: Caller): Promise<Stat> {
    await this.holds.settle(path);
    const attr = await this.meta.query<InodeAttr>('meta.query', { op: 'stat', path, ...this.as(caller) });
    return this.toStat(attr, this.localLength(attr.inodeId));
  }

  /**
   * A name's attributes from its directory's listing, if one is fresh, else undefined (ask the
   * masters). A listing is read in the background once the masters answered listingAfterLookups
   * lookups in a directory within listingMs, and it answers only names it holds: a name it lacks
   * is asked for, so a file another mount made is found at once, as without it. What it answers is
   * at most listingMs old (the kernel's own caches keep attributes that long), and nothing read
   * across a change this mount made is used. The kernel checks the caller's permissions on the
   * directory itself (default_permissions) before it looks a name up.
   */
  private lookupListed(path: string): InodeAttr | undefined {
    if (this.listingMs === 0 || path === '/') return undefined;
    const slash = path.lastIndexOf('/');
    const dir = slash === 0 ? '/' : path.slice(0, slash);
    const now = performance.now();
    const listing = this.listings.get(dir);
    if (listing !== undefined) {
      // While it is being read, the masters answer.
      if (listing.generation === this.generation && now - listing.atMs < this.listingMs) {
        const attr = listing.entries?.get(path.slice(slash + 1));
        if (attr !== undefined) this.lookupStats.listed++;
        return attr;
      }
      this.listings.delete(dir);
    }
    // Lookups between changes only: a directory being filled or emptied is not listed over and over.
    const seen = this.lookupsIn.get(dir);
    if (seen === undefined || seen.generation !== this.generation || now - seen.sinceMs >= this.listingMs) {
      this.lookupsIn.delete(dir);
      this.lookupsIn.set(dir, { count: 1, sinceMs: now, generation: this.generation });
      if (this.lookupsIn.size > listingsMax * 4) this.lookupsIn.delete(this.lookupsIn.keys().next().value!);
      return undefined;
    }
    if (++seen.count >= listingAfterLookups) {
      this.lookupsIn.delete(dir);
      this.list(dir);
    }
    return undefined;
  }

  /** Reads a directory's entries with their attributes, in the background (see lookupListed). */
  private list(dir: string): void {
    const listing: Listing = { atMs: performance.now(), generation: this.generation };
    this.lookupStats.listings++;
    this.listings.set(dir, listing);
    if (this.listings.size > listingsMax) this.listings.delete(this.listings.keys().next().value!);
    void (async () => {
      const entries = new Map<string, InodeAttr>();
      let after: string | undefined;
      do {
        const page = await this.meta.query<ReaddirPage>('meta.query', { op: 'readdir', path: dir, limit: readdirPageEntries, attrs: true, ...(after === undefined ? {} : { after }) });
        for (const e of page.entries) if (e.attr !== undefined) entries.set(e.name, e.attr);
        after = page.next;
      } while (after !== undefined && entries.size < listingEntriesMax);
      if (this.listings.get(dir) === listing) listing.entries = entries;
    })().catch(() => {
      // Not listed (a directory the mount may not read, or no leader): lookups ask the masters,
      // and the directory is not tried again before the listing would have expired.
      if (this.listings.get(dir) === listing) listing.entries = new Map();
    });
  }

  private mutate<T>(method: string, body: object): Promise<T> {
    return this.changing(() => this.meta.mutate<T>(method, body));
  }

  /** A change through this mount: listings read before or during it are not used. */
  private async changing<T>(change: () => Promise<T>): Promise<T> {
    this.generation++;
    try {
      return await change();
    } finally {
      this.generation++;
    }
  }

  async readdir(path: string, caller?: Caller): Promise<string[]> {
    await this.holds.settle(path);
    const names = ['.', '..'];
    let after: string | undefined;
    for (;;) {
      const page = await this.meta.query<ReaddirPage>('meta.query', { op: 'readdir', path, limit: readdirPageEntries, ...(after === undefined ? {} : { after }), ...this.as(caller) });
      for (const e of page.entries as DirEntry[]) names.push(e.name);
      if (names.length - 2 > this.readdirEntriesMax) {
        this.log('warn', `readdir ${path}: more than ${this.readdirEntriesMax} entries (--readdir-max); listing refused with EOVERFLOW`);
        throw new MetaError(FsErrorCode.EINVAL, 'directory too large', { errno: 'EOVERFLOW' });
      }
      if (page.next === undefined) return names;
      after = page.next;
    }
  }

  async readlink(path: string, caller?: Caller): Promise<string> {
    await this.holds.settle(path);
    return this.meta.query<string>('meta.query', { op: 'readlink', path, ...this.as(caller) });
  }

  /** What the masters answered for a directory after a create or unlink in it (see getattr). */
  private dirChanged(path: string, attr: InodeAttr | undefined): void {
    if (attr === undefined || this.changedDirAttrMs === 0) return;
    this.changedDirs.set(path.slice(0, path.lastIndexOf('/')) || '/', { attr, atMs: performance.now() });
  }

  /** Runs a change that may alter directories' attributes: none answers from a change before it. */
  private async changingDirs<T>(change: () => Promise<T>): Promise<T> {
    this.changedDirs.clear();
    try {
      return await change();
    } finally {
      this.changedDirs.clear();
    }
  }

  async mkdir(path: string, mode: number, caller?: Caller): Promise<void> {
    mustBeUtf8(path);
    await this.holds.settle(path);
    const made = await this.changingDirs(() => this.mutate<InodeAttr>('meta.mutate', { op: 'mkdir', path, mode: mode & 0o7777, ...this.ownerFor(caller), parents: false, ...this.as(caller) }));
    this.holds.changed(path, made);
  }

  async rmdir(path: string, caller?: Caller): Promise<void> {
    await this.holds.settle(path);
    await this.holds.releaseUnder(path);
    await this.changingDirs(() => this.mutate('meta.mutate', { op: 'rmdir', path, ...this.as(caller) }));
    this.holds.changed(path, null);
  }

  async unlink(path: string, caller?: Caller): Promise<void> {
    const open = [...this.handles.values()].filter((h) => h.path === path);
    // A file open here goes through the masters: its handles keep it (their sessions open first).
    if (open.length === 0 && this.holds.unlink(path, caller ?? this.meta.caller ?? this.owner)) {
      this.generation++; // listings read before are not used
      return;
    }
    for (const h of open) if (h.lazy !== undefined) await this.openLazy(h);
    await this.holds.settle(path);
    const gone = await this.mutate<UnlinkValue>('meta.mutate', { op: 'unlink', path, ...this.as(caller) });
    this.dirChanged(path, gone.parent);
    this.holds.changed(path, null);
    this.holds.noteChange(path);
  }

  /**
   * Replaces what is at `to`, or with `noReplace` (renameat2's RENAME_NOREPLACE) fails with EEXIST
   * if something is there: the masters check that as they rename, so a name another mount made
   * meanwhile is not replaced either.
   */
  async rename(from: string, to: string, caller?: Caller, noReplace = false): Promise<void> {
    mustBeUtf8(to);
    // A file open here that the rename replaces keeps its data through its session: it opens first.
    for (const h of this.handles.values()) if (h.path === to && h.lazy !== undefined) await this.openLazy(h);
    await this.holds.settle(from);
    await this.holds.settle(to);
    // A directory moved or replaced: the directories held at or below it are named by old paths.
    await this.holds.releaseUnder(from);
    await this.holds.releaseUnder(to);
    this.holds.changed(to, 'stale'); // what it replaces: its other links' count
    await this.changingDirs(() => this.mutate('meta.mutate', { op: 'rename', from, to, ...(noReplace ? { replacing: 0 } : {}), ...this.as(caller) }));
    for (const h of this.handles.values()) if (h.path === from) h.path = to;
    this.holds.changed(from, null);
    this.holds.changed(to, 'unknown');
  }

  async symlink(target: string, path: string, caller?: Caller): Promise<void> {
    mustBeUtf8(path);
    await this.holds.settle(path);
    const made = await this.changingDirs(() => this.mutate<InodeAttr>('meta.mutate', { op: 'symlink', path, target, ...this.ownerFor(caller), ...this.as(caller) }));
    this.holds.changed(path, made);
  }

  /** FIFOs, sockets and device nodes: names with attributes (the kernel serves them when opened). */
  async mknod(path: string, mode: number, rdev: number, caller?: Caller): Promise<void> {
    mustBeUtf8(path);
    const type = specialTypeOf.get(mode & typeMask);
    if (type === undefined) throw new MetaError(FsErrorCode.EINVAL, `mknod of a type cairn does not store (mode ${(mode & typeMask).toString(8)})`, { errno: 'EPERM' });
    await this.holds.settle(path);
    const made = await this.changingDirs(() => this.mutate<InodeAttr>('meta.mutate', { op: 'mknod', path, type, mode: mode & 0o7777, ...this.ownerFor(caller), rdev: isDeviceType(type) ? rdev : 0, ...this.as(caller) }));
    this.holds.changed(path, made);
  }

  async link(existing: string, path: string, caller?: Caller): Promise<void> {
    mustBeUtf8(path);
    await this.holds.settle(existing);
    await this.holds.settle(path);
    const made = await this.changingDirs(() => this.mutate<InodeAttr>('meta.mutate', { op: 'link', existing, path, ...this.as(caller) }));
    this.holds.changed(path, made);
    this.holds.changed(existing, 'stale'); // its link count
  }

  async chmod(path: string, mode: number, caller?: Caller): Promise<void> {
    this.changedDirs.delete(path); // the kernel holds the inode's lock: no change in it runs meanwhile
    await this.attrsChange(path, () => this.chmodAsked(path, mode, caller));
  }

  private async chmodAsked(path: string, mode: number, caller: Caller | undefined): Promise<void> {
    try {
      await this.mutate('meta.mutate', { op: 'setattr', path, mode: mode & 0o7777, ...this.as(caller) });
    } catch (err) {
      // A write by another user makes the kernel clear the set-id bits (ATTR_KILL_SUID), a change
      // chmod(2) would refuse them; the kernel already refused any other chmod by a non-owner.
      if ((err as { code?: string }).code !== FsErrorCode.EPERM || caller === undefined) throw err;
      const attr = await this.meta.query<InodeAttr>('meta.query', { op: 'stat', path });
      const clearsSetIdOnly = (attr.mode & 0o6000) !== 0 && (mode & 0o7777) === (attr.mode & ~0o6000 & 0o7777);
      if (!clearsSetIdOnly) throw err;
      await this.mutate('meta.mutate', { op: 'setattr', path, mode: mode & 0o7777 });
    }
  }

  /** uid or gid of -1 (as 2^32 - 1 from the kernel) leaves that one unchanged. */
  async chown(path: string, uid: number, gid: number, caller?: Caller): Promise<void> {
    this.changedDirs.delete(path);
    const keep = (id: number): boolean => id === -1 || id === 0xffff_ffff;
    if (keep(uid) && keep(gid)) return;
    await this.attrsChange(path, () => this.mutate('meta.mutate', { op: 'setattr', path, ...(keep(uid) ? {} : { uid }), ...(keep(gid) ? {} : { gid }), ...this.as(caller) }));
  }

  /** A change of the attributes at `path` through the masters, after the held directory's batch; its listing asks for them after. */
  private async attrsChange<T>(path: string, change: () => Promise<T>): Promise<T> {
    await this.holds.settle(path);
    try {
      return await change();
    } finally {
      this.holds.changed(path, 'stale');
    }
  }

  /**
   * Sets the times: each a time in ms, 'now', or 'omit' (left as it is: futimens with UTIME_OMIT,
   * as tar and cp -p send). Both 'now' (touch) needs only write permission, and is set to the
   * masters' clock. Explicit times need the owner; libfuse 2 (fuse-native's prebuilt addon) turns
   * UTIME_NOW into explicit times when the other is not 'now', so a refused change whose times are
   * all within a few seconds of now is taken for touch by a writer and set to the masters' clock
   * (both times, then).
   */
  async utimens(path: string, atime: UtimeMs, mtime: UtimeMs, caller?: Caller): Promise<void> {
    this.changedDirs.delete(path);
    if (atime === 'omit' && mtime === 'omit') return;
    // Kept for the commit: nothing changes on the masters now, so nothing kept is stale either.
    if (this.deferTimes(path, atime, mtime, caller)) return;
    await this.attrsChange(path, () => this.utimensAsked(path, atime, mtime, caller));
  }

  private async utimensAsked(path: string, atime: UtimeMs, mtime: UtimeMs, caller: Caller | undefined): Promise<void> {
    // Writes this mount holds for the file are committed first: their commit sets the times to
    // now, which would undo these (tar and cp -p set them on the open file before closing it).
    await this.flushWritersOf(path, caller);
    const now = Date.now();
    const times: { atimeMs?: number; mtimeMs?: number } = {};
    if (atime !== 'omit') times.atimeMs = atime === 'now' ? now : Math.trunc(atime);
    if (mtime !== 'omit') times.mtimeMs = mtime === 'now' ? now : Math.trunc(mtime);
    if (atime === 'now' && mtime === 'now') {
      await this.mutate('meta.mutate', { op: 'setattr', path, timesNow: true, ...this.as(caller) });
      return;
    }
    try {
      await this.mutate('meta.mutate', { op: 'setattr', path, ...times, ...this.as(caller) });
    } catch (err) {
      const nowish = Object.values(times).every((ms) => Math.abs(ms - now) < touchSlackMs);
      if ((err as { code?: string }).code !== FsErrorCode.EPERM || !nowish) throw err;
      await this.mutate('meta.mutate', { op: 'setattr', path, timesNow: true, ...this.as(caller) });
    }
  }

  /**
   * Explicit times set on a file in a held directory through its one open writer while that has
   * writes to commit (tar and cp -p set them on the open file before closing it): kept with the
   * writer and set right after its next commit, which would otherwise set them to now, instead of
   * a flush and a commit of their own first (some 12 ms of a small file's 25 here). This mount's
   * stat shows them at once; others see them with the data, at the close (close-to-open). A write
   * before that commit sets mtime to now again, as a write does. The kernel has checked that the
   * caller owns the file; the masters check again when the times are set.
   */
  private deferTimes(path: string, atime: UtimeMs, mtime: UtimeMs, caller: Caller | undefined): boolean {
    if (atime === 'now' || mtime === 'now' || !this.holds.holdsDirOf(path)) return false;
    let h: Handle | undefined;
    for (const x of this.handles.values()) {
      if (x.path !== path || x.writer === undefined) continue;
      if (h !== undefined) return false;
      h = x;
    }
    if (h === undefined || h.dirty !== true || h.committing !== undefined || this.writers.get(h.inodeId)?.size !== 1) return false;
    const t: PendingTimes = { ...h.pendingTimes, caller };
    if (atime !== 'omit') t.atimeMs = Math.trunc(atime);
    if (mtime !== 'omit') t.mtimeMs = Math.trunc(mtime);
    h.pendingTimes = t;
    return true;
  }

  /** Sets the times deferTimes kept for `h`, after the commit that would have undone them. */
  private async setPendingTimes(h: Handle): Promise<void> {
    const t = h.pendingTimes;
    if (t === undefined) return;
    h.pendingTimes = undefined;
    const times = { ...(t.atimeMs === undefined ? {} : { atimeMs: t.atimeMs }), ...(t.mtimeMs === undefined ? {} : { mtimeMs: t.mtimeMs }) };
    if (Object.keys(times).length === 0) return;
    // By path, as every setattr: only if the name still is this file's (a held directory's names
    // say so; else the masters are asked). Gone, or another file now, and its times went with it.
    const known = this.holds.lookup(h.path);
    const named = known === 'absent' ? undefined : known !== undefined ? known : await this.meta.query<InodeAttr>('meta.query', { op: 'stat', path: h.path, ...this.as(t.caller) }).catch(() => undefined);
    if (named?.inodeId !== h.inodeId) return;
    await this.mutate('meta.mutate', { op: 'setattr', path: h.path, ...times, ...this.as(t.caller) });
  }

  async truncate(path: string, sizeBytes: number, caller?: Caller): Promise<void> {
    mustFit(sizeBytes);
    await this.attrsChange(path, () => this.truncateAsked(path, sizeBytes, caller));
  }

  private async truncateAsked(path: string, sizeBytes: number, caller: Caller | undefined): Promise<void> {
    // Writes this mount holds for the file go first, so that they cannot land past the new end.
    await this.flushWritersOf(path, caller);
    // The handles of the file, those opened meanwhile too, take its new length.
    // As the caller: the masters check its permission too, not only the kernel (an ftruncate
    // passes none: an open descriptor may truncate whatever the mode says now).
    const { inodeId } = await this.changing(() => truncateFile(this.meta, this.data, path, sizeBytes, this.as(caller)));
    this.forgetReadAhead(inodeId);
    for (const h of this.handles.values()) {
      if (h.inodeId !== inodeId) continue;
      h.sizeBytes = sizeBytes;
      h.committedBytes = Math.min(h.committedBytes, sizeBytes);
      if (h.writer !== undefined) h.writer.highWater = Math.min(h.writer.highWater, sizeBytes);
    }
  }

  async ftruncate(fd: number, sizeBytes: number): Promise<void> {
    const h = this.handle(fd);
    if (h.lazy !== undefined) await this.openLazy(h);
    await this.truncate(h.path, sizeBytes);
  }

  /**
   * O_CREAT (the kernel found no entry): creates the file and opens it for writing, in one step.
   * With O_EXCL, EEXIST if another mount made it meanwhile; without, that file is opened.
   */
  async create(path: string, mode: number, caller?: Caller, exclusive = false): Promise<number> {
    mustBeUtf8(path);
    this.releaseDeferred(); // the creates before this one, closed meanwhile
    // A mode that does not let its owner write (0444) needs the session in the create itself.
    const here = (mode & 0o200) === 0 ? undefined : this.holds.create(path, mode & 0o7777, this.ownerFor(caller), this.callerOf(caller));
    if (here === 'exists' && exclusive) throw new MetaError(FsErrorCode.EEXIST, `'${path}' exists`);
    if (here !== undefined && here !== 'exists') {
      this.generation++; // listings read before are not used
      const h: Handle = { path, inodeId: here.attr.inodeId, layout: unknownLayout, sizeBytes: 0, chunks: [], committedBytes: 0, createdAttr: here.attr, lazy: { landed: here.landed, creator: caller } };
      here.landed.catch(() => undefined); // its failure is the first write's or flush's
      return this.addHandle(h);
    }
    await this.holds.settle(path);
    const made = await this.mutate<CreateValue>('meta.mutate', { op: 'create', path, mode: mode & 0o7777, ...this.ownerFor(caller), exclusive, openSession: true, ...this.as(caller) });
    this.dirChanged(path, made.parent);
    this.holds.changed(path, made.inode);
    this.holds.noteChange(path);
    const fd = this.addWriteHandle(path, made.sessionId!, made.inode);
    // libfuse asks for the new file's attributes at once: they are these.
    this.handles.get(fd)!.createdAttr = made.inode;
    return fd;
  }

  async open(path: string, flags: number, caller?: Caller): Promise<number> {
    await this.holds.settle(path);
    if ((flags & O_ACCMODE) !== O_RDONLY) return this.openForWrite(path, (flags & O_TRUNC) !== 0, caller);
    // Linux truncates on O_RDONLY | O_TRUNC too (the kernel checked write permission); libfuse 3
    // passes O_TRUNC with the open (atomic_o_trunc) instead of a truncate before it.
    if ((flags & O_TRUNC) !== 0) await this.truncate(path, 0, caller);
    const attr = await this.meta.query<InodeAttr>('meta.query', { op: 'open', path, ...this.as(caller) });
    const ref = fileRefOf(attr, path);
    // Close-to-open: chunk files kept from an earlier open may hold what another client has replaced since.
    this.data.forgetLocal(ref.inodeId);
    const h: Handle = { path, inodeId: ref.inodeId, layout: ref.layout, sizeBytes: attr.sizeBytes, chunks: ref.chunks ?? null, committedBytes: attr.sizeBytes };
    if (this.readAheadChunks > 0) {
      h.readAhead = new ChunkReadAhead({
        chunkSizeBytes: h.layout.chunkSizeBytes,
        sizeBytes: () => h.sizeBytes,
        chunksAhead: this.readAheadChunks,
        budget: this.readAheadBudget,
        fetch: async (index) => {
          // One chunk is one piece; past the end of the file, none.
          for await (const piece of this.readerOf(h, h.sizeBytes, h.chunks).lend(index * h.layout.chunkSizeBytes, h.layout.chunkSizeBytes)) return piece;
          return { data: Buffer.alloc(0), release: () => undefined };
        },
      });
    }
    return this.addHandle(h);
  }

  /**
   * A create the mount's addon answered itself in a held directory (NamesMirror.createIds): the
   * file, open as `fd` (a descriptor from reserveFds), as create would have made it here.
   */
  adoptCreated(path: string, mode: number, caller: Caller, inodeId: number, fd: number, timeMs: number): void {
    this.generation++; // listings read before are not used
    const here = this.holds.createdElsewhere(path, mode, this.ownerFor(caller), this.callerOf(caller), inodeId, timeMs);
    if (here === undefined) this.log('error', `${path}: created by the mount's addon in a directory no longer held: its writes fail with EIO`);
    const landed = here?.landed ?? Promise.reject(new MetaError(FsErrorCode.EINVAL, `'${path}' was not created (its directory was no longer held)`, { errno: 'EIO' }));
    landed.catch(() => undefined); // its failure is the first write's or flush's
    this.addHandle({ path, inodeId, layout: unknownLayout, sizeBytes: 0, chunks: [], committedBytes: 0, lazy: { landed, creator: caller } }, fd);
  }

  /** `count` descriptors no open here takes, for the addon's creates (adoptCreated): [first, end). */
  reserveFds(count: number): [number, number] {
    const first = this.nextFd;
    this.nextFd += count;
    return [first, this.nextFd];
  }

  /** getattr of an open file: right after create, the attributes the create answered. */
  async fgetattr(fd: number, path: string, caller?: Caller): Promise<Stat> {
    return this.createdStat(fd) ?? this.getattr(path, caller);
  }

  /** The attributes a create answered, once, for libfuse's getattr right after it; else undefined. */
  createdStat(fd: number): Stat | undefined {
    const h = this.handles.get(fd);
    const attr = h?.createdAttr;
    if (h === undefined || attr === undefined) return undefined;
    h.createdAttr = undefined;
    return this.toStat(attr, this.localLength(attr.inodeId));
  }

  private async openForWrite(path: string, truncate: boolean, caller: Caller | undefined): Promise<number> {
    if (truncate) await this.truncate(path, 0, caller);
    const s = await this.mutate<SessionValue>('meta.mutate', { op: 'openSession', path, truncate: false, ...this.as(caller) });
    this.holds.changed(path, 'stale');
    return this.addWriteHandle(path, s.sessionId, s.inode);
  }

  /**
   * Makes a lazily created file (Handle.lazy) an ordinary one open for writing: once its create
   * landed (its failure is this call's), its write session opens, as its creator.
   */
  private async openLazy(h: Handle): Promise<void> {
    const lazy = h.lazy;
    if (lazy === undefined) return;
    if (lazy.opening === undefined && h.fd !== undefined) this.onUnclean?.(h.fd);
    lazy.opening ??= (async () => {
      // A create not yet sent opens the session itself: one journal round instead of two.
      const withCreate = this.holds.openWithCreate(h.path, h.inodeId);
      await this.holds.settle(h.path);
      const created = await lazy.landed;
      const s =
        withCreate && created.sessionId !== undefined
          ? { sessionId: created.sessionId, inode: created.inode }
          : await this.mutate<SessionValue>('meta.mutate', { op: 'openSession', path: h.path, truncate: false, ...this.as(lazy.creator) });
      if (s.inode.inodeId !== h.inodeId) throw new MetaError(FsErrorCode.ENOENT, `${h.path} is another file now`, { errno: 'EIO' });
      this.initWriter(h, s.sessionId, s.inode);
      h.lazy = undefined;
    })();
    await lazy.opening;
  }

  private addWriteHandle(path: string, sessionId: string, inode: InodeAttr): number {
    const ref = fileRefOf(inode, path);
    const h: Handle = { path, inodeId: ref.inodeId, layout: ref.layout, sizeBytes: inode.sizeBytes, chunks: ref.chunks ?? null, sessionId, committedBytes: inode.sizeBytes };
    this.initWriter(h, sessionId, inode);
    return this.addHandle(h);
  }

  /** Opens `h` for writing in its session: a writer, and its place among the inode's writers. */
  private initWriter(h: Handle, sessionId: string, inode: InodeAttr): void {
    const ref = fileRefOf(inode, h.path);
    h.layout = ref.layout;
    h.sessionId = sessionId;
    h.writer = new FileWriter(this.data, { inodeId: h.inodeId, layout: h.layout, chunks: null }, { streamBytesMax: this.writeBytesMax, budget: this.writeBudget });
    let set = this.writers.get(h.inodeId);
    if (set === undefined) this.writers.set(h.inodeId, (set = new Set()));
    set.add(h);
    this.forgetReadAhead(h.inodeId);
  }

  private addHandle(h: Handle, fd = this.nextFd++): number {
    h.fd = fd;
    this.handles.set(fd, h);
    const open = this.openPerInode.get(h.inodeId) ?? 0;
    this.openPerInode.set(h.inodeId, open + 1);
    if (open === 0) this.holds.openChanged(h.path, true);
    return fd;
  }

  /**
   * One open of the inode ended: at its last, the chunk files kept for its local reads are closed,
   * so that a file deleted meanwhile does not keep its chunks' disk space held by this mount.
   */
  private closeLocal(inodeId: number, path: string): void {
    const n = (this.openPerInode.get(inodeId) ?? 1) - 1;
    if (n > 0) {
      this.openPerInode.set(inodeId, n);
      return;
    }
    this.openPerInode.delete(inodeId);
    this.data.forgetLocal(inodeId);
    this.holds.openChanged(path, false);
  }

  /**
   * A held directory's file's attributes as getattr would answer them, for the mount's addon to
   * answer lookups and unlinks with (NamesMirror): only a plain file with one link that no
   * descriptor here has open (an open file's attributes follow its writes here).
   */
  mirroredStat(attr: InodeAttr | undefined): Stat | undefined {
    if (attr?.type !== 'file' || attr.nlink !== 1 || this.openPerInode.has(attr.inodeId) || this.writers.has(attr.inodeId)) return undefined;
    return this.toStat(attr, undefined);
  }

  /** An unlink the mount's addon answered itself in a held directory (NamesMirror). */
  adoptUnlinked(path: string, caller: Caller, timeMs: number): void {
    this.generation++; // listings read before are not used
    if (!this.holds.unlinkedElsewhere(path, caller, timeMs)) this.log('error', `${path}: unlinked by the mount's addon in a directory no longer held, or of a name it no longer had: not sent to the masters`);
  }

  private handle(fd: number): Handle {
    const h = this.handles.get(fd);
    // After an unmount let go of every file, the kernel may still send a write of one: that is a
    // failed write (EIO), not the program's mistake.
    if (h === undefined) throw new MetaError(FsErrorCode.EINVAL, `no open file ${fd}${this.released ? ': the mount is being unmounted' : ''}`, { errno: this.released ? 'EIO' : 'EBADF' });
    return h;
  }

  /** Reads into `into`; returns the bytes read (0 at or past the end). */
  async read(fd: number, into: Buffer, length: number, position: number): Promise<number> {
    const h = this.handle(fd);
    if (h.lazy !== undefined) await this.openLazy(h);
    const local = this.writers.get(h.inodeId);
    let size = h.sizeBytes;
    let chunks = h.chunks;
    if (local !== undefined && local.size > 0) {
      // This mount writes the file: its writes go to the workers first, and the chunks they made
      // are not in the list the masters gave at open, so any chunk absent on the workers is a hole.
      for (const w of local) await this.flushWriter(w);
      size = Math.max(size, this.localLength(h.inodeId) ?? 0);
      chunks = null;
    }
    if (position >= size) return 0;
    if (local === undefined && h.readAhead !== undefined) {
      const ahead = h.readAhead.read(position, length, into);
      if (ahead !== undefined) {
        this.readStats.readAheadHits++;
        return ahead;
      }
      this.readStats.readAheadMisses++;
    }
    let n = 0;
    for await (const part of this.readerOf(h, size, chunks).lend(position, Math.min(length, size - position))) {
      into.set(part.data, n);
      n += part.data.length;
      part.release(); // copied into the kernel's buffer
    }
    return n;
  }

  private readerOf(h: Handle, sizeBytes: number, chunks: number[] | null): FileReader {
    return new FileReader(this.data, { inodeId: h.inodeId, layout: h.layout, chunks }, sizeBytes);
  }

  /** This mount changes an inode's bytes: what was read ahead of them is stale. */
  private forgetReadAhead(inodeId: number): void {
    for (const h of this.handles.values()) if (h.inodeId === inodeId) h.readAhead?.clear();
  }

  /** Writes `length` bytes of `from` (the kernel's buffer, valid only until this returns: copied). */
  async write(fd: number, from: Buffer, length: number, position: number): Promise<number> {
    const h = this.handle(fd);
    if (h.lazy !== undefined) await this.openLazy(h);
    if (h.writer === undefined) throw new MetaError(FsErrorCode.EINVAL, 'file not open for writing', { errno: 'EBADF' });
    mustFit(position + length);
    h.dirty = true;
    // A write after utimens: its commit sets mtime to now, as it should.
    if (h.pendingTimes?.mtimeMs !== undefined) h.pendingTimes = { ...h.pendingTimes, mtimeMs: undefined };
    if (length < pooledWriteBytesMin || length > writeBufferBytesMax) {
      await h.writer.write(Buffer.from(from.subarray(0, length)), position);
      return length;
    }
    const lent = this.writeBuffers.take(length);
    from.copy(lent, 0, 0, length);
    await h.writer.write(lent.subarray(0, length), position, () => this.writeBuffers.give(lent));
    return length;
  }

  /** close(2) of one descriptor: the writes are on every replica and the length is committed. */
  async flush(fd: number): Promise<void> {
    const h = this.handle(fd);
    // A lazily created file never written: nothing to flush, and close(2) does not wait for its
    // create to land (fsync does); another mount that asks for it waits for that (dir-holds.ts).
    if (h.lazy !== undefined) return;
    if (h.writer !== undefined) await this.flushWriter(h);
  }

  /** Whether a flush of `fd` does nothing until onUnclean says otherwise: a lazily created file not written yet. */
  isClean(fd: number): boolean {
    const h = this.handles.get(fd);
    return h?.lazy !== undefined && h.lazy.opening === undefined;
  }

  async fsync(fd: number): Promise<void> {
    const h = this.handle(fd);
    const lazy = h.lazy; // a first write may open it meanwhile
    if (lazy !== undefined) {
      await this.holds.settle(h.path);
      await lazy.landed;
    }
    await this.flush(fd);
  }

  /** fsync of a directory: the creates and unlinks this mount answered in it have landed. */
  async fsyncdir(path: string): Promise<void> {
    await this.holds.sync(path);
  }

  /** The last close of an open file: its session ends (after a last flush). */
  async release(fd: number): Promise<void> {
    const h = this.handles.get(fd);
    if (h === undefined) return;
    this.handles.delete(fd);
    h.readAhead?.clear();
    this.closeLocal(h.inodeId, h.path);
    if (h.writer === undefined || h.sessionId === undefined) return;
    this.forgetReadAhead(h.inodeId);
    this.holds.changed(h.path, 'stale');
    const set = this.writers.get(h.inodeId);
    set?.delete(h);
    if (set?.size === 0) this.writers.delete(h.inodeId);
    let failure: unknown;
    try {
      await h.writer.flush();
      // A commit under way (a read or utimens through another descriptor flushed): its outcome
      // decides whether the length still needs committing here.
      await h.committing?.catch(() => undefined);
    } catch (err) {
      failure = err;
    }
    // Nothing written since the last commit: the session ends without touching the times (a
    // commit sets them to now, after any utimens since: tar, cp -p and rsync set them at close).
    // After a failure the length stays, but every chunk the writer touched is recorded, so that
    // garbage collection finds what the failed write left once the file goes.
    if (failure !== undefined) await h.writer.settled();
    const done = failure !== undefined ? { chunks: h.writer.written.toArray() } : h.dirty === true ? { lengthBytes: h.writer.highWater, chunks: h.writer.written.toArray() } : undefined;
    // Nothing to commit (the flush at close did, or nothing was written): the session's end changes
    // nothing anyone sees, so it waits to go with the others ending meanwhile.
    if (done === undefined && this.sessionCloseDelayMs > 0 && !this.released) return this.closeSessionSoon(h.sessionId);
    await this.changing(() => endWriteSession(this.meta, h.sessionId!, h.inodeId, done));
    if (failure === undefined && done !== undefined) await this.setPendingTimes(h);
    if (failure !== undefined) throw failure;
  }

  /** Ends a session within sessionCloseDelayMs, with the others queued meanwhile (see release). */
  private closeSessionSoon(sessionId: string): void {
    this.sessionsEnding.push(sessionId);
    this.sessionsEndingTimer ??= setTimeout(() => void this.closeQueuedSessions(), this.sessionCloseDelayMs);
  }

  /** Ends the queued sessions now; a failure is logged (the session stays open on the masters, as after a crash). */
  private async closeQueuedSessions(): Promise<void> {
    clearTimeout(this.sessionsEndingTimer);
    this.sessionsEndingTimer = undefined;
    const ids = this.sessionsEnding.splice(0);
    const results = await Promise.allSettled(ids.map((sessionId) => this.mutate<CloseSessionValue>('meta.mutate', { op: 'closeSession', sessionId }).catch((err: unknown) => {
      // Already ended by the masters (its lease lapsed while this mount was cut off from them).
      if ((err as { code?: string }).code !== FsErrorCode.ENOENT) throw err;
    })));
    for (const [i, r] of results.entries()) if (r.status === 'rejected') this.log('warn', `write session ${ids[i]} could not be ended: ${(r.reason as Error).message}`);
  }

  /** Releases the descriptors the addon released (releasedElsewhere). */
  releaseDeferred(): void {
    const fds = this.releasedElsewhere?.();
    if (fds === undefined) return;
    for (const fd of fds) {
      const path = this.handles.get(fd)?.path;
      this.release(fd).catch((err: unknown) => this.log('error', `release of ${path ?? `descriptor ${fd}`}: ${(err as Error).message}`));
    }
  }

  /** Releases every open file (unmount): what they wrote is flushed and their sessions end. */
  async releaseAll(): Promise<void> {
    this.releaseDeferred();
    this.released = true;
    const results = await Promise.allSettled([...this.handles.keys()].map((fd) => this.release(fd)));
    for (const r of results) if (r.status === 'rejected') this.log('error', `an open file could not be flushed at unmount: ${(r.reason as Error).message}`);
    await this.closeQueuedSessions();
    await this.holds.releaseAll();
  }

  /**
   * An extended attribute's value. Only user.* names are kept: the others (security.capability,
   * which the kernel asks for before writes, and the ACL and SELinux names `ls -l` asks for) are
   * not supported, as on a file system without those namespaces (the rebuilt addon answers so
   * itself; this is for the prebuilt one).
   */
  async getxattr(path: string, name: string, caller?: Caller): Promise<Buffer> {
    if (!name.startsWith(xattrNamePrefix)) throw notKept(name);
    await this.holds.settle(path);
    const value = await this.meta.query<Uint8Array>('meta.query', { op: 'getxattr', path, name, ...this.as(caller) });
    return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  }

  /** `value` is the kernel's buffer, valid only until this returns: it is copied. */
  async setxattr(path: string, name: string, value: Buffer, flags: number, caller?: Caller): Promise<void> {
    this.changedDirs.delete(path);
    if (!name.startsWith(xattrNamePrefix)) throw notKept(name);
    await this.attrsChange(path, () => this.mutate('meta.mutate', { op: 'setxattr', path, name, value: Buffer.from(value), flags: flags & 3, ...this.as(caller) }));
  }

  async listxattr(path: string, caller?: Caller): Promise<string[]> {
    await this.holds.settle(path);
    return this.meta.query<string[]>('meta.query', { op: 'listxattr', path, ...this.as(caller) });
  }

  async removexattr(path: string, name: string, caller?: Caller): Promise<void> {
    this.changedDirs.delete(path);
    if (!name.startsWith(xattrNamePrefix)) throw notKept(name);
    await this.attrsChange(path, () => this.mutate('meta.mutate', { op: 'removexattr', path, name, ...this.as(caller) }));
  }

  async statfs(): Promise<StatFsResult> {
    const [fs, targets, chains, health] = await Promise.all([
      this.meta.query<StatFs>('meta.query', { op: 'statfs' }),
      this.meta.query<TargetInfo[]>('meta.query', { op: 'targets' }),
      this.meta.query<ChainInfo[]>('meta.query', { op: 'chains' }),
      this.meta.query<WorkerHealth[]>('cluster.health', {}),
    ]);
    const space = mountSpace(targets, chains, health, fs.logicalBytes);
    const blocks = Math.floor(space.bytesTotal / blockBytes);
    const free = Math.floor(space.bytesFree / blockBytes);
    return { bsize: blockBytes, frsize: blockBytes, blocks, bfree: free, bavail: free, files: inodesMax, ffree: Math.max(0, inodesMax - fs.inodes), favail: Math.max(0, inodesMax - fs.inodes), namemax: nameBytesMax };
  }

  /** Flushes and commits what this mount's open writers of the file at `path` hold (none: no round trip). */
  private async flushWritersOf(path: string, caller: Caller | undefined): Promise<void> {
    if (this.writers.size === 0) return;
    const attr = await this.meta.query<InodeAttr>('meta.query', { op: 'stat', path, ...this.as(caller) });
    for (const h of this.writers.get(attr.inodeId) ?? []) await this.flushWriter(h);
  }

  /**
   * Sends what the writer gathered and commits the length and chunks, unless nothing was written
   * since the last commit. A commit another caller started is waited for first: a flush returns
   * only once the length is committed (if that commit failed, this one commits again).
   */
  private async flushWriter(h: Handle): Promise<void> {
    const w = h.writer!;
    while (h.committing !== undefined) await h.committing.catch(() => undefined);
    if (h.dirty !== true) return w.flush();
    h.dirty = false; // a write arriving meanwhile sets it again, for the next flush
    const commit = (async () => {
      try {
        await w.flush();
        await this.mutate('meta.mutate', { op: 'commitLength', inodeId: h.inodeId, lengthBytes: w.highWater, chunks: w.written.toArray() });
        await this.setPendingTimes(h);
        this.holds.changed(h.path, 'stale');
      } catch (err) {
        h.dirty = true;
        throw err;
      }
    })();
    h.committing = commit;
    try {
      await commit;
    } finally {
      h.committing = undefined;
    }
    h.committedBytes = Math.max(h.committedBytes, w.highWater);
  }

  /** The length an inode has as far as this mount's open writers know (writes, truncates), if it has any. */
  private localLength(inodeId: number): number | undefined {
    const set = this.writers.get(inodeId);
    if (set === undefined) return undefined;
    let n = 0;
    for (const h of set) n = Math.max(n, h.writer!.highWater, h.committedBytes, h.sizeBytes);
    return n;
  }

  private toStat(a: InodeAttr, localLength: number | undefined): Stat {
    // A symlink's size is its target's length, as the masters keep it.
    const size = a.type === 'dir' ? blockBytes : Math.max(a.sizeBytes, localLength ?? 0);
    let times: PendingTimes | undefined;
    if (localLength !== undefined) for (const h of this.writers.get(a.inodeId) ?? []) times = h.pendingTimes ?? times;
    return {
      mode: typeBits[a.type] | (a.mode & 0o7777),
      uid: a.uid,
      gid: a.gid,
      size,
      nlink: a.nlink,
      ino: a.inodeId,
      // A large block size makes cp and friends move a chunk per call.
      blksize: a.layout?.chunkSizeBytes ?? blockBytes,
      blocks: Math.ceil(size / 512),
      rdev: a.rdev ?? 0,
      atime: times?.atimeMs ?? a.atimeMs,
      mtime: times?.mtimeMs ?? a.mtimeMs,
      ctime: a.ctimeMs,
    };
  }
}

/**
 * The masters as this mount asks them: each namespace request names the mount as its holder
 * (dir-holds.ts), so the directories it holds answer it as they would not answer others.
 */
function withHolder(meta: MasterClient, holder: string, owner: Caller): MasterClient {
  const named = (body: object): object => {
    const op = String((body as { op?: unknown }).op);
    if (!namespaceQueryOps.has(op) && !namespaceCommandOps.has(op)) return body;
    const caller = (body as { caller?: Caller }).caller ?? meta.caller ?? owner;
    return { ...body, caller: { ...caller, holder } };
  };
  return Object.assign(Object.create(meta) as MasterClient, {
    query: <T>(method: string, body: object): Promise<T> => meta.query<T>(method, named(body)),
    mutate: <T>(method: string, body: object): Promise<T> => meta.mutate<T>(method, named(body)),
  });
}

/** fileRef, with the errno open(2) gives for a directory. */
function fileRefOf(attr: InodeAttr, path: string): FileRef {
  if (attr.type === 'dir') throw new MetaError(FsErrorCode.EISDIR, `${path} is a directory`);
  return fileRef(attr, path);
}

/**
 * A new name must be UTF-8: fuse-native hands the kernel's bytes over decoded, each invalid
 * sequence as U+FFFD, so two different names (b'\xff', b'\xfe') would reach the masters as one and
 * be one file. (A name that holds U+FFFD itself is refused too: it cannot be told apart.)
 */
function mustBeUtf8(path: string): void {
  if (path.includes('\uFFFD')) throw new MetaError(FsErrorCode.EINVAL, `${JSON.stringify(path)}: a name through the mount must be valid UTF-8`, { errno: 'EILSEQ' });
}

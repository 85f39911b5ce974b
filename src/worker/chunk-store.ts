// The chunk store of one target (one data directory): chunk versions kept one file each, written
// copy-on-write and switched by rename, so a crash leaves a chunk's old committed content or its new
// one, never a mix. All I/O goes through the injected Disk, so the simulator's crashes, torn
// writes, fsync failures, full disks and bit flips cover every byte. See docs/chunk-store.md.

import path from 'node:path';
import { crc32c } from '@node-rs/crc32';
import type { PieceCrcs } from './crc32c-pieces.ts';
import { CairnError, ErrorCode, assert } from '../errors.ts';
import type { DirectIo, Disk, DiskFile } from '../io/index.ts';
import { isErrno } from '../io/index.ts';
import { ensureDir } from '../io/ensure-dir.ts';
import { badBlockOffset, blockCrcsFrom, blockSpan, buildChunkHeader, chunkFileName, chunkKey, fanoutDirName, firstBadBlock, isValidChunkId, isWriteId, parseChunkFileName, readChunkHeader, writeIdsMax } from './chunk-file.ts';
import type { ChunkFileState, ChunkHeader, ChunkId } from './chunk-file.ts';
import { DirSyncGroup } from './dir-sync.ts';
import { WorkerError, WorkerErrorCode } from './errors.ts';
import { claimTargetDir } from './target-identity.ts';
import type { TargetIdentity } from './target-identity.ts';

export type { ChunkId } from './chunk-file.ts';
export type { TargetIdentity } from './target-identity.ts';

export type LogFn = (level: 'info' | 'warn' | 'error', msg: string, ctx?: object) => void;

export interface ChunkStoreOptions {
  identity: TargetIdentity;
  /** The largest chunk: a stage past it is refused. Default 64 MiB. */
  chunkSizeBytesMax?: number;
  /**
   * The unit of the per-block checksums, a power of two. Default 4 KiB, as Ceph's BlueStore: a 4 KiB
   * random read reads and checks 4 KiB, not the 64 KiB around it (a fifth of a worker's CPU for such
   * reads at 64 KiB: docs/chunk-store.md), for 4 bytes of header a block and a few percent more CRC
   * calls on writes.
   */
  blockSizeBytes?: number;
  /** Operations queued on one chunk before more are refused with CAIRN_BUSY. Default 16. */
  chunkQueueMax?: number;
  /**
   * Leave what is written in the page cache. Default false: a chunk file's pages are dropped once
   * it is fdatasynced (they are clean then), as storage servers that write around the page cache
   * do (3FS, BlueStore with direct I/O). A stream of writes then reuses the pages it just freed
   * rather than taking free ones, which on a VM handing free memory back to its host cost several
   * times the copy (docs/chunk-store.md), and it does not push what readers use out of the cache.
   * Reads still fill the cache, so data read again stays there.
   */
  cacheWrites?: boolean;
  /**
   * Write chunk files that are not to stay cached with direct I/O, where the disk offers it
   * (Disk.directIo): the bytes are copied once into a reused aligned buffer and go from there to
   * the device, instead of into fresh page-cache pages (docs/chunk-store.md, "Direct writes").
   * Default true.
   */
  directWrites?: boolean;
  log?: LogFn;
}

export interface StageRequest {
  /** commitVersion + 1; with `replace`, any version at or above the committed one. */
  version: number;
  /** The chain version of the write that makes this version. */
  chainVersion: number;
  offset: number;
  data: Uint8Array;
  /** The new content is exactly `data` (offset 0): resync and full-chunk writes. */
  replace?: boolean;
  /** The new content is the committed content cut (or zero-extended) to `offset` bytes; `data` is empty. */
  truncate?: boolean;
  /** The ids of the writes that made this version and those before it (at most writeIdsMax, oldest first). */
  writeIds?: readonly string[];
  /** The CRC32C of each piece of `data` cut where the chunk's blocks are cut (checked by the caller): the store then reads `data` no more. */
  dataPieces?: PieceCrcs;
  /** Keep the file's pages in the page cache once durable (this replica is the one clients read the chunk from), whatever cacheWrites says. */
  keepCached?: boolean;
}

export interface PendingMeta {
  version: number;
  chainVersion: number;
  lengthBytes: number;
  crc32c: number;
  writeIds: readonly string[];
}

export interface ChunkMeta {
  id: ChunkId;
  /** 0: nothing committed. */
  commitVersion: number;
  /** The pending version if there is one (commitVersion + 1 for a normal write), else commitVersion. */
  updateVersion: number;
  /** Of the write that made the committed version. */
  chainVersion: number;
  lengthBytes: number;
  /** CRC32C of the whole committed content. */
  crc32c: number;
  /** The writes that made the committed version and those before it, oldest first. */
  writeIds: readonly string[];
  pending: PendingMeta | undefined;
  /** Why the committed version cannot be served (a failed checksum, a damaged header); undefined if it can. */
  corrupt: string | undefined;
}

export type ScrubResult = { ok: true } | { ok: false; error: WorkerError };

const defaults = { chunkSizeBytesMax: 64 << 20, blockSizeBytes: 4 << 10, chunkQueueMax: 16, cacheWrites: false, directWrites: true };
/** Smaller chunk files are written through the page cache: the copy into a 1 MiB aligned buffer and a synchronous device write would cost more than they save. */
const directWriteBytesMin = 64 * 1024;
const chunkSizeBytesLimit = 1 << 30;
/** Times a read retries when a commit replaced the file it was about to open. */
const readAttemptsMax = 3;
/**
 * Committed chunk files a store keeps open, with their decoded headers, for reads of a few blocks:
 * a 4 KiB read then costs one read of its block, not an open, two reads and a close.
 */
const openChunksMax = 128;
/** Chunks removed at once by removeInode; their directory syncs are shared. */
const removeBatchMax = 64;

/** A committed chunk file kept open: its version, its header, and the reads using it now. */
interface OpenChunk {
  version: number;
  file: string;
  f: DiskFile;
  header: ChunkHeader;
  users: number;
  /** Out of the cache (a new version, a removal, damage, eviction): closed once unused. */
  dropped: boolean;
}

/** One version as the store remembers it; headerBytes 0 when its header could not be read. */
interface Version {
  version: number;
  chainVersion: number;
  lengthBytes: number;
  crc32c: number;
  headerBytes: number;
  writeIds: readonly string[];
}

interface Entry {
  id: ChunkId;
  committed: Version | undefined;
  /** `recovered`: found at start-up, so its fdatasync is not known to have completed. */
  pending: (Version & { recovered: boolean }) | undefined;
  corrupt: string | undefined;
}

interface Queue {
  tail: Promise<unknown>;
  length: number;
}

type Options = Required<Omit<ChunkStoreOptions, 'log'>> & { log: LogFn };

export class ChunkStore {
  readonly dir: string;
  private readonly disk: Disk;
  private readonly opts: Options;
  private readonly chunksDir: string;
  private readonly entries = new Map<string, Entry>();
  /** Open committed files by chunk key, least recently used first. */
  private readonly openChunks = new Map<string, OpenChunk>();
  private readonly queues = new Map<string, Queue>();
  private readonly dirSyncs: DirSyncGroup;
  /** Fan-out directories known to exist (durably). */
  private readonly madeDirs = new Map<string, Promise<void>>();
  /** Committed versions found corrupt since the store opened. */
  private corruptDetected = 0;
  /** Set by the first failed fsync: from then on the store refuses writes. */
  private failure: WorkerError | undefined;
  private fullAnswerCount = 0;
  private closed = false;
  /** Direct writes, while the disk offers them and its file system takes them (writeDirect). */
  private direct: DirectIo | undefined;

  private constructor(disk: Disk, dir: string, opts: Options) {
    this.disk = disk;
    this.dir = dir;
    this.opts = opts;
    this.chunksDir = path.join(dir, 'chunks');
    this.dirSyncs = new DirSyncGroup(disk);
    this.direct = opts.directWrites ? disk.directIo : undefined;
  }

  /**
   * Opens (or creates) the target in `dir`: checks or writes its identity, then scans every chunk
   * file's header (data is verified on read and scrub, not here, so start-up stays fast), removing
   * torn pending files, temp files and superseded committed versions.
   */
  static async open(disk: Disk, dir: string, options: ChunkStoreOptions): Promise<ChunkStore> {
    const opts = checkOptions(options);
    await ensureDir(disk, dir);
    try {
      await claimTargetDir(disk, dir, opts.identity);
    } catch (err) {
      throw spaceError(err, dir);
    }
    const store = new ChunkStore(disk, dir, opts);
    await ensureDir(disk, store.chunksDir);
    await store.scan();
    return store;
  }

  // ---- writes ----------------------------------------------------------------------------------

  /**
   * Writes a pending version: the committed content with `data` at `offset` (zeros fill a gap), or
   * exactly `data` with `replace`. Resolves once the file is fdatasynced and its name durable. Replaces any pending version.
   */
  async stage(id: ChunkId, req: StageRequest): Promise<ChunkMeta> {
    this.checkId(id);
    this.checkStage(id, req);
    return this.serial(id, () => this.stageNow(id, req));
  }

  /**
   * Makes the name of the chunk's staged version durable. A member does this before it forwards
   * the version: the next ones may commit and serve it, so a crash of this member must not lose it.
   */
  async syncPendingName(id: ChunkId): Promise<void> {
    this.checkId(id);
    await this.syncDir(this.fanoutPath(id.inodeId));
  }

  /** Makes the pending `version` the committed one; resolves once that is durable. Committing the committed version again is a no-op. */
  async commit(id: ChunkId, version: number): Promise<ChunkMeta> {
    this.checkId(id);
    checkVersion(version, 'version');
    return this.serial(id, () => this.commitNow(id, version));
  }

  /** Drops the pending `version`; false if there was none. Not made durable: a crash may bring it back, still pending. */
  async abort(id: ChunkId, version: number): Promise<boolean> {
    this.checkId(id);
    checkVersion(version, 'version');
    return this.serial(id, async () => {
      this.checkWritable();
      const e = this.entries.get(chunkKey(id));
      if (e?.pending?.version !== version) return false;
      await this.dropPending(e);
      this.forgetIfEmpty(e);
      return true;
    });
  }

  /** Removes every version of a chunk; resolves once durable. False if it did not exist. */
  async remove(id: ChunkId): Promise<boolean> {
    this.checkId(id);
    return this.serial(id, () => this.removeNow(id));
  }

  /** Removes all chunks of a deleted file; resolves to how many there were. */
  async removeInode(inodeId: number): Promise<number> {
    this.checkId({ inodeId, index: 0 });
    const ids = [...this.entries.values()].filter((e) => e.id.inodeId === inodeId).map((e) => e.id);
    let removed = 0;
    for (let i = 0; i < ids.length; i += removeBatchMax) {
      const done = await Promise.all(ids.slice(i, i + removeBatchMax).map((id) => this.remove(id)));
      removed += done.filter(Boolean).length;
    }
    return removed;
  }

  // ---- reads -----------------------------------------------------------------------------------

  /**
   * Committed bytes [offset, offset + length), every block they touch verified. `buffer`, when
   * given, supplies the memory to read into (a pool's); the result is a view of what it returned.
   */
  async read(id: ChunkId, offset: number, length: number, buffer?: (bytes: number) => Uint8Array): Promise<Uint8Array> {
    this.checkId(id);
    if (!isCount(offset) || !isCount(length)) throw invalid(`bad read range: offset ${offset}, length ${length}`);
    return this.readCommitted(id, (c) => ({ offset, end: Math.min(offset + length, c.lengthBytes), whole: false }), buffer);
  }

  /** The whole committed content, every block and the whole-data checksum verified (for resync). */
  async readWhole(id: ChunkId): Promise<{ meta: ChunkMeta; data: Uint8Array }> {
    this.checkId(id);
    const data = await this.readCommitted(id, (c) => ({ offset: 0, end: c.lengthBytes, whole: true }));
    const e = this.entries.get(chunkKey(id));
    assert(e !== undefined, 'a chunk just read is known');
    return { meta: metaOf(e), data };
  }

  /** The chunks holding a pending version. */
  pendingIds(): ChunkId[] {
    const ids: ChunkId[] = [];
    for (const e of this.entries.values()) if (e.pending !== undefined) ids.push(e.id);
    return ids;
  }

  /** The whole pending content, every block verified: what a member forwards to a successor being synced. */
  async readPending(id: ChunkId): Promise<Uint8Array> {
    this.checkId(id);
    return this.serial(id, async () => {
      const e = this.entries.get(chunkKey(id));
      const p = e?.pending;
      if (e === undefined || p === undefined) throw new WorkerError(WorkerErrorCode.ChunkNotFound, `chunk ${chunkKey(id)} has no pending version on ${this.dir}`, { chunk: chunkKey(id) });
      return this.readVerified(e, p, 0, p.lengthBytes, true, 'pending');
    });
  }

  /** Re-verifies a chunk's committed content; a failure marks it corrupt. */
  async scrub(id: ChunkId): Promise<ScrubResult> {
    try {
      await this.readWhole(id);
      return { ok: true };
    } catch (err) {
      if (err instanceof WorkerError && err.code === WorkerErrorCode.ChunkCorrupt) return { ok: false, error: err };
      throw err;
    }
  }

  get(id: ChunkId): ChunkMeta | undefined {
    const e = this.entries.get(chunkKey(id));
    return e === undefined ? undefined : metaOf(e);
  }

  /**
   * The absolute path of chunk `id`'s committed version, for a local reader (chunk.locate); undefined
   * when none is committed. The file is never changed in place, only replaced or removed.
   */
  committedFile(id: ChunkId): string | undefined {
    const c = this.entries.get(chunkKey(id))?.committed;
    return c === undefined ? undefined : path.resolve(this.filePath(id, c.version, 'chunk'));
  }

  /** Every chunk, ordered by (inode, index). */
  list(): ChunkMeta[] {
    return [...this.entries.keys()].sort().map((k) => metaOf(this.entries.get(k) as Entry));
  }

  /** The size of the blocks whose CRCs chunk files keep. */
  get blockSizeBytes(): number {
    return this.opts.blockSizeBytes;
  }

  /** A write of the target's own beside the store (its served record) found the disk full: counted as the store's are. */
  noteFull(): void {
    this.fullAnswerCount++;
  }

  /** Writes refused so far because the disk was full (ENOSPC, EDQUOT): the worker's check for room counts them. */
  get fullAnswers(): number {
    return this.fullAnswerCount;
  }

  /** A failed fsync stopped the store: it takes no writes until the worker restarts. */
  get failed(): boolean {
    return this.failure !== undefined;
  }

  /**
   * Chunks whose committed version failed a check and is not served until a new version replaces
   * it (`now`), and checks failed since the store opened (`detected`: a chunk counts once per
   * version found bad). A scan, so that the count cannot drift from the entries.
   */
  corruption(): { now: number; detected: number } {
    let now = 0;
    for (const e of this.entries.values()) if (e.corrupt !== undefined) now++;
    return { now, detected: this.corruptDetected };
  }

  /** Chunks, the bytes their files take, and the highest inode any chunk belongs to (0: none). */
  usage(): { chunks: number; bytesUsed: number; inodeIdMax: number } {
    let bytesUsed = 0;
    let inodeIdMax = 0;
    for (const e of this.entries.values()) {
      bytesUsed += bytesOf(e);
      if (e.id.inodeId > inodeIdMax) inodeIdMax = e.id.inodeId;
    }
    return { chunks: this.entries.size, bytesUsed, inodeIdMax };
  }

  /**
   * The inodes this target holds chunks of, after `afterInodeId` in ascending order, at most
   * `limit`, each with its chunk count and bytes; `more` when others follow. A scan of every chunk
   * per page: an audit's listing is rare.
   */
  inodes(afterInodeId: number, limit: number): { inodes: { inodeId: number; chunks: number; bytes: number }[]; more: boolean } {
    const held = new Map<number, { inodeId: number; chunks: number; bytes: number }>();
    for (const e of this.entries.values()) {
      if (e.id.inodeId <= afterInodeId) continue;
      const h = held.get(e.id.inodeId) ?? { inodeId: e.id.inodeId, chunks: 0, bytes: 0 };
      h.chunks++;
      h.bytes += bytesOf(e);
      held.set(e.id.inodeId, h);
    }
    const sorted = [...held.values()].sort((a, b) => a.inodeId - b.inodeId);
    return { inodes: sorted.slice(0, limit), more: sorted.length > limit };
  }

  /** The chunks of one inode here. */
  chunksOf(inodeId: number): ChunkId[] {
    return [...this.entries.values()].filter((e) => e.id.inodeId === inodeId).map((e) => ({ ...e.id }));
  }

  /** Refuses new operations and waits for the queued ones to finish. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.queues.values()].map((q) => q.tail));
    for (const key of [...this.openChunks.keys()]) this.forgetOpen(key);
  }

  // ---- the operations, run one at a time per chunk ------------------------------------------------

  private async stageNow(id: ChunkId, req: StageRequest): Promise<ChunkMeta> {
    this.checkWritable();
    const key = chunkKey(id);
    const e: Entry = this.entries.get(key) ?? { id, committed: undefined, pending: undefined, corrupt: undefined };
    const commitVersion = e.committed?.version ?? 0;
    const replace = req.replace === true;
    if (replace ? req.version < Math.max(commitVersion, 1) : req.version !== commitVersion + 1) {
      throw invalid(`chunk ${key}: cannot stage version ${req.version}${replace ? ' (replace)' : ''} over committed version ${commitVersion}`);
    }
    const old = replace || e.committed === undefined ? new Uint8Array(0) : await this.readVerified(e, e.committed, 0, e.committed.lengthBytes, false);
    const lengthBytes = replace ? req.data.byteLength : req.truncate === true ? req.offset : Math.max(old.byteLength, req.offset + req.data.byteLength);
    const fields = { id, version: req.version, chainVersion: req.chainVersion, lengthBytes, blockSizeBytes: this.opts.blockSizeBytes, writeIds: req.writeIds };
    const parts = contentParts(old, replace ? 0 : req.offset, req.data, lengthBytes);
    const { bytes, header } = buildChunkHeader(fields, parts, req.dataPieces === undefined ? undefined : { part: req.data, pieces: req.dataPieces });
    await this.makeFanoutDir(id.inodeId);
    if (e.pending !== undefined) await this.dropPending(e);
    try {
      // Its content is durable; its name becomes durable with syncPendingName (before a member
      // forwards it) or with the commit's directory sync (at the tail, which forwards nothing).
      await this.writeDurably(this.filePath(id, req.version, 'pending'), [bytes, ...parts], req.keepCached === true);
    } finally {
      this.forgetIfEmpty(e);
    }
    e.pending = { ...versionOf(header), recovered: false };
    this.entries.set(key, e);
    return metaOf(e);
  }

  private async commitNow(id: ChunkId, version: number): Promise<ChunkMeta> {
    this.checkWritable();
    const key = chunkKey(id);
    const e = this.entries.get(key);
    const p = e?.pending;
    if (e === undefined || p === undefined || p.version !== version) {
      if (e?.committed?.version === version && p === undefined) return metaOf(e);
      throw invalid(`chunk ${key}: no pending version ${version} to commit (committed ${e?.committed?.version ?? 0}, pending ${p?.version ?? 'none'})`);
    }
    const pendingFile = this.filePath(id, version, 'pending');
    if (p.recovered) await this.confirmRecovered(e, pendingFile);
    // A repair commits the same version's name over a damaged file: an open one is not it.
    this.forgetOpen(key);
    const old = e.committed;
    await this.disk.rename(pendingFile, this.filePath(id, version, 'chunk')).catch((err: unknown) => {
      throw this.writeFailure(pendingFile, err);
    });
    await this.syncDir(this.fanoutPath(id.inodeId));
    e.committed = { version, chainVersion: p.chainVersion, lengthBytes: p.lengthBytes, crc32c: p.crc32c, headerBytes: p.headerBytes, writeIds: p.writeIds };
    e.pending = undefined;
    e.corrupt = undefined;
    // The new version is durable; a leftover old file is removed at the next open if this fails.
    if (old !== undefined && old.version !== version) await this.unlinkQuiet(this.filePath(id, old.version, 'chunk'));
    return metaOf(e);
  }

  private async removeNow(id: ChunkId): Promise<boolean> {
    this.checkWritable();
    const e = this.entries.get(chunkKey(id));
    if (e === undefined) return false;
    // Forget it first, so that reads answer "not found" rather than race the unlinks.
    this.entries.delete(chunkKey(id));
    this.forgetOpen(chunkKey(id));
    if (e.pending !== undefined) await this.unlinkQuiet(this.filePath(id, e.pending.version, 'pending'));
    if (e.committed !== undefined) await this.unlinkQuiet(this.filePath(id, e.committed.version, 'chunk'));
    await this.syncDir(this.fanoutPath(id.inodeId));
    return true;
  }

  /**
   * A pending version found at start-up may never have been fdatasynced (the process died before
   * that finished, and another operation's directory sync made its name durable): verify all of it
   * and sync it before it becomes the committed version.
   */
  private async confirmRecovered(e: Entry, file: string): Promise<void> {
    const f = await this.disk.open(file, 'read');
    try {
      const h = await this.readHeaderOf(f, file);
      let bad: number | undefined = 0;
      if (typeof h !== 'string') {
        const data = await f.read(h.lengthBytes, h.headerBytes);
        bad = firstBadBlock(h, data, 0) ?? (crc32c(data) === h.crc32c ? undefined : 0);
      }
      if (bad !== undefined) {
        e.pending = undefined;
        this.forgetIfEmpty(e);
        await this.unlinkQuiet(file);
        throw new WorkerError(WorkerErrorCode.ChunkCorrupt, `${file}: recovered pending version fails its checksum at data offset ${bad}; it was dropped`, { file, offset: bad });
      }
      await this.syncFile(f);
    } finally {
      await f.close();
    }
  }

  // ---- reading and verifying ---------------------------------------------------------------------

  /** Reads the committed version's range `pick` chooses, retrying if a commit replaced the file meanwhile. */
  private async readCommitted(id: ChunkId, pick: (c: Version) => { offset: number; end: number; whole: boolean }, buffer?: (bytes: number) => Uint8Array): Promise<Uint8Array> {
    if (this.closed) throw closedError(this.dir);
    const key = chunkKey(id);
    for (let attempt = 1; ; attempt++) {
      const e = this.entries.get(key);
      const c = e?.committed;
      if (e === undefined || c === undefined) throw new WorkerError(WorkerErrorCode.ChunkNotFound, `chunk ${key} has no committed version on ${this.dir}`, { chunk: key });
      if (e.corrupt !== undefined) throw corruptError(id, c, e.corrupt);
      const { offset, end, whole } = pick(c);
      if (end <= offset && !whole) return new Uint8Array(0);
      try {
        return await this.readVerified(e, c, offset, end, whole, 'chunk', buffer);
      } catch (err) {
        if (!isErrno(err, 'ENOENT')) throw err;
        if (this.entries.get(key)?.committed !== c && attempt < readAttemptsMax) continue;
        throw this.markCorrupt(e, c, this.filePath(id, c.version, 'chunk'), 0, 'file missing');
      }
    }
  }

  /** Data bytes [offset, end) of version `c`, every block they touch verified; `whole` also checks the whole-data CRC. */
  private async readVerified(e: Entry, c: Version, offset: number, end: number, whole: boolean, state: ChunkFileState = 'chunk', buffer?: (bytes: number) => Uint8Array): Promise<Uint8Array> {
    if (e.corrupt !== undefined && state === 'chunk') throw corruptError(e.id, c, e.corrupt);
    // Reads of part of a committed version use a kept-open file; whole reads (resync, scrub) open
    // it afresh, so that a scrub also reads the header from the disk again.
    if (state === 'chunk' && !whole) {
      const open = await this.openCommitted(e, c);
      try {
        return await this.readBlocks(e, c, open.file, open.f, open.header, offset, end, false, buffer);
      } catch (err) {
        // A file that failed a read is not kept: the next read opens it again.
        if (this.openChunks.get(chunkKey(e.id)) === open) this.forgetOpen(chunkKey(e.id));
        throw err;
      } finally {
        this.unuse(open);
      }
    }
    const file = this.filePath(e.id, c.version, state);
    const f = await this.disk.open(file, 'read');
    try {
      const h = await this.checkedHeaderOf(e, c, f, file);
      return await this.readBlocks(e, c, file, f, h, offset, end, whole, buffer);
    } finally {
      await f.close();
    }
  }

  /** The header of chunk file `file` of version `c`, or the corrupt error its damage is. */
  private async checkedHeaderOf(e: Entry, c: Version, f: DiskFile, file: string): Promise<ChunkHeader> {
    const h = await this.readHeaderOf(f, file);
    if (typeof h === 'string') throw this.markCorrupt(e, c, file, 0, h);
    if (h.version !== c.version || h.inodeId !== e.id.inodeId || h.index !== e.id.index) throw this.markCorrupt(e, c, file, 0, 'header names another chunk or version');
    return h;
  }

  /** Committed version `c` open with its checked header, from the kept-open files or opened now (and kept); a use to give back with unuse. */
  private async openCommitted(e: Entry, c: Version): Promise<OpenChunk> {
    const key = chunkKey(e.id);
    const kept = this.openChunks.get(key);
    if (kept !== undefined && kept.version === c.version) {
      kept.users++;
      // Most recently used last.
      this.openChunks.delete(key);
      this.openChunks.set(key, kept);
      return kept;
    }
    const file = this.filePath(e.id, c.version, 'chunk');
    const f = await this.disk.open(file, 'read');
    let header: ChunkHeader;
    try {
      header = await this.checkedHeaderOf(e, c, f, file);
    } catch (err) {
      await f.close();
      throw err;
    }
    const open: OpenChunk = { version: c.version, file, f, header, users: 1, dropped: false };
    // Still the committed version, and nobody kept another meanwhile: keep this one.
    if (this.entries.get(key)?.committed === c && !this.closed) {
      this.forgetOpen(key);
      this.openChunks.set(key, open);
      for (const [k, o] of this.openChunks) {
        if (this.openChunks.size <= openChunksMax) break;
        if (o.users === 0) this.forgetOpen(k);
      }
    } else {
      open.dropped = true;
    }
    return open;
  }

  private unuse(open: OpenChunk): void {
    open.users--;
    closeIfDone(open);
  }

  /** Drops chunk `key`'s kept-open file; it is closed once its reads are done. */
  private forgetOpen(key: string): void {
    const open = this.openChunks.get(key);
    if (open === undefined) return;
    this.openChunks.delete(key);
    open.dropped = true;
    closeIfDone(open);
  }

  /** Data bytes [offset, end) of an open chunk file with header `h`, every block they touch verified. */
  private async readBlocks(e: Entry, c: Version, file: string, f: DiskFile, h: ChunkHeader, offset: number, end: number, whole: boolean, buffer?: (bytes: number) => Uint8Array): Promise<Uint8Array> {
    const span = blockSpan(h, offset, end);
    if (span === undefined) return new Uint8Array(0);
    const { firstBlock, from, bytes, to } = span;
    const { data: buf, badBlock } = await readOrCorrupt(f, bytes, h.headerBytes + from, buffer?.(bytes), blockCrcsFrom(h, firstBlock), h.blockSizeBytes, (problem) => this.markCorrupt(e, c, file, h.headerBytes + from, problem));
    const bad = badBlockOffset(h, firstBlock, badBlock);
    if (bad !== undefined) throw this.markCorrupt(e, c, file, h.headerBytes + bad, `data block at offset ${bad} fails its CRC32C`);
    if (whole && crc32c(buf) !== h.crc32c) throw this.markCorrupt(e, c, file, h.headerBytes, 'whole-data CRC32C mismatch');
    return buf.subarray(offset - from, to - from);
  }

  /** The header of an open chunk file, or what is wrong with it. */
  private async readHeaderOf(f: DiskFile, file: string): Promise<ChunkHeader | string> {
    try {
      return await readChunkHeader((bytes) => f.read(bytes, 0));
    } catch (err) {
      if (isErrno(err, 'EOF')) return `${file} is shorter than its header`;
      // Listed as damaged (and repaired from another replica), rather than failing the whole worker's start.
      if (isErrno(err, 'EIO')) return `the disk could not read the header of ${file} (EIO)`;
      throw err;
    }
  }

  private markCorrupt(e: Entry, c: Version, file: string, offset: number, problem: string): WorkerError {
    const what = `${file} at offset ${offset}: ${problem}`;
    // Only the version that was read: a commit may have replaced it meanwhile.
    if (e.committed === c && this.entries.get(chunkKey(e.id)) === e && e.corrupt === undefined) {
      e.corrupt = what;
      this.corruptDetected++;
    }
    if (this.openChunks.get(chunkKey(e.id))?.version === c.version) this.forgetOpen(chunkKey(e.id));
    this.opts.log('warn', 'chunk corrupt', { dir: this.dir, chunk: chunkKey(e.id), version: c.version, file, offset, problem });
    return corruptError(e.id, c, what, { file, offset });
  }

  // ---- start-up ------------------------------------------------------------------------------------

  private async scan(): Promise<void> {
    for (const name of await this.disk.readdir(this.chunksDir)) {
      if (!/^[0-9a-f]{2}$/.test(name)) {
        this.opts.log('warn', 'unknown entry in the chunks directory, left alone', { dir: this.chunksDir, name });
        continue;
      }
      const fanout = path.join(this.chunksDir, name);
      this.madeDirs.set(fanout, Promise.resolve());
      await this.scanFanout(fanout, name);
    }
  }

  private async scanFanout(dir: string, name: string): Promise<void> {
    const files = new Map<string, { id: ChunkId; chunk: number[]; pending: number[] }>();
    const doomed: string[] = [];
    for (const file of await this.disk.readdir(dir)) {
      const p = parseChunkFileName(file);
      if (p === undefined || fanoutDirName(p.id.inodeId) !== name) {
        if (file.endsWith('.tmp')) doomed.push(file);
        else this.opts.log('warn', 'unknown file among chunk files, left alone', { dir, file });
        continue;
      }
      const key = chunkKey(p.id);
      const g = files.get(key) ?? { id: p.id, chunk: [], pending: [] };
      g[p.state].push(p.version);
      files.set(key, g);
    }
    for (const [key, g] of files) {
      const e = await this.recoverChunk(g.id, g.chunk.sort((a, b) => b - a), g.pending.sort((a, b) => b - a), doomed);
      if (e !== undefined) this.entries.set(key, e);
    }
    if (doomed.length === 0) return;
    for (const file of doomed) await this.unlinkQuiet(path.join(dir, file));
    await this.syncDir(dir);
    this.opts.log('info', 'removed leftover chunk files', { dir, files: doomed.length });
  }

  /** A chunk's entry from its files (versions newest first); adds the names to delete to `doomed`. */
  private async recoverChunk(id: ChunkId, committed: number[], pending: number[], doomed: string[]): Promise<Entry | undefined> {
    const e: Entry = { id, committed: undefined, pending: undefined, corrupt: undefined };
    const [newest, ...older] = committed;
    for (const v of older) doomed.push(chunkFileName(id, v, 'chunk'));
    if (newest !== undefined) {
      const file = this.filePath(id, newest, 'chunk');
      const h = await this.checkFile(file, id, newest);
      if (typeof h === 'string') {
        // Committed files are synced before their name is: a bad one is damage, not a torn write.
        e.committed = { version: newest, chainVersion: 0, lengthBytes: 0, crc32c: 0, headerBytes: 0, writeIds: [] };
        e.corrupt = `${file}: ${h}`;
        this.corruptDetected++;
        this.opts.log('warn', 'committed chunk file has a damaged header; listed corrupt', { dir: this.dir, file, problem: h });
      } else {
        e.committed = versionOf(h);
      }
    }
    for (const v of pending) {
      const name = chunkFileName(id, v, 'pending');
      if (e.pending !== undefined || v < Math.max(e.committed?.version ?? 0, 1)) {
        doomed.push(name);
        continue;
      }
      const h = await this.checkFile(this.filePath(id, v, 'pending'), id, v);
      if (typeof h === 'string') doomed.push(name);
      else e.pending = { ...versionOf(h), recovered: true };
    }
    return e.committed === undefined && e.pending === undefined ? undefined : e;
  }

  /** The header of a chunk file if it is whole: checksummed, naming this chunk and version, and the file as long as it says. */
  private async checkFile(file: string, id: ChunkId, version: number): Promise<ChunkHeader | string> {
    const f = await this.disk.open(file, 'read');
    try {
      const h = await this.readHeaderOf(f, file);
      if (typeof h === 'string') return h;
      if (h.inodeId !== id.inodeId || h.index !== id.index || h.version !== version) return `header names chunk ${chunkKey(h)} version ${h.version}`;
      const size = await f.size();
      if (size !== h.headerBytes + h.lengthBytes) return `file is ${size} bytes, its header says ${h.headerBytes + h.lengthBytes}`;
      return h;
    } finally {
      await f.close();
    }
  }

  // ---- disk helpers --------------------------------------------------------------------------------

  /** Creates `file` with `bytes` and fdatasyncs it; on failure the file is removed. */
  private async writeDurably(file: string, parts: readonly Uint8Array[], keepCached = false): Promise<void> {
    const cached = this.opts.cacheWrites || keepCached;
    if (!cached && this.direct !== undefined) {
      const bytes = parts.reduce((sum, p) => sum + p.byteLength, 0);
      if (bytes >= directWriteBytesMin && (await this.writeDirect(this.direct, file, parts, bytes))) return;
    }
    // A file system out of inodes fails the create itself with ENOSPC.
    const f = await this.createFile(file).catch((err: unknown) => {
      throw this.writeFailure(file, err);
    });
    let ok = false;
    try {
      try {
        await f.writev(parts, 0);
      } catch (err) {
        throw this.writeFailure(file, err);
      }
      await this.syncFile(f);
      if (!cached) f.dropCache();
      ok = true;
    } finally {
      await f.close();
      if (!ok) await this.unlinkQuiet(file);
    }
  }

  /**
   * writeDurably through direct I/O: `parts` copied into an aligned buffer, padded with zeros to
   * the alignment, written, and the file cut back to `bytes`. False (nothing written) when the
   * target's file system has no direct I/O: the store writes through the page cache from then on.
   */
  private async writeDirect(direct: DirectIo, file: string, parts: readonly Uint8Array[], bytes: number): Promise<boolean> {
    const f = await this.createFile(file, (name) => direct.create(name)).catch((err: unknown) => {
      if (!isErrno(err, 'EINVAL')) throw this.writeFailure(file, err);
      this.noDirectIo(err);
      return undefined;
    });
    if (f === undefined) return false;
    const padded = Math.ceil(bytes / direct.alignBytes) * direct.alignBytes;
    const buf = direct.take(padded);
    let ok = false;
    let refused = false;
    try {
      let at = 0;
      for (const p of parts) {
        buf.set(p, at);
        at += p.byteLength;
      }
      buf.fill(0, bytes, padded);
      try {
        await f.write(buf.subarray(0, padded), 0);
        if (padded !== bytes) await f.truncate(bytes);
      } catch (err) {
        // A device that wants a larger alignment than the buffer's refuses the write itself.
        refused = isErrno(err, 'EINVAL');
        if (!refused) throw this.writeFailure(file, err);
        this.noDirectIo(err);
      }
      if (!refused) {
        await this.syncFile(f);
        ok = true;
      }
    } finally {
      direct.give(buf);
      await f.close();
      if (!ok) await this.unlinkQuiet(file);
    }
    return !refused;
  }

  /** The target's file system or device refused a direct open or write (EINVAL): from now on the store writes through the page cache. */
  private noDirectIo(err: unknown): void {
    this.opts.log('info', 'the target\'s file system has no direct I/O for these writes: chunks are written through the page cache', { dir: this.dir, error: String(err) });
    this.direct = undefined;
  }

  /** Creates `file` new (through `create`: an ordinary or a direct file), replacing a leftover. */
  private async createFile(file: string, create = (name: string) => this.disk.open(name, 'create')): Promise<DiskFile> {
    try {
      return await create(file);
    } catch (err) {
      // A leftover the store lost track of (an unlink that failed): it holds nothing committed.
      if (!isErrno(err, 'EEXIST')) throw err;
      await this.disk.unlink(file);
      return create(file);
    }
  }

  private async syncFile(f: DiskFile): Promise<void> {
    try {
      await f.sync();
    } catch (err) {
      throw this.fail(f.path, err);
    }
  }

  private async syncDir(dir: string): Promise<void> {
    try {
      await this.dirSyncs.sync(dir);
    } catch (err) {
      throw this.fail(dir, err);
    }
  }

  /**
   * An fsync failed: the kernel may have dropped the dirty pages, so a retry could "succeed" over
   * lost data (fsyncgate). The store refuses all further writes; a restart re-reads what is on disk.
   */
  private fail(what: string, err: unknown, op = 'fsync'): WorkerError {
    const message = err instanceof Error ? err.message : String(err);
    this.failure ??= new WorkerError(WorkerErrorCode.TargetFailed, `target ${this.dir} refuses writes: ${op} of ${what} failed (${message}); restart the worker to re-check the disk`, { dir: this.dir }, { cause: err });
    this.opts.log('error', `${op} failed; target refuses writes`, { dir: this.dir, file: what, error: message });
    return this.failure;
  }

  /**
   * A failed create, write or rename of a chunk file: a full disk is TargetFull (writes wait for
   * space); a disk that fails or refuses the store's own files (EIO, a read-only or immutable
   * directory) fails the store as a failed fsync does, so that the target leaves its chains and
   * writes go on without it (it kept serving, and its raw EPERM failed every write of its chains).
   */
  private writeFailure(what: string, err: unknown): unknown {
    if (isNoSpace(err)) {
      this.fullAnswerCount++;
      return spaceError(err, this.dir);
    }
    if (diskFaults.some((code) => isErrno(err, code))) return this.fail(what, err, 'writing');
    // Its directory was made (or its pending file written) before: gone now, the target's files
    // are being removed or its disk unmounted under it.
    if (isErrno(err, 'ENOENT')) return this.fail(what, err, 'writing (a directory or file of the target vanished)');
    return err;
  }

  private async unlinkQuiet(file: string): Promise<void> {
    try {
      await this.disk.unlink(file);
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) this.opts.log('warn', 'could not remove a chunk file; the next start-up retries', { file, error: String(err) });
    }
  }

  private async dropPending(e: Entry): Promise<void> {
    const p = e.pending;
    assert(p !== undefined, 'dropPending of a chunk with a pending version');
    e.pending = undefined;
    await this.unlinkQuiet(this.filePath(e.id, p.version, 'pending'));
  }

  private forgetIfEmpty(e: Entry): void {
    const key = chunkKey(e.id);
    if (e.committed === undefined && e.pending === undefined && this.entries.get(key) === e) this.entries.delete(key);
  }

  private makeFanoutDir(inodeId: number): Promise<void> {
    const dir = this.fanoutPath(inodeId);
    let made = this.madeDirs.get(dir);
    if (made === undefined) {
      // Only the fan-out directory may be new: a missing chunks directory is a target deleted (or
      // unmounted) under the worker, whose tree must not be made again, empty, and served.
      made = this.disk
        .readdir(this.chunksDir)
        .then(() => this.disk.mkdirs(dir))
        .then(async (created) => {
          if (created === undefined) return;
          if (path.resolve(created) !== path.resolve(dir)) throw Object.assign(new Error(`${this.chunksDir} was gone`), { code: 'ENOENT' });
          await this.disk.syncDir(this.chunksDir);
        })
        .catch((err: unknown) => {
          this.madeDirs.delete(dir);
          // Node's recursive mkdir answers ENOENT on a read-only file system: a fault either way.
          throw this.writeFailure(dir, err);
        });
      this.madeDirs.set(dir, made);
    }
    return made;
  }

  private fanoutPath(inodeId: number): string {
    return path.join(this.chunksDir, fanoutDirName(inodeId));
  }

  private filePath(id: ChunkId, version: number, state: ChunkFileState): string {
    return path.join(this.fanoutPath(id.inodeId), chunkFileName(id, version, state));
  }

  // ---- checks and queues -------------------------------------------------------------------------------

  /** Runs `fn` after the chunk's earlier operations: the store stays whole even if callers do not lock. */
  private serial<T>(id: ChunkId, fn: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(closedError(this.dir));
    const key = chunkKey(id);
    let q = this.queues.get(key);
    if (q === undefined) {
      q = { tail: Promise.resolve(), length: 0 };
      this.queues.set(key, q);
    }
    if (q.length >= this.opts.chunkQueueMax) {
      return Promise.reject(new CairnError(ErrorCode.Busy, `chunk ${key} has ${q.length} operations queued (chunkQueueMax); retry later`, { chunk: key }));
    }
    const queue = q;
    queue.length++;
    const result = queue.tail.then(fn);
    const done = () => {
      if (--queue.length === 0 && this.queues.get(key) === queue) this.queues.delete(key);
    };
    queue.tail = result.then(done, done);
    return result;
  }

  /** Checked when an operation runs, not when it is queued: a failure in between stops it. */
  private checkWritable(): void {
    if (this.failure !== undefined) throw new WorkerError(WorkerErrorCode.TargetFailed, this.failure.message, this.failure.details, { cause: this.failure });
  }

  private checkId(id: ChunkId): void {
    if (!isValidChunkId(id)) throw invalid(`bad chunk id ${JSON.stringify(id)}: inodeId 1..2^53-1, index 0..2^32-1`);
  }

  private checkStage(id: ChunkId, req: StageRequest): void {
    checkVersion(req.version, 'version');
    if (!isCount(req.chainVersion)) throw invalid(`bad chain version ${req.chainVersion}`);
    if (!isCount(req.offset)) throw invalid(`bad offset ${req.offset}`);
    if (!(req.data instanceof Uint8Array)) throw invalid('data is not a Uint8Array');
    if (req.replace === true && req.offset !== 0) throw invalid(`a replace writes the whole chunk: offset must be 0, not ${req.offset}`);
    if (req.truncate === true && (req.replace === true || req.data.byteLength !== 0)) throw invalid('a truncate carries no data and replaces nothing');
    const ids = req.writeIds ?? [];
    if (ids.length > writeIdsMax || !ids.every(isWriteId)) throw invalid(`write ids must be at most ${writeIdsMax} of 16 hex digits`);
    const end = req.offset + req.data.byteLength;
    if (end > this.opts.chunkSizeBytesMax) throw invalid(`chunk ${chunkKey(id)}: write ends at ${end}, past chunkSizeBytesMax ${this.opts.chunkSizeBytesMax}`);
  }
}

/**
 * A new version's content as parts of the buffers it comes from, copying nothing: the old content
 * before `at`, zeros for a gap past its end, `data`, and the old content after it, cut to `length`
 * (a truncate passes no data and a shorter length).
 */
function contentParts(old: Uint8Array, at: number, data: Uint8Array, length: number): Uint8Array[] {
  const parts: Uint8Array[] = [];
  const add = (p: Uint8Array): void => {
    if (p.byteLength > 0) parts.push(p);
  };
  add(old.subarray(0, Math.min(at, old.byteLength, length)));
  if (at > old.byteLength) add(new Uint8Array(Math.min(at, length) - old.byteLength));
  const taken = Math.max(0, Math.min(data.byteLength, length - at));
  add(taken === data.byteLength ? data : data.subarray(0, taken)); // data itself: its known piece CRCs apply
  const after = at + data.byteLength;
  if (after < Math.min(old.byteLength, length)) add(old.subarray(after, Math.min(old.byteLength, length)));
  return parts;
}

/** Closes a kept-open file that is out of the cache once no read uses it. */
function closeIfDone(open: OpenChunk): void {
  if (open.dropped && open.users === 0) void open.f.close().catch(() => undefined);
}

/** What a chunk's files take on disk: its committed and pending versions, headers included. */
function bytesOf(e: Entry): number {
  return (e.committed === undefined ? 0 : e.committed.headerBytes + e.committed.lengthBytes) + (e.pending === undefined ? 0 : e.pending.headerBytes + e.pending.lengthBytes);
}

function metaOf(e: Entry): ChunkMeta {
  const c = e.committed;
  const p = e.pending;
  const commitVersion = c?.version ?? 0;
  return {
    id: { ...e.id },
    commitVersion,
    updateVersion: p?.version ?? commitVersion,
    chainVersion: c?.chainVersion ?? 0,
    lengthBytes: c?.lengthBytes ?? 0,
    crc32c: c?.crc32c ?? 0,
    writeIds: c?.writeIds ?? [],
    pending: p === undefined ? undefined : { version: p.version, chainVersion: p.chainVersion, lengthBytes: p.lengthBytes, crc32c: p.crc32c, writeIds: p.writeIds },
    corrupt: e.corrupt,
  };
}

function versionOf(h: ChunkHeader): Version {
  return { version: h.version, chainVersion: h.chainVersion, lengthBytes: h.lengthBytes, crc32c: h.crc32c, headerBytes: h.headerBytes, writeIds: h.writeIds };
}

async function readOrCorrupt(f: DiskFile, length: number, position: number, into: Uint8Array | undefined, crcs: Uint32Array, blockBytes: number, corrupt: (problem: string) => WorkerError): Promise<{ data: Uint8Array; badBlock: number }> {
  try {
    return await f.readChecked(length, position, into, blockBytes, crcs);
  } catch (err) {
    if (isErrno(err, 'EOF')) throw corrupt('file shorter than its header says');
    // An unreadable sector is damage like a flipped bit: this replica is not served, the chunk is
    // read from another, repaired from it (the scrubber and resyncs too), and counted.
    if (isErrno(err, 'EIO')) throw corrupt('the disk could not read it (EIO)');
    throw err;
  }
}

function corruptError(id: ChunkId, c: Version, what: string, where: { file?: string; offset?: number } = {}): WorkerError {
  return new WorkerError(WorkerErrorCode.ChunkCorrupt, `chunk ${chunkKey(id)} version ${c.version} is corrupt: ${what}; read another replica`, { chunk: chunkKey(id), version: c.version, ...where });
}

/** Errors of a chunk file's write that mean the target's disk cannot be trusted with writes. */
const diskFaults = ['EIO', 'EROFS', 'EACCES', 'EPERM'];

/** A write refused because the disk, or the user's quota on it, is full. */
export function isNoSpace(err: unknown): boolean {
  return isErrno(err, 'ENOSPC') || isErrno(err, 'EDQUOT');
}

function spaceError(err: unknown, dir: string): unknown {
  if (!isNoSpace(err)) return err;
  return new WorkerError(WorkerErrorCode.TargetFull, `target ${dir} is full: free space or move chunks off it`, { dir }, { cause: err });
}

function closedError(dir: string): WorkerError {
  return new WorkerError(WorkerErrorCode.TargetUnavailable, `the chunk store of ${dir} is closed`, { dir });
}

function invalid(message: string): WorkerError {
  return new WorkerError(WorkerErrorCode.InvalidArgument, message);
}

function isCount(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

function checkVersion(v: number, what: string): void {
  if (!Number.isSafeInteger(v) || v < 1) throw invalid(`bad ${what} ${v}: a positive integer`);
}

function checkOptions(o: ChunkStoreOptions): Options {
  const opts: Options = {
    identity: o.identity,
    chunkSizeBytesMax: o.chunkSizeBytesMax ?? defaults.chunkSizeBytesMax,
    blockSizeBytes: o.blockSizeBytes ?? defaults.blockSizeBytes,
    chunkQueueMax: o.chunkQueueMax ?? defaults.chunkQueueMax,
    cacheWrites: o.cacheWrites ?? defaults.cacheWrites,
    directWrites: o.directWrites ?? defaults.directWrites,
    log: o.log ?? (() => undefined),
  };
  const bad = (what: string) => new CairnError(ErrorCode.BadOption, `chunk store: ${what}`);
  const { clusterId, workerId, targetId } = opts.identity;
  if (typeof clusterId !== 'string' || clusterId === '' || !isCount(workerId) || !isCount(targetId)) throw bad('identity needs a clusterId and integer workerId and targetId');
  if (!Number.isSafeInteger(opts.chunkSizeBytesMax) || opts.chunkSizeBytesMax < 1 || opts.chunkSizeBytesMax > chunkSizeBytesLimit) throw bad(`chunkSizeBytesMax ${opts.chunkSizeBytesMax} outside 1..${chunkSizeBytesLimit}`);
  const bs = opts.blockSizeBytes;
  if (!Number.isSafeInteger(bs) || bs < 512 || bs > 16 << 20 || (bs & (bs - 1)) !== 0) throw bad(`blockSizeBytes ${bs}: a power of two from 512 to 16 MiB`);
  if (!Number.isSafeInteger(opts.chunkQueueMax) || opts.chunkQueueMax < 1) throw bad(`chunkQueueMax ${opts.chunkQueueMax}: at least 1`);
  return opts;
}

// The Raft write-ahead log on disk: numbered segment files of framed records, one datasync per
// saved batch, repair of a torn tail on open, and deletion of segments a durable snapshot covers.

import { Buffer } from 'node:buffer';
import path from 'node:path';
import { isErrno, type Disk, type DiskFile } from '../../io/index.ts';
import { assert } from '../../errors.ts';
import type { Entry, HardState, SnapshotMeta } from '../../raft/index.ts';
import { JournalError, JournalErrorCode, rebuildFromPeersHint } from './errors.ts';
import { ensureDir } from '../../io/ensure-dir.ts';
import { decodeRecords, encodeRecords, entriesRecords, replayLog, shapeAfterAppend, shapeAfterSnapshot } from './wal-record.ts';
import type { DecodeResult, LogShape, ReplayedState, WalRecord } from './wal-record.ts';

export const segmentBytesMaxDefault = 64 * 1024 * 1024;
/** Segments are read whole on open, so they must stay well below what one read returns. */
export const segmentBytesMaxLimit = 1024 * 1024 * 1024;
/** Tiny segments are only for tests; a segment always takes at least one batch whatever its size. */
export const segmentBytesMaxMin = 128;

/** Rules the simulator can switch off to prove its checkers catch the breakage; never set elsewhere. */
export const walBugNames = ['skip-torn-tail-truncate', 'ignore-fsync-error', 'corrupt-as-torn'] as const;
export type WalBug = (typeof walBugNames)[number];

export interface WalOptions {
  /** A segment rolls before a batch would take it past this size (a lone batch may exceed it). */
  segmentBytesMax?: number;
  bugs?: ReadonlySet<WalBug>;
}

export interface WalRepair {
  segment: string;
  truncatedBytes: number;
  problem: string;
}

export interface WalOpenResult {
  wal: Wal;
  state: ReplayedState;
  repair?: WalRepair;
}

export interface WalStats {
  bytesWritten: number;
  /** File syncs; a save costs exactly one. */
  syncs: number;
  /** Directory syncs, after a segment is created or deleted. */
  dirSyncs: number;
  segments: number;
}

interface Segment {
  seq: number;
  file: string;
  /** Highest entry index written to the segment, 0 if none: it may go once a snapshot covers it. */
  indexMax: number;
  /** The newest snapshot recorded in the segment before its first entry (its header's, usually). */
  anchorIndex?: number;
  /** Indexes of the snapshot records in the segment, ascending. */
  snapIndexes: number[];
}

interface WalInit {
  disk: Disk;
  bugs: ReadonlySet<WalBug>;
  walDir: string;
  segmentBytesMax: number;
  segments: Segment[];
  fh: DiskFile;
  sizeBytes: number;
  state: ReplayedState;
  shape: LogShape;
  stats: WalStats;
}

const segmentNamePattern = /^[0-9a-f]{16}\.wal$/;

export class Wal {
  readonly #disk: Disk;
  readonly #bugs: ReadonlySet<WalBug>;
  readonly #walDir: string;
  readonly #segmentBytesMax: number;
  readonly #segments: Segment[];
  readonly #stats: WalStats;
  #fh: DiskFile;
  #sizeBytes: number;
  /** Size of the current segment's header: a segment holding only its header never rolls. */
  #headerBytes = 0;
  #hardState: HardState;
  #snapshot: SnapshotMeta | undefined;
  #shape: LogShape;
  /** Operations run one at a time, in call order. */
  #queue: Promise<void> = Promise.resolve();
  #failure: unknown;
  #closing: Promise<void> | undefined;

  private constructor(init: WalInit) {
    this.#disk = init.disk;
    this.#bugs = init.bugs;
    this.#walDir = init.walDir;
    this.#segmentBytesMax = init.segmentBytesMax;
    this.#segments = init.segments;
    this.#fh = init.fh;
    this.#sizeBytes = init.sizeBytes;
    this.#hardState = init.state.hardState;
    this.#snapshot = init.state.snapshot;
    this.#shape = init.shape;
    this.#stats = init.stats;
  }

  /**
   * Opens (or creates) the log under `dir/wal` and replays it. A bad tail in the last segment is
   * a torn write: it is cut off on disk and reported. Bad bytes anywhere else throw CAIRN_WAL_CORRUPT.
   */
  static async open(disk: Disk, dir: string, opts: WalOptions = {}): Promise<WalOpenResult> {
    const segmentBytesMax = checkSegmentBytesMax(opts.segmentBytesMax ?? segmentBytesMaxDefault);
    const walDir = path.join(dir, 'wal');
    const stats: WalStats = { bytesWritten: 0, syncs: 0, dirSyncs: await ensureDir(disk, walDir), segments: 0 };
    const seqs = await listSegmentSeqs(disk, walDir);
    if (seqs.length === 0) seqs.push(0);
    const bugs = opts.bugs ?? new Set();
    const loaded = await loadSegments(disk, walDir, seqs, stats, bugs);
    try {
      const { state, shape } = replayOrThrow(walDir, loaded.records);
      const wal = new Wal({ disk, bugs, walDir, segmentBytesMax, ...loaded, state, shape, stats });
      if (loaded.sizeBytes === 0) await wal.#serial(() => wal.#writeHeader());
      return loaded.repair ? { wal, state, repair: loaded.repair } : { wal, state };
    } catch (err) {
      await loaded.fh.close();
      throw err;
    }
  }

  /**
   * Appends entries (replacing any stored suffix they overlap) and then the hard state, with one
   * datasync for the whole batch. Entries go first so that a torn batch never leaves a commit
   * index pointing past the stored log.
   */
  save(hardState: HardState | undefined, entries: Entry[]): Promise<void> {
    if (hardState === undefined && entries.length === 0) return Promise.resolve();
    return this.#serial(async () => {
      // Checked before any I/O, so a caller bug never reaches the disk.
      const shape = entries.length > 0 ? shapeAfterAppend(this.#shape, entries) : this.#shape;
      if (hardState) this.#checkHardState(hardState);
      const records = entriesRecords(entries);
      if (hardState) records.push({ kind: 'hardState', hardState });
      await this.#append(records, entries.length > 0 ? entries[entries.length - 1].index : 0);
      this.#shape = shape;
      if (hardState) this.#hardState = hardState;
    });
  }

  /** Records that a snapshot at `meta` is durable elsewhere: replay drops the entries it covers. */
  saveSnapshotMeta(meta: SnapshotMeta): Promise<void> {
    return this.#serial(async () => {
      const shape = shapeAfterSnapshot(this.#shape, meta);
      await this.#append([{ kind: 'snapshot', meta }], 0);
      this.#shape = shape;
      this.#snapshot = meta;
      this.#noteSnapshot(meta.index);
    });
  }

  /**
   * Deletes the oldest segments whose entries are all at or below `index`, never the current one,
   * and only as far as a reopen from the remaining ones still yields the same state (see
   * releasableCount: space may come back a segment roll later). `index` must not pass the newest
   * snapshot record. Resolves to the number of segments deleted.
   */
  releaseTo(index: number): Promise<number> {
    return this.#serial(async () => {
      const snapIndex = this.#shape.snapshot?.index;
      if (snapIndex === undefined || index > snapIndex) {
        throw new JournalError(
          JournalErrorCode.WalBadRelease,
          `wal: cannot release to index ${index}: the newest snapshot record is at ${snapIndex ?? 'none'}; call saveSnapshotMeta first`,
        );
      }
      const deletable = releasableCount(this.#segments, index);
      // Oldest first, so a crash part way leaves a contiguous run of segments.
      for (let i = 0; i < deletable; i++) {
        await this.#disk.unlink(this.#segments[0].file);
        this.#segments.shift();
      }
      if (deletable > 0) await this.#syncDir();
      return deletable;
    });
  }

  /** Waits for queued operations, then closes the current segment. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#queue.then(() => this.#fh.close());
    return this.#closing;
  }

  stats(): WalStats {
    return { ...this.#stats, segments: this.#segments.length };
  }

  #serial<T>(op: () => Promise<T>): Promise<T> {
    if (this.#closing) return Promise.reject(new JournalError(JournalErrorCode.WalClosed, 'wal: used after close'));
    const run = this.#queue.then(() => {
      if (this.#failure !== undefined) {
        throw new JournalError(
          JournalErrorCode.WalFailed,
          `wal: an earlier write or sync failed (${String(this.#failure)}); restart the node to recover from disk`,
          { cause: this.#failure },
        );
      }
      return op();
    });
    this.#queue = run.then(noop, noop);
    return run;
  }

  /** Raft never lowers its term or commit index, nor changes a vote already cast in a term. */
  #checkHardState(next: HardState): void {
    const prev = this.#hardState;
    const votedTwice = next.term === prev.term && prev.vote !== 0 && next.vote !== prev.vote;
    if (next.term < prev.term || next.commit < prev.commit || votedTwice) {
      throw new JournalError(
        JournalErrorCode.WalBadAppend,
        `wal: hard state ${JSON.stringify(next)} goes backwards from ${JSON.stringify(prev)}`,
      );
    }
  }

  /** Writes one batch; an I/O failure leaves the file in an unknown state, so the log stops. */
  async #append(records: WalRecord[], indexMax: number): Promise<void> {
    const batch = encodeRecords(records);
    try {
      const rolls = this.#sizeBytes > this.#headerBytes && this.#sizeBytes + batch.length > this.#segmentBytesMax;
      if (rolls) await this.#roll(batch);
      else await this.#write(batch);
    } catch (err) {
      if (err instanceof JournalError && err.code === JournalErrorCode.DiskFull) throw err;
      this.#failure = err;
      throw err;
    }
    const current = this.#currentSegment();
    current.indexMax = Math.max(current.indexMax, indexMax);
  }

  #noteSnapshot(index: number): void {
    const current = this.#currentSegment();
    if (current.indexMax === 0) current.anchorIndex = index;
    if (current.snapIndexes[current.snapIndexes.length - 1] !== index) current.snapIndexes.push(index);
  }

  #currentSegment(): Segment {
    return this.#segments[this.#segments.length - 1];
  }

  async #write(buf: Uint8Array): Promise<void> {
    try {
      await this.#fh.write(buf, this.#sizeBytes);
    } catch (err) {
      if (!isErrno(err, 'ENOSPC')) throw err;
      // Cut what part of the batch landed, so the segment ends on a whole record again.
      await this.#fh.truncate(this.#sizeBytes);
      throw diskFull(this.#fh.path, err);
    }
    this.#sizeBytes += buf.byteLength;
    this.#stats.bytesWritten += buf.byteLength;
    await this.#sync(this.#fh);
    this.#stats.syncs++;
  }

  /** A segment starts with the state so far, so replay works once older segments are deleted. */
  #headerRecords(): WalRecord[] {
    const records: WalRecord[] = [{ kind: 'hardState', hardState: this.#hardState }];
    if (this.#snapshot) records.push({ kind: 'snapshot', meta: this.#snapshot });
    return records;
  }

  /** For a last segment that holds nothing, as after a crash while it was being created. */
  async #writeHeader(): Promise<void> {
    const header = encodeRecords(this.#headerRecords());
    await this.#write(header);
    this.#headerBytes = header.length;
    if (this.#snapshot) this.#noteSnapshot(this.#snapshot.index);
  }

  /**
   * Starts the next segment with its header and `batch` in one write and one sync. A crash part
   * way leaves a new last segment with a torn tail, which open() repairs.
   */
  async #roll(batch: Buffer): Promise<void> {
    const header = encodeRecords(this.#headerRecords());
    const buf = Buffer.concat([header, batch]);
    const seq = this.#currentSegment().seq + 1;
    const file = segmentPath(this.#walDir, seq);
    const fh = await this.#disk.open(file, 'create');
    try {
      await fh.write(buf, 0);
      await this.#sync(fh);
    } catch (err) {
      await fh.close().catch(noop);
      if (!isErrno(err, 'ENOSPC')) throw err;
      // The new segment never became part of the log: it goes, and the roll can be tried again.
      await this.#disk.unlink(file);
      throw diskFull(file, err);
    }
    this.#stats.bytesWritten += buf.length;
    this.#stats.syncs++;
    const previous = this.#fh;
    this.#fh = fh;
    this.#segments.push({ seq, file, indexMax: 0, snapIndexes: [] });
    if (this.#snapshot) this.#noteSnapshot(this.#snapshot.index);
    this.#sizeBytes = buf.length;
    this.#headerBytes = header.length;
    await previous.close();
    await this.#syncDir();
  }

  /**
   * After a failed fsync the kernel may have dropped the dirty pages and marked them clean, so a
   * retry would "succeed" without the data (PostgreSQL's fsyncgate): the error stops the log, and a
   * restart recovers what is durable. With the bug, the error is ignored.
   */
  async #sync(fh: DiskFile): Promise<void> {
    try {
      await fh.sync();
    } catch (err) {
      if (!this.#bugs.has('ignore-fsync-error')) throw err;
    }
  }

  async #syncDir(): Promise<void> {
    await this.#disk.syncDir(this.#walDir);
    this.#stats.dirSyncs++;
  }
}

interface LoadedSegments {
  records: WalRecord[];
  segments: Segment[];
  /** The last segment, open for appending. */
  fh: DiskFile;
  sizeBytes: number;
  repair?: WalRepair;
}

/** Reads every segment in order; only the last may have a bad tail, which is cut off. */
async function loadSegments(disk: Disk, walDir: string, seqs: number[], stats: WalStats, bugs: ReadonlySet<WalBug>): Promise<LoadedSegments> {
  const records: WalRecord[] = [];
  const segments: Segment[] = [];
  for (const seq of seqs.slice(0, -1)) {
    const file = segmentPath(walDir, seq);
    const decoded = decodeRecords(await disk.readFile(file));
    if (decoded.problem) throw damaged(file, decoded, 'it is not the last segment, so no torn write explains it');
    appendAll(records, decoded.records);
    segments.push({ seq, file, ...summarize(decoded.records) });
  }
  const seq = seqs[seqs.length - 1];
  const file = segmentPath(walDir, seq);
  const last = await openLastSegment(disk, file, stats);
  try {
    const decoded = decodeRecords(await last.read(await last.size(), 0));
    // With the bug, damage in the middle is cut off like a torn tail, with everything after it.
    if (decoded.validRecordAfter !== undefined && !bugs.has('corrupt-as-torn')) {
      throw damaged(file, decoded, `a valid record follows at offset ${decoded.validRecordAfter}, so no torn write explains it; nothing was truncated`);
    }
    appendAll(records, decoded.records);
    segments.push({ seq, file, ...summarize(decoded.records) });
    if (decoded.problem && bugs.has('skip-torn-tail-truncate')) {
      // The bug: the torn bytes stay, and the next batch is appended after them.
      return { records, segments, fh: last, sizeBytes: decoded.validBytes + decoded.tornBytes };
    }
    const repair = decoded.problem ? await truncateTail(last, file, decoded.validBytes, decoded.tornBytes, decoded.problem) : undefined;
    if (repair) stats.syncs++;
    return { records, segments, fh: last, sizeBytes: decoded.validBytes, ...(repair ? { repair } : {}) };
  } catch (err) {
    await last.close();
    throw err;
  }
}

/** Opens the last segment for writing, creating it (and syncing the directory) if it is new. */
async function openLastSegment(disk: Disk, file: string, stats: WalStats): Promise<DiskFile> {
  try {
    return await disk.open(file, 'update');
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err;
  }
  const fh = await disk.open(file, 'create');
  await disk.syncDir(path.dirname(file));
  stats.dirSyncs++;
  return fh;
}

async function truncateTail(fh: DiskFile, file: string, validBytes: number, tornBytes: number, problem: string): Promise<WalRepair> {
  await fh.truncate(validBytes);
  await fh.sync();
  return { segment: file, truncatedBytes: tornBytes, problem };
}

function replayOrThrow(walDir: string, records: WalRecord[]): ReturnType<typeof replayLog> {
  try {
    return replayLog(records);
  } catch (err) {
    if (!(err instanceof JournalError)) throw err;
    throw new JournalError(
      JournalErrorCode.WalCorrupt,
      `wal in ${walDir} does not replay to a valid log (${err.message}); ${rebuildFromPeersHint}`,
      { cause: err },
    );
  }
}

function summarize(records: WalRecord[]): Omit<Segment, 'seq' | 'file'> {
  const summary: Omit<Segment, 'seq' | 'file'> = { indexMax: 0, snapIndexes: [] };
  for (const record of records) {
    if (record.kind === 'entries' && record.entries.length > 0) {
      summary.indexMax = Math.max(summary.indexMax, record.entries[record.entries.length - 1].index);
    } else if (record.kind === 'snapshot') {
      if (summary.indexMax === 0) summary.anchorIndex = record.meta.index;
      if (summary.snapIndexes[summary.snapIndexes.length - 1] !== record.meta.index) summary.snapIndexes.push(record.meta.index);
    }
  }
  return summary;
}

/**
 * How many of the oldest segments may go: none is current, each holds entries only up to `index`,
 * and replaying from the first one kept must give what replaying everything gives. That holds
 * when the kept segment's leading snapshot covers every deleted entry, or when the first newer
 * snapshot recorded from there on lies above them all: replay then starts mid-log, and that
 * snapshot, whose own entry was kept, decides the suffix exactly as a full replay would.
 */
function releasableCount(segments: Segment[], index: number): number {
  let count = 0;
  let deletedIndexMax = 0;
  for (let k = 1; k < segments.length && segments[k - 1].indexMax <= index; k++) {
    deletedIndexMax = Math.max(deletedIndexMax, segments[k - 1].indexMax);
    const anchor = segments[k].anchorIndex;
    const anchored = anchor !== undefined && deletedIndexMax <= anchor;
    const bridge = firstSnapshotAbove(segments, k, anchor ?? -1);
    if (anchored || (bridge !== undefined && deletedIndexMax < bridge)) count = k;
  }
  return count;
}

function firstSnapshotAbove(segments: Segment[], from: number, index: number): number | undefined {
  for (let k = from; k < segments.length; k++) {
    const found = segments[k].snapIndexes.find((snapIndex) => snapIndex > index);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** Segment numbers in order; a gap means a segment went missing, which replay cannot survive. */
async function listSegmentSeqs(disk: Disk, walDir: string): Promise<number[]> {
  const names = (await disk.readdir(walDir)).filter((name) => segmentNamePattern.test(name));
  const seqs = names.map((name) => parseInt(name.slice(0, 16), 16)).sort((a, b) => a - b);
  for (let i = 1; i < seqs.length; i++) {
    if (seqs[i] !== seqs[i - 1] + 1) {
      throw corrupt(segmentPath(walDir, seqs[i - 1] + 1), 'missing between two present segments');
    }
  }
  return seqs;
}

function segmentPath(walDir: string, seq: number): string {
  assert(Number.isSafeInteger(seq) && seq >= 0, `bad wal segment number ${seq}`);
  return path.join(walDir, `${seq.toString(16).padStart(16, '0')}.wal`);
}

function diskFull(file: string, cause: unknown): JournalError {
  return new JournalError(JournalErrorCode.DiskFull, `wal: no space left to write ${file}; the write can be tried again once space is freed`, { cause });
}

function corrupt(file: string, problem: string): JournalError {
  return new JournalError(JournalErrorCode.WalCorrupt, `wal segment ${file} is corrupt: ${problem}; ${rebuildFromPeersHint}`);
}

/** The record at `decoded.validBytes` is bad and no torn write explains it. */
function damaged(file: string, decoded: DecodeResult, why: string): JournalError {
  const at = decoded.validBytes;
  const problem = (decoded.problem ?? 'bad record').replace(` at offset ${at}`, '');
  return corrupt(file, `damaged at offset ${at} (${problem}); ${why}`);
}

function checkSegmentBytesMax(n: number): number {
  if (!Number.isSafeInteger(n) || n < segmentBytesMaxMin || n > segmentBytesMaxLimit) {
    throw new JournalError(
      JournalErrorCode.WalBadOption,
      `wal: segmentBytesMax ${n} must be an integer in [${segmentBytesMaxMin}, ${segmentBytesMaxLimit}]`,
    );
  }
  return n;
}

/** push(...items) would overflow the stack for a segment of millions of small records. */
function appendAll<T>(into: T[], items: T[]): void {
  for (const item of items) into.push(item);
}

function noop(): void {}

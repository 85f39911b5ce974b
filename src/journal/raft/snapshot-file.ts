// Durable Raft snapshot files under `dir/snap`: streamed to disk piece by piece (never built as
// one buffer), written atomically, verified by checksums on load so that a damaged newest snapshot
// falls back to an older one, and then read back piecewise from the open file.

import { Buffer } from 'node:buffer';
import path from 'node:path';
import { isErrno, type Disk, type DiskFile } from '../../io/index.ts';
import { crc32c } from '@node-rs/crc32';
import { pack, unpack } from 'msgpackr';
import { assert } from '../../errors.ts';
import type { IncomingSnapshotData, Snapshot, SnapshotData, SnapshotMeta, SnapshotSink } from '../../raft/index.ts';
import { JournalError, JournalErrorCode } from './errors.ts';
import { ensureDir } from '../../io/ensure-dir.ts';
import { confNodesMax } from './wal-record.ts';

/** A sanity bound on a snapshot's data: files are read in pieces, so it is not a memory bound. */
export const snapshotDataBytesMax = 2 ** 40;
/** Packed metadata is a few numbers and the membership lists. */
export const snapshotMetaBytesMax = 256 * 1024;
/** Bytes read at a time when verifying or copying a snapshot. */
const pieceBytes = 4 << 20;

const magic = 0x504e5343; // 'CSNP' little-endian
/** 2: the data is length-prefixed frames (version 1 held one msgpack envelope). */
const formatVersion = 2;
/** magic, version, meta length, data length (u64), data crc, header crc. */
const fixedHeaderBytes = 28;
const headerCrcOffset = 24;
const namePattern = /^([0-9a-f]{16})-([0-9a-f]{16})\.snap$/;
const tmpSuffix = '.tmp';
let tmpCounter = 0;

function tmpName(snapDir: string): string {
  return path.join(snapDir, `${(tmpCounter++).toString(16).padStart(8, '0')}${tmpSuffix}`);
}

/** The file name of a snapshot: term then index, 16 hex digits each. */
export function snapshotFileName(meta: SnapshotMeta): string {
  return `${hex16(meta.term)}-${hex16(meta.index)}.snap`;
}

/**
 * A verified snapshot file held open: the core reads its data in bounded pieces (to send to a
 * follower) and the state machine restores from it piece by piece. Close it once it is replaced.
 */
export class SnapshotFile implements SnapshotData {
  readonly path: string;
  readonly meta: SnapshotMeta;
  readonly byteLength: number;
  private readonly dataStart: number;
  private fd: DiskFile | undefined;

  constructor(file: string, fd: DiskFile, meta: SnapshotMeta, dataStart: number, byteLength: number) {
    this.path = file;
    this.fd = fd;
    this.meta = meta;
    this.dataStart = dataStart;
    this.byteLength = byteLength;
  }

  read(offset: number, length: number): Uint8Array {
    if (this.fd === undefined) throw new JournalError(JournalErrorCode.SnapshotCorrupt, `snapshot ${this.path} was closed`);
    assert(
      Number.isSafeInteger(offset) && Number.isSafeInteger(length) && offset >= 0 && length >= 0 && offset + length <= this.byteLength,
      `snapshot read [${offset}, +${length}) outside ${this.byteLength} bytes`,
    );
    return readFully(this.fd, length, this.dataStart + offset);
  }

  snapshot(): Snapshot {
    return { meta: this.meta, data: this };
  }

  close(): void {
    if (this.fd === undefined) return;
    this.fd.closeSync();
    this.fd = undefined;
  }
}

/**
 * Writes one snapshot: `begin` and `write` are synchronous (so a caller can stream a state machine
 * at one consistent point without copying it), `finish` completes the header's checksums, fsyncs,
 * renames the file into place as `<term>-<index>.snap`, fsyncs the directory, and opens it.
 */
export class SnapshotWriter {
  private readonly disk: Disk;
  private readonly snapDir: string;
  private readonly tmp: string;
  private fd: DiskFile | undefined;
  private meta: SnapshotMeta | undefined;
  private headerBytes = 0;
  private bytes = 0;
  private crc = 0;

  private constructor(disk: Disk, snapDir: string, tmp: string, fd: DiskFile) {
    this.disk = disk;
    this.snapDir = snapDir;
    this.tmp = tmp;
    this.fd = fd;
  }

  /** Creates `dir/snap` if needed and opens a temporary file there. */
  static async create(disk: Disk, dir: string): Promise<SnapshotWriter> {
    const snapDir = path.join(dir, 'snap');
    await ensureDir(disk, snapDir);
    // Names come from a counter: a leftover of an earlier process is skipped (or pruned at start).
    for (;;) {
      const tmp = tmpName(snapDir);
      try {
        return new SnapshotWriter(disk, snapDir, tmp, await disk.open(tmp, 'create'));
      } catch (err) {
        if (!isErrno(err, 'EEXIST')) throw err;
      }
    }
  }

  /** As create(), synchronously, in an existing `snapDir`: for a snapshot streamed in while the core steps a message. */
  static createSync(disk: Disk, snapDir: string): SnapshotWriter {
    for (;;) {
      const tmp = tmpName(snapDir);
      try {
        return new SnapshotWriter(disk, snapDir, tmp, disk.openSync(tmp, 'create'));
      } catch (err) {
        if (!isErrno(err, 'EEXIST')) throw err;
      }
    }
  }

  /** Bytes of the data written so far: `length` from `offset`. */
  readData(offset: number, length: number): Uint8Array {
    const fd = this.requireOpen();
    assert(offset >= 0 && length >= 0 && offset + length <= this.bytes, `snapshot read [${offset}, +${length}) outside ${this.bytes} bytes written`);
    return readFully(fd, length, this.headerBytes + offset);
  }

  get dataBytes(): number {
    return this.bytes;
  }

  /** Writes the header (its sizes and checksums are filled in by `finish`). */
  begin(meta: SnapshotMeta): void {
    const fd = this.requireOpen();
    assert(this.meta === undefined, 'snapshot writer: begin called twice');
    const header = encodeSnapshotHeader(meta, 0, 0);
    fd.writeSync(header, 0);
    this.meta = meta;
    this.headerBytes = header.length;
  }

  write(piece: Uint8Array): void {
    this.requireOpen().writeSync(piece, this.nextPosition(piece));
    this.wrote(piece);
  }

  /** As write(), without blocking the event loop on the disk. */
  async writeAsync(piece: Uint8Array): Promise<void> {
    await this.requireOpen().write(piece, this.nextPosition(piece));
    this.wrote(piece);
  }

  private nextPosition(piece: Uint8Array): number {
    assert(this.meta !== undefined, 'snapshot writer: write before begin');
    if (this.bytes + piece.byteLength > snapshotDataBytesMax) {
      throw new JournalError(JournalErrorCode.SnapshotTooLarge, `snapshot data exceeds snapshotDataBytesMax (${snapshotDataBytesMax} bytes)`);
    }
    return this.headerBytes + this.bytes;
  }

  private wrote(piece: Uint8Array): void {
    this.crc = crc32c(piece, this.crc);
    this.bytes += piece.byteLength;
  }

  /** Copies a whole snapshot's data (one received from the leader) in bounded pieces. */
  writeAll(data: SnapshotData): void {
    for (let off = 0; off < data.byteLength; off += pieceBytes) this.write(data.read(off, Math.min(pieceBytes, data.byteLength - off)));
  }

  async finish(): Promise<SnapshotFile> {
    const fd = this.requireOpen();
    const meta = this.meta;
    assert(meta !== undefined, 'snapshot writer: finish before begin');
    const file = path.join(this.snapDir, snapshotFileName(meta));
    try {
      fd.writeSync(encodeSnapshotHeader(meta, this.bytes, this.crc), 0);
      await fd.sync();
      await this.closeFd();
      await this.disk.rename(this.tmp, file);
    } catch (err) {
      await this.abort();
      throw err;
    }
    await this.disk.syncDir(this.snapDir);
    // Its checksum was computed while writing: reading the whole file back would stall as long again.
    return new SnapshotFile(file, this.disk.openSync(file, 'read'), meta, this.headerBytes, this.bytes);
  }

  /** Drops the temporary file (a failed or abandoned snapshot). */
  async abort(): Promise<void> {
    await this.closeFd().catch(noop);
    await this.disk.unlink(this.tmp).catch(noop);
  }

  private requireOpen(): DiskFile {
    assert(this.fd !== undefined, 'snapshot writer is closed');
    return this.fd;
  }

  private async closeFd(): Promise<void> {
    const fd = this.fd;
    this.fd = undefined;
    await fd?.close();
  }
}

/**
 * A snapshot arriving from the leader, written to a temporary file chunk by chunk as it arrives
 * (so a follower's memory stays bounded whatever the snapshot's size), read back from that file
 * once complete, and made durable under its own name by finish().
 */
export class IncomingSnapshotFile implements IncomingSnapshotData, SnapshotData {
  private readonly writer: SnapshotWriter;
  private completed = false;

  constructor(writer: SnapshotWriter) {
    this.writer = writer;
  }

  get byteLength(): number {
    return this.writer.dataBytes;
  }

  write(chunk: Uint8Array): void {
    assert(!this.completed, 'incoming snapshot: write after complete');
    this.writer.write(chunk);
  }

  complete(): SnapshotData {
    this.completed = true;
    return this;
  }

  read(offset: number, length: number): Uint8Array {
    return this.writer.readData(offset, length);
  }

  abort(): void {
    void this.writer.abort();
  }

  /** Completes the header, syncs, and renames the file into place; resolves to the open file. */
  finish(): Promise<SnapshotFile> {
    assert(this.completed, 'incoming snapshot: finish before complete');
    return this.writer.finish();
  }
}

/** The sink a node's core streams incoming snapshots into: temporary files in `dir/snap` (which must exist). */
export function fileSnapshotSink(disk: Disk, dir: string): SnapshotSink {
  const snapDir = path.join(dir, 'snap');
  return {
    begin(meta) {
      const writer = SnapshotWriter.createSync(disk, snapDir);
      try {
        writer.begin(meta);
      } catch (err) {
        void writer.abort();
        throw err;
      }
      return new IncomingSnapshotFile(writer);
    },
  };
}

/** Writes `snap` (a received snapshot) as a file; resolves to the open file. */
export async function saveSnapshot(disk: Disk, dir: string, snap: Snapshot): Promise<SnapshotFile> {
  const w = await SnapshotWriter.create(disk, dir);
  try {
    w.begin(snap.meta);
    w.writeAll(snap.data);
  } catch (err) {
    await w.abort();
    throw err;
  }
  return w.finish();
}

/**
 * The newest snapshot that verifies. Files that fail verification are passed over and listed in
 * `skipped` (one line each: file and reason) for the caller to log.
 */
export async function loadNewestSnapshot(disk: Disk, dir: string): Promise<{ snapshot?: Snapshot; file?: SnapshotFile; skipped: string[] }> {
  const snapDir = path.join(dir, 'snap');
  const skipped: string[] = [];
  for (const name of await listSnapshotsNewestFirst(disk, snapDir)) {
    const file = path.join(snapDir, name);
    const result = openVerified(disk, file, name);
    if (typeof result !== 'string') return { snapshot: result.snapshot(), file: result, skipped };
    skipped.push(`${file}: ${result}`);
  }
  return { skipped };
}

/**
 * Deletes all but the `keep` newest snapshot files, and leftover temporary files from crashed
 * saves unless `temporary` is false (it must be while a save may be running). Resolves to the
 * deleted paths.
 */
export async function pruneSnapshots(disk: Disk, dir: string, keep = 2, opts: { temporary?: boolean } = {}): Promise<string[]> {
  assert(Number.isSafeInteger(keep) && keep >= 1, `pruneSnapshots: keep must be >= 1, got ${keep}`);
  const snapDir = path.join(dir, 'snap');
  const names = await listSnapshotsNewestFirst(disk, snapDir);
  const leftovers = opts.temporary === false ? [] : (await readdirOrEmpty(disk, snapDir)).filter((name) => name.endsWith(tmpSuffix));
  const doomed = [...names.slice(keep), ...leftovers].map((name) => path.join(snapDir, name));
  for (const file of doomed) await disk.unlink(file);
  if (doomed.length > 0) await disk.syncDir(snapDir);
  return doomed;
}

/** Header: fixed fields, then the packed metadata; the header crc covers both. */
export function encodeSnapshotHeader(snapMeta: SnapshotMeta, dataBytes: number, dataCrc: number): Buffer {
  if (dataBytes > snapshotDataBytesMax) {
    throw new JournalError(JournalErrorCode.SnapshotTooLarge, `snapshot data of ${dataBytes} bytes exceeds snapshotDataBytesMax (${snapshotDataBytesMax})`);
  }
  const { index, term, conf } = snapMeta;
  const meta = pack({ index, term, conf: { voters: conf.voters, learners: conf.learners } });
  if (meta.length > snapshotMetaBytesMax) {
    throw new JournalError(JournalErrorCode.SnapshotTooLarge, `snapshot metadata of ${meta.length} bytes exceeds snapshotMetaBytesMax (${snapshotMetaBytesMax})`);
  }
  const header = Buffer.alloc(fixedHeaderBytes + meta.length);
  header.writeUInt32LE(magic, 0);
  header.writeUInt32LE(formatVersion, 4);
  header.writeUInt32LE(meta.length, 8);
  header.writeUInt32LE(dataBytes >>> 0, 12);
  header.writeUInt32LE(Math.floor(dataBytes / 2 ** 32), 16);
  header.writeUInt32LE(dataCrc >>> 0, 20);
  meta.copy(header, fixedHeaderBytes);
  header.writeUInt32LE(headerCrc(header), headerCrcOffset);
  return header;
}

/**
 * Opens and verifies a snapshot file (header, metadata, the data's checksum read through in
 * pieces, the name): the open file, or why it cannot be used.
 */
export function openVerified(disk: Disk, file: string, name: string): SnapshotFile | string {
  let fd: DiskFile;
  try {
    fd = disk.openSync(file, 'read');
  } catch (err) {
    return `cannot open: ${(err as Error).message}`;
  }
  let result: SnapshotFile | string;
  try {
    result = verify(fd, file, name);
  } catch (err) {
    result = `cannot read: ${(err as Error).message}`;
  }
  if (typeof result === 'string') fd.closeSync();
  return result;
}

function verify(fd: DiskFile, file: string, name: string): SnapshotFile | string {
  const size = fd.sizeSync();
  if (size < fixedHeaderBytes) return `file of ${size} bytes is shorter than a header`;
  const fixed = readFully(fd, fixedHeaderBytes, 0);
  if (fixed.readUInt32LE(0) !== magic) return 'not a snapshot file (bad magic)';
  if (fixed.readUInt32LE(4) !== formatVersion) return `unknown format version ${fixed.readUInt32LE(4)}`;
  const metaBytes = fixed.readUInt32LE(8);
  const dataBytes = fixed.readUInt32LE(16) * 2 ** 32 + fixed.readUInt32LE(12);
  if (metaBytes > snapshotMetaBytesMax || dataBytes > snapshotDataBytesMax) return 'declared sizes exceed the limits';
  const dataStart = fixedHeaderBytes + metaBytes;
  if (size !== dataStart + dataBytes) return `file has ${size} bytes, header declares ${dataStart + dataBytes}`;
  const header = Buffer.concat([fixed, readFully(fd, metaBytes, fixedHeaderBytes)]);
  if (headerCrc(header) !== header.readUInt32LE(headerCrcOffset)) return 'header crc mismatch';
  let crc = 0;
  for (let off = 0; off < dataBytes; off += pieceBytes) crc = crc32c(readFully(fd, Math.min(pieceBytes, dataBytes - off), dataStart + off), crc);
  if (crc >>> 0 !== header.readUInt32LE(20)) return 'data crc mismatch';
  const meta = parseMeta(header.subarray(fixedHeaderBytes));
  if (typeof meta === 'string') return meta;
  if (snapshotFileName(meta) !== name) return `metadata (term ${meta.term}, index ${meta.index}) does not match the file name`;
  return new SnapshotFile(file, fd, meta, dataStart, dataBytes);
}

/** A short file is damage: the snapshot's size was checked against its header when it was opened. */
function readFully(fd: DiskFile, length: number, position: number): Buffer {
  try {
    const bytes = fd.readSync(length, position);
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  } catch (err) {
    if (!isErrno(err, 'EOF')) throw err;
    throw new JournalError(JournalErrorCode.SnapshotCorrupt, `snapshot ${fd.path}: ${(err as Error).message}`);
  }
}

/** The crc of the header's bytes other than the crc field itself. */
function headerCrc(header: Buffer): number {
  return crc32c(header.subarray(headerCrcOffset + 4), crc32c(header.subarray(0, headerCrcOffset)));
}

/** Checked field by field: a checksum guards against rot, not against a foreign writer. */
function parseMeta(bytes: Buffer): SnapshotMeta | string {
  let value: unknown;
  try {
    value = unpack(bytes);
  } catch (err) {
    return `metadata does not unpack: ${(err as Error).message}`;
  }
  const v = value as { index?: unknown; term?: unknown; conf?: { voters?: unknown; learners?: unknown } } | null;
  if (typeof v !== 'object' || v === null || !isU53(v.index) || !isU53(v.term)) return 'metadata lacks index or term';
  const voters = v.conf?.voters;
  const learners = v.conf?.learners;
  if (!isNodeList(voters) || !isNodeList(learners)) return 'metadata has a bad membership';
  return { index: v.index, term: v.term, conf: { voters, learners } };
}

function isU53(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

function isNodeList(list: unknown): list is number[] {
  return Array.isArray(list) && list.length <= confNodesMax && list.every(isU53);
}

/** Newest first: by index, then term. */
async function listSnapshotsNewestFirst(disk: Disk, snapDir: string): Promise<string[]> {
  const parsed = (await readdirOrEmpty(disk, snapDir)).flatMap((name) => {
    const match = namePattern.exec(name);
    return match ? [{ name, term: parseInt(match[1], 16), index: parseInt(match[2], 16) }] : [];
  });
  parsed.sort((a, b) => b.index - a.index || b.term - a.term);
  return parsed.map((p) => p.name);
}

async function readdirOrEmpty(disk: Disk, dir: string): Promise<string[]> {
  try {
    return await disk.readdir(dir);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return [];
    throw err;
  }
}

function hex16(n: number): string {
  assert(Number.isSafeInteger(n) && n >= 0, `snapshot term and index must be safe integers, got ${n}`);
  return n.toString(16).padStart(16, '0');
}

function noop(): void {}

// Pure codec for the Raft write-ahead log: framed, checksummed records in a compact binary form,
// and the replay that turns a record sequence back into the log state it describes. No I/O here.

import { Buffer } from 'node:buffer';
import { crc32c } from '@node-rs/crc32';
import { assert } from '../../errors.ts';
import { EntryType } from '../../raft/index.ts';
import type { Entry, HardState, SnapshotMeta } from '../../raft/index.ts';
import { JournalError, JournalErrorCode } from './errors.ts';

export type WalRecord =
  | { kind: 'hardState'; hardState: HardState }
  | { kind: 'entries'; entries: Entry[] }
  | { kind: 'snapshot'; meta: SnapshotMeta };

export interface DecodeResult {
  records: WalRecord[];
  /** Length of the prefix made of whole, verified frames. */
  validBytes: number;
  /** Bytes from the first bad frame to the end: a torn write, or corruption. */
  tornBytes: number;
  problem?: string;
  /**
   * Where the first whole, verified record after the bad frame starts, if one does. A torn write
   * damages only the end of the last batch and leaves nothing valid behind it, so a record here
   * means bytes that were once durable went bad: corruption, not a tail to cut.
   */
  validRecordAfter?: number;
}

export interface ReplayedState {
  hardState: HardState;
  /** Contiguous; the first follows `snapshot.index` when there is a snapshot. */
  entries: Entry[];
  snapshot?: SnapshotMeta;
}

/** Largest payload of one record; a declared length above it can only be corruption. */
export const recordBytesMax = 64 * 1024 * 1024;
/** Largest voter or learner list in a snapshot record. */
export const confNodesMax = 1024;
/** u32 payload length + u32 crc32c of the payload. */
export const frameHeaderBytes = 8;

const kindCode = { hardState: 1, entries: 2, snapshot: 3 } as const;
const kindCodes: ReadonlySet<number> = new Set(Object.values(kindCode));
const u53Bytes = 8;
const hardStatePayloadBytes = 1 + 3 * u53Bytes;
const entriesPayloadBaseBytes = 1 + 4;
/** term, index, u8 type, u32 data length. */
const entryHeaderBytes = 2 * u53Bytes + 1 + 4;
const twoPow32 = 2 ** 32;
/** High word of the largest safe integer: a larger one cannot come from our encoder. */
const u53HighMax = 0x1fffff;
const entryTypes: ReadonlySet<number> = new Set(Object.values(EntryType));

// ---------------------------------------------------------------------------------------------
// Encoding

/** Encodes records into one buffer: sizes first, then a single allocation written in place. */
export function encodeRecords(records: WalRecord[]): Buffer {
  const sizes = records.map(payloadBytes);
  const total = sizes.reduce((sum, n) => sum + frameHeaderBytes + n, 0);
  const buf = Buffer.allocUnsafe(total);
  let off = 0;
  records.forEach((record, i) => {
    const start = off + frameHeaderBytes;
    const end = writePayload(buf, start, record);
    assert(end - start === sizes[i], `record size ${end - start} != computed ${sizes[i]}`);
    buf.writeUInt32LE(sizes[i], off);
    buf.writeUInt32LE(crc32c(buf.subarray(start, end)), off + 4);
    off = end;
  });
  assert(off === total, 'encoded size mismatch');
  return buf;
}

/** Splits entries into as few records as keep each payload within `recordBytesMax`. */
export function entriesRecords(entries: Entry[]): WalRecord[] {
  const records: WalRecord[] = [];
  let chunk: Entry[] = [];
  let bytes = entriesPayloadBaseBytes;
  for (const entry of entries) {
    const n = entryHeaderBytes + entry.data.byteLength;
    if (chunk.length > 0 && bytes + n > recordBytesMax) {
      records.push({ kind: 'entries', entries: chunk });
      chunk = [];
      bytes = entriesPayloadBaseBytes;
    }
    chunk.push(entry);
    bytes += n;
  }
  if (chunk.length > 0) records.push({ kind: 'entries', entries: chunk });
  return records;
}

function payloadBytes(record: WalRecord): number {
  const n = payloadBytesUnchecked(record);
  if (n > recordBytesMax) {
    throw new JournalError(
      JournalErrorCode.WalRecordTooLarge,
      `wal ${record.kind} record of ${n} bytes exceeds recordBytesMax (${recordBytesMax}); split the batch or shrink the entry`,
    );
  }
  return n;
}

function payloadBytesUnchecked(record: WalRecord): number {
  switch (record.kind) {
    case 'hardState':
      return hardStatePayloadBytes;
    case 'entries':
      return record.entries.reduce((sum, e) => sum + entryHeaderBytes + e.data.byteLength, entriesPayloadBaseBytes);
    case 'snapshot':
      return 1 + 2 * u53Bytes + 2 * 4 + u53Bytes * (record.meta.conf.voters.length + record.meta.conf.learners.length);
  }
}

function writePayload(buf: Buffer, off: number, record: WalRecord): number {
  off = buf.writeUInt8(kindCode[record.kind], off);
  switch (record.kind) {
    case 'hardState':
      off = writeU53(buf, off, record.hardState.term, 'hardState.term');
      off = writeU53(buf, off, record.hardState.vote, 'hardState.vote');
      return writeU53(buf, off, record.hardState.commit, 'hardState.commit');
    case 'entries':
      off = buf.writeUInt32LE(record.entries.length, off);
      for (const entry of record.entries) off = writeEntry(buf, off, entry);
      return off;
    case 'snapshot':
      off = writeU53(buf, off, record.meta.index, 'snapshot.index');
      off = writeU53(buf, off, record.meta.term, 'snapshot.term');
      off = writeNodes(buf, off, record.meta.conf.voters);
      return writeNodes(buf, off, record.meta.conf.learners);
  }
}

function writeEntry(buf: Buffer, off: number, entry: Entry): number {
  assert(entryTypes.has(entry.type), `unknown entry type ${entry.type}`);
  off = writeU53(buf, off, entry.term, 'entry.term');
  off = writeU53(buf, off, entry.index, 'entry.index');
  off = buf.writeUInt8(entry.type, off);
  off = buf.writeUInt32LE(entry.data.byteLength, off);
  buf.set(entry.data, off);
  return off + entry.data.byteLength;
}

function writeNodes(buf: Buffer, off: number, nodes: number[]): number {
  assert(nodes.length <= confNodesMax, `${nodes.length} nodes in a conf exceed confNodesMax (${confNodesMax})`);
  off = buf.writeUInt32LE(nodes.length, off);
  for (const node of nodes) off = writeU53(buf, off, node, 'conf node');
  return off;
}

/** Writes a non-negative safe integer as a little-endian u64. */
function writeU53(buf: Buffer, off: number, n: number, what: string): number {
  assert(Number.isSafeInteger(n) && n >= 0, `${what} must be a non-negative safe integer, got ${n}`);
  off = buf.writeUInt32LE(n >>> 0, off);
  return buf.writeUInt32LE(Math.floor(n / twoPow32), off);
}

// ---------------------------------------------------------------------------------------------
// Decoding

/** Decodes whole verified frames up to the first bad one; entry data are views into `input`. */
export function decodeRecords(input: Uint8Array): DecodeResult {
  const buf = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  const records: WalRecord[] = [];
  let off = 0;
  while (off < buf.length) {
    const frame = checkFrame(buf, off);
    if ('problem' in frame) return tornAt(records, buf, off, frame.problem, frame.end);
    try {
      records.push(parsePayload(buf, frame.start, frame.end));
    } catch (err) {
      if (!(err instanceof DecodeError)) throw err;
      return tornAt(records, buf, off, `bad record at offset ${off}: ${err.message}`, frame.end);
    }
    off = frame.end;
  }
  return { records, validBytes: off, tornBytes: 0 };
}

interface Frame {
  start: number;
  end: number;
}

/** Why a frame is bad, and where it ends when its length at least is plausible. */
interface BadFrame {
  problem: string;
  end?: number;
}

/** The frame at `off` if it is whole and its checksum verifies, else why not. */
function checkFrame(buf: Buffer, off: number): Frame | BadFrame {
  const left = buf.length - off;
  if (left < frameHeaderBytes) return { problem: `short frame header at offset ${off} (${left} of ${frameHeaderBytes} bytes)` };
  const len = buf.readUInt32LE(off);
  if (len === 0) return { problem: `empty frame at offset ${off}` };
  if (len > recordBytesMax) return { problem: `oversized frame at offset ${off} (declares ${len} bytes)` };
  if (len > left - frameHeaderBytes) {
    return { problem: `short frame at offset ${off} (declares ${len} bytes, ${left - frameHeaderBytes} present)` };
  }
  const start = off + frameHeaderBytes;
  const end = start + len;
  if (crc32c(buf.subarray(start, end)) !== buf.readUInt32LE(off + 4)) return { problem: `crc mismatch at offset ${off}`, end };
  return { start, end };
}

function tornAt(records: WalRecord[], buf: Buffer, off: number, problem: string, badEnd: number | undefined): DecodeResult {
  const result: DecodeResult = { records, validBytes: off, tornBytes: buf.length - off, problem };
  const after = findRecordAfter(buf, off, badEnd);
  if (after !== undefined) result.validRecordAfter = after;
  return result;
}

/**
 * The first offset after the bad frame at `badOff` where a whole record verifies and parses. It
 * is looked for first where the bad frame's length says the next frame starts, then at every byte,
 * since the length may be what was damaged. Only candidates whose record kind is plausible and
 * that end where another frame could begin are checksummed, so garbage costs little.
 */
function findRecordAfter(buf: Buffer, badOff: number, badEnd: number | undefined): number | undefined {
  if (badEnd !== undefined && isRecordAt(buf, badEnd)) return badEnd;
  for (let off = badOff + 1; off + frameHeaderBytes < buf.length; off++) if (isRecordAt(buf, off)) return off;
  return undefined;
}

function isRecordAt(buf: Buffer, off: number): boolean {
  if (!plausibleFrameStart(buf, off) || off + frameHeaderBytes >= buf.length) return false;
  const len = buf.readUInt32LE(off);
  if (len > buf.length - off - frameHeaderBytes || !plausibleFrameStart(buf, off + frameHeaderBytes + len)) return false;
  const frame = checkFrame(buf, off);
  if ('problem' in frame) return false;
  try {
    parsePayload(buf, frame.start, frame.end);
    return true;
  } catch (err) {
    if (err instanceof DecodeError) return false;
    throw err;
  }
}

/** Whether a frame (whole or torn) could start at `off`: the end, a partial header, or a sane length and kind. */
function plausibleFrameStart(buf: Buffer, off: number): boolean {
  if (buf.length - off < frameHeaderBytes) return true;
  const len = buf.readUInt32LE(off);
  if (len === 0 || len > recordBytesMax) return false;
  return off + frameHeaderBytes >= buf.length || kindCodes.has(buf[off + frameHeaderBytes]);
}

/** A payload that passed its checksum but does not parse: a bug or a format mismatch. */
class DecodeError extends Error {}

/** Bounds-checked reads over one payload. */
class Reader {
  readonly #buf: Buffer;
  readonly #end: number;
  #off: number;

  constructor(buf: Buffer, start: number, end: number) {
    this.#buf = buf;
    this.#off = start;
    this.#end = end;
  }

  get remaining(): number {
    return this.#end - this.#off;
  }

  u8(): number {
    this.#need(1);
    return this.#buf.readUInt8(this.#off++);
  }

  u32(): number {
    this.#need(4);
    const n = this.#buf.readUInt32LE(this.#off);
    this.#off += 4;
    return n;
  }

  u53(what: string): number {
    const low = this.u32();
    const high = this.u32();
    if (high > u53HighMax) throw new DecodeError(`${what} is not a safe integer`);
    return high * twoPow32 + low;
  }

  /** A view, not a copy, so a decoded log shares the bytes it was read from. */
  bytes(n: number): Uint8Array {
    this.#need(n);
    const view = new Uint8Array(this.#buf.buffer, this.#buf.byteOffset + this.#off, n);
    this.#off += n;
    return view;
  }

  end(): void {
    if (this.remaining !== 0) throw new DecodeError(`${this.remaining} trailing bytes`);
  }

  #need(n: number): void {
    if (n > this.remaining) throw new DecodeError(`needs ${n} bytes, ${this.remaining} left`);
  }
}

function parsePayload(buf: Buffer, start: number, end: number): WalRecord {
  const reader = new Reader(buf, start, end);
  const record = parseRecord(reader);
  reader.end();
  return record;
}

function parseRecord(reader: Reader): WalRecord {
  const code = reader.u8();
  switch (code) {
    case kindCode.hardState:
      return {
        kind: 'hardState',
        hardState: { term: reader.u53('term'), vote: reader.u53('vote'), commit: reader.u53('commit') },
      };
    case kindCode.entries:
      return { kind: 'entries', entries: parseEntries(reader) };
    case kindCode.snapshot:
      return { kind: 'snapshot', meta: parseSnapshotMeta(reader) };
    default:
      throw new DecodeError(`unknown record kind ${code}`);
  }
}

function parseEntries(reader: Reader): Entry[] {
  const count = reader.u32();
  // Checked before allocating anything sized by the count.
  if (count * entryHeaderBytes > reader.remaining) throw new DecodeError(`entry count ${count} exceeds the payload`);
  const entries: Entry[] = [];
  for (let i = 0; i < count; i++) {
    const term = reader.u53('entry term');
    const index = reader.u53('entry index');
    const type = reader.u8();
    if (!entryTypes.has(type)) throw new DecodeError(`unknown entry type ${type}`);
    const data = reader.bytes(reader.u32());
    entries.push({ term, index, type: type as EntryType, data });
  }
  return entries;
}

function parseSnapshotMeta(reader: Reader): SnapshotMeta {
  const index = reader.u53('snapshot index');
  const term = reader.u53('snapshot term');
  const voters = parseNodes(reader);
  const learners = parseNodes(reader);
  return { index, term, conf: { voters, learners } };
}

function parseNodes(reader: Reader): number[] {
  const count = reader.u32();
  if (count > confNodesMax) throw new DecodeError(`${count} conf nodes exceed confNodesMax`);
  const nodes: number[] = [];
  for (let i = 0; i < count; i++) nodes.push(reader.u53('conf node'));
  return nodes;
}

// ---------------------------------------------------------------------------------------------
// Replay

/**
 * The log without its data: enough to check that an append or a snapshot keeps it contiguous
 * and its terms non-decreasing. The WAL keeps one of these so that it never writes what replay
 * would reject.
 */
export interface LogShape {
  snapshot?: { index: number; term: number };
  /** The log is empty when lastIndex < firstIndex. */
  firstIndex: number;
  lastIndex: number;
  /** Where each run of equal terms starts, ascending; the first starts at firstIndex. */
  termRuns: { index: number; term: number }[];
}

export function emptyLogShape(): LogShape {
  return { firstIndex: 1, lastIndex: 0, termRuns: [] };
}

/**
 * The shape after appending `entries`: an entry at index i replaces the stored suffix from i.
 * Throws CAIRN_WAL_BAD_APPEND if the result would have a gap, rewrite entries a snapshot covers,
 * or let terms go backwards. `midLogStart` lets a run into an empty log start above the snapshot:
 * replay needs it when older segments, holding the entries between, were released.
 */
export function shapeAfterAppend(shape: LogShape, entries: Entry[], opts: { midLogStart?: boolean } = {}): LogShape {
  assertRun(entries);
  const first = entries[0];
  const last = entries[entries.length - 1];
  const snap = shape.snapshot;
  if (snap && first.index <= snap.index) badAppend(`entry ${first.index} is covered by the snapshot at ${snap.index}`);
  const empty = shape.lastIndex < shape.firstIndex;
  // With nothing stored before it, a run may start anywhere; otherwise it must touch the log.
  const nextMax = !empty ? shape.lastIndex + 1 : snap && !opts.midLogStart ? snap.index + 1 : Infinity;
  if (first.index > nextMax) badAppend(`entry ${first.index} leaves a gap after index ${nextMax - 1}`);
  const firstIndex = empty || first.index < shape.firstIndex ? first.index : shape.firstIndex;
  const termRuns = shape.termRuns.filter((run) => run.index < first.index);
  const prevTerm = termAt(shape, first.index - 1);
  if (prevTerm !== undefined && first.term < prevTerm) {
    badAppend(`entry ${first.index} has term ${first.term}, below the term ${prevTerm} before it`);
  }
  for (const entry of entries) {
    if (termRuns.length === 0 || termRuns[termRuns.length - 1].term !== entry.term) {
      termRuns.push({ index: entry.index, term: entry.term });
    }
  }
  return { snapshot: snap, firstIndex, lastIndex: last.index, termRuns };
}

/**
 * The shape after a snapshot: entries it covers go, and later ones stay only if the log holds the
 * snapshot's own (index, term), since otherwise they belong to a history the snapshot replaced.
 */
export function shapeAfterSnapshot(shape: LogShape, meta: SnapshotMeta): LogShape {
  // Segment headers repeat the newest snapshot. Replaying it again must change nothing, also when
  // replay began mid-log and the stored entries do not (yet) touch it.
  if (shape.snapshot?.index === meta.index && shape.snapshot.term === meta.term) return shape;
  if (shape.snapshot && meta.index < shape.snapshot.index) {
    badAppend(`snapshot at ${meta.index} is older than the snapshot at ${shape.snapshot.index}`);
  }
  const snapshot = { index: meta.index, term: meta.term };
  const next = meta.index + 1;
  const keeps = next >= shape.firstIndex && next <= shape.lastIndex && termAt(shape, meta.index) === meta.term;
  if (!keeps) return { snapshot, firstIndex: next, lastIndex: meta.index, termRuns: [] };
  const termRuns = [{ index: next, term: termAt(shape, next)! }, ...shape.termRuns.filter((run) => run.index > next)];
  return { snapshot, firstIndex: next, lastIndex: shape.lastIndex, termRuns };
}

/** The term of the entry at `index` if the shape knows it. */
export function termAt(shape: LogShape, index: number): number | undefined {
  if (shape.snapshot?.index === index) return shape.snapshot.term;
  if (index < shape.firstIndex || index > shape.lastIndex) return undefined;
  let term: number | undefined;
  for (const run of shape.termRuns) {
    if (run.index > index) break;
    term = run.term;
  }
  return term;
}

/** The state a record sequence describes; throws CAIRN_WAL_BAD_APPEND if it describes no valid log. */
export function replayRecords(records: WalRecord[]): ReplayedState {
  return replayLog(records).state;
}

/** Replay that also returns the log's shape, for a writer that continues where replay stopped. */
export function replayLog(records: WalRecord[]): { state: ReplayedState; shape: LogShape } {
  let hardState: HardState = { term: 0, vote: 0, commit: 0 };
  let snapshot: SnapshotMeta | undefined;
  let shape = emptyLogShape();
  let entries: Entry[] = [];
  let midLogStart = true;
  for (const record of records) {
    if (record.kind === 'hardState') {
      hardState = record.hardState;
    } else if (record.kind === 'entries' && record.entries.length > 0) {
      shape = shapeAfterAppend(shape, record.entries, { midLogStart });
      midLogStart = false;
      truncateAndAppend(entries, record.entries);
    } else if (record.kind === 'snapshot') {
      shape = shapeAfterSnapshot(shape, record.meta);
      snapshot = record.meta;
      entries = entries.length === 0 || shape.lastIndex < shape.firstIndex ? [] : entries.slice(shape.firstIndex - entries[0].index);
    }
    assertMatchesShape(entries, shape);
  }
  // Only a snapshot recorded later may bridge a mid-log start; one that did not is a lost range.
  if (snapshot && entries.length > 0 && entries[0].index !== snapshot.index + 1) {
    badAppend(`the log starts at ${entries[0].index}, not right after the snapshot at ${snapshot.index}`);
  }
  return { state: snapshot ? { hardState, entries, snapshot } : { hardState, entries }, shape };
}

/** In place, so replaying many small batches stays linear. */
function truncateAndAppend(entries: Entry[], appended: Entry[]): void {
  const from = appended[0].index;
  entries.length = entries.length === 0 || from <= entries[0].index ? 0 : from - entries[0].index;
  for (const entry of appended) entries.push(entry);
}

function assertMatchesShape(entries: Entry[], shape: LogShape): void {
  const count = Math.max(0, shape.lastIndex - shape.firstIndex + 1);
  assert(entries.length === count, `replay holds ${entries.length} entries, shape says ${count}`);
  if (count > 0) {
    assert(entries[0].index === shape.firstIndex, 'replay first index differs from shape');
    assert(entries[count - 1].index === shape.lastIndex, 'replay last index differs from shape');
  }
}

/** Entries of one append must be contiguous, start at index 1 or later, with non-decreasing terms. */
function assertRun(entries: Entry[]): void {
  if (entries.length === 0) badAppend('empty append');
  if (!(entries[0].index >= 1)) badAppend(`entry index ${entries[0].index} is below 1`);
  for (let i = 1; i < entries.length; i++) {
    const prev = entries[i - 1];
    const entry = entries[i];
    if (entry.index !== prev.index + 1) badAppend(`entry ${entry.index} does not follow entry ${prev.index}`);
    if (entry.term < prev.term) badAppend(`entry ${entry.index} has term ${entry.term} below ${prev.term}`);
  }
}

function badAppend(message: string): never {
  throw new JournalError(JournalErrorCode.WalBadAppend, `wal: ${message}`);
}

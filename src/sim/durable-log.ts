// What a node's log would be after a crash right now, read off its simulated disk: the durable WAL
// segments replayed with the production codec, under the newest durable snapshot file. The
// checkers ask it whether a committed entry is on a majority's disks. It is kept incrementally
// (segments only grow, except at repair, tear and release), since the checkers ask often.

import {
  decodeRecords,
  emptyLogShape,
  shapeAfterAppend,
  shapeAfterSnapshot,
  termAt,
  type LogShape,
  type WalRecord,
} from '../journal/raft/wal-record.ts';
import type { HardState } from '../raft/index.ts';
import type { SimFs } from './sim-fs.ts';

const snapshotNamePattern = /^([0-9a-f]{16})-([0-9a-f]{16})\.snap$/;

interface SegmentRead {
  name: string;
  epoch: number;
  /** Bytes decoded so far: whole, verified frames. */
  validBytes: number;
  /** A bad frame was met: later bytes of this segment are not part of the log. */
  stopped: boolean;
}

export class DurableLog {
  private readonly fs: SimFs;
  private readonly walDir: string;
  private readonly snapDir: string;
  private generation = -1;
  private segments: SegmentRead[] = [];
  private shape: LogShape = emptyLogShape();
  /** Replay lets the first entries start mid-log (older segments were released). */
  private midLogStart = true;
  private snapFileIndex = 0;
  private snapFileTerm = 0;
  private hardStateNow: HardState = { term: 0, vote: 0, commit: 0 };

  constructor(fs: SimFs, dir: string) {
    this.fs = fs;
    this.walDir = `${dir}/wal`;
    this.snapDir = `${dir}/snap`;
  }

  /** Whether the entry (index, term) survives a crash now: in the synced WAL or under a durable snapshot. */
  hasDurable(index: number, term: number): boolean {
    this.refresh();
    if (index <= this.snapshotIndex()) return true;
    return !this.walDiscarded() && termAt(this.shape, index) === term;
  }

  /** The (index, term) of the last durable entry: the log a node would campaign with after a crash. */
  lastDurable(): { index: number; term: number } {
    this.refresh();
    if (this.walDiscarded() || this.snapFileIndex > this.shape.lastIndex) return { index: this.snapFileIndex, term: this.snapFileTerm };
    const index = Math.max(this.shape.lastIndex, this.shape.snapshot?.index ?? 0);
    return { index, term: termAt(this.shape, index) ?? 0 };
  }

  /**
   * A snapshot file newer than the WAL's record of it whose history the WAL's entries do not
   * continue: a restart keeps none of them (RaftDriver's combine()).
   */
  private walDiscarded(): boolean {
    if (this.snapFileIndex <= (this.shape.snapshot?.index ?? 0)) return false;
    const at = termAt(this.shape, this.snapFileIndex);
    const continues = at === undefined ? this.shape.firstIndex === this.snapFileIndex + 1 && this.shape.lastIndex >= this.shape.firstIndex : at === this.snapFileTerm;
    return !continues;
  }

  /** What the log holds now, fixed: the checkers' view of a node whose disk then rots (a lost replica, not a lost promise). */
  freeze(): { hasDurable(index: number, term: number): boolean; lastDurable(): { index: number; term: number } } {
    this.refresh();
    const shape = { ...this.shape, termRuns: [...this.shape.termRuns] };
    const snapshotIndex = this.snapshotIndex();
    const discarded = this.walDiscarded();
    const last = this.lastDurable();
    return {
      hasDurable: (index, term) => index <= snapshotIndex || (!discarded && termAt(shape, index) === term),
      lastDurable: () => last,
    };
  }

  /** The term and vote a restart would find. */
  hardState(): HardState {
    this.refresh();
    return this.hardStateNow;
  }

  private snapshotIndex(): number {
    return Math.max(this.snapFileIndex, this.shape.snapshot?.index ?? 0);
  }

  private refresh(): void {
    if (this.generation === this.fs.generation) return;
    this.generation = this.fs.generation;
    this.readSnapshots();
    const files = this.fs.durableFiles(this.walDir).filter((f) => f.name.endsWith('.wal'));
    const known = this.segments;
    const appendOnly = known.length <= files.length && known.every((s, i) => s.name === files[i].name && s.epoch === files[i].epoch);
    if (!appendOnly) {
      this.segments = [];
      this.shape = emptyLogShape();
      this.midLogStart = true;
      this.hardStateNow = { term: 0, vote: 0, commit: 0 };
    }
    for (let i = 0; i < files.length; i++) {
      const f = files[i];
      let seg = this.segments[i];
      if (seg === undefined) {
        seg = { name: f.name, epoch: f.epoch, validBytes: 0, stopped: false };
        this.segments.push(seg);
      }
      if (seg.stopped || seg.validBytes >= f.bytes.length) continue;
      const decoded = decodeRecords(f.bytes.subarray(seg.validBytes));
      seg.validBytes += decoded.validBytes;
      if (decoded.problem !== undefined) seg.stopped = true;
      this.apply(decoded.records);
    }
  }

  private apply(records: WalRecord[]): void {
    try {
      for (const r of records) {
        if (r.kind === 'entries' && r.entries.length > 0) {
          this.shape = shapeAfterAppend(this.shape, r.entries, { midLogStart: this.midLogStart });
          this.midLogStart = false;
        } else if (r.kind === 'snapshot') {
          this.shape = shapeAfterSnapshot(this.shape, r.meta);
        } else if (r.kind === 'hardState') {
          this.hardStateNow = r.hardState;
        }
      }
    } catch {
      // A log that does not replay: the node will refuse to start, and holds nothing for sure.
      this.shape = emptyLogShape();
    }
  }

  private readSnapshots(): void {
    this.snapFileIndex = 0;
    this.snapFileTerm = 0;
    for (const f of this.fs.durableFiles(this.snapDir)) {
      const m = snapshotNamePattern.exec(f.name);
      if (m === null) continue;
      const index = parseInt(m[2], 16);
      if (index > this.snapFileIndex) {
        this.snapFileIndex = index;
        this.snapFileTerm = parseInt(m[1], 16);
      }
    }
  }
}

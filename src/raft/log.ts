// The in-memory Raft log: entries after the last compaction point, the commit and apply marks,
// and how far the driver has made the log durable. Pure data structure, no I/O.

import { assert } from '../errors.ts';
import type { Entry, Snapshot } from './types.ts';

/** What an entry costs beyond its data in a message (term, index, type, length): empty entries are not free. */
export const entryOverheadBytes = 24;

export class RaftLog {
  /** Index and term of the entry just before `entries[0]` (the compaction point). */
  offsetIndex = 0;
  offsetTerm = 0;
  entries: Entry[] = [];
  /** The newest snapshot this node holds; its index is >= offsetIndex. */
  snapshot: Snapshot | undefined;
  /** A snapshot received from the leader that the driver has not persisted yet. */
  pendingSnapshot: Snapshot | undefined;
  committed = 0;
  applied = 0;
  /** Highest index the driver has persisted. */
  stabled = 0;

  constructor(snapshot: Snapshot | undefined, entries: Entry[], committed: number) {
    if (snapshot !== undefined) {
      this.snapshot = snapshot;
      this.offsetIndex = snapshot.meta.index;
      this.offsetTerm = snapshot.meta.term;
    }
    for (const e of entries) {
      assert(e.index === this.offsetIndex + this.entries.length + 1, `restored log is not contiguous at ${e.index}`);
      this.entries.push(e);
    }
    this.applied = this.offsetIndex;
    this.committed = Math.max(committed, this.offsetIndex);
    assert(this.committed <= this.lastIndex(), `commit ${committed} is beyond the last index ${this.lastIndex()}`);
    this.stabled = this.lastIndex();
  }

  firstIndex(): number {
    return this.offsetIndex + 1;
  }

  lastIndex(): number {
    return this.offsetIndex + this.entries.length;
  }

  lastTerm(): number {
    return this.term(this.lastIndex()) ?? 0;
  }

  /** Term of the entry at `index`, or undefined when it was compacted away or does not exist. */
  term(index: number): number | undefined {
    if (index === this.offsetIndex) return this.offsetTerm;
    if (index < this.offsetIndex || index > this.lastIndex()) return undefined;
    return this.entries[index - this.offsetIndex - 1].term;
  }

  entry(index: number): Entry | undefined {
    if (index <= this.offsetIndex || index > this.lastIndex()) return undefined;
    return this.entries[index - this.offsetIndex - 1];
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Whether a log ending at (lastIndex, lastTerm) is at least as up to date as ours (Raft §5.4.1). */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ourTerm = this.lastTerm();
    return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex >= this.lastIndex());
  }

  /**
   * Entries from `lo` up to `hi` inclusive, at most `bytesMax` of data but always at least one.
   * Undefined when `lo` was compacted away.
   */
  slice(lo: number, hi: number, bytesMax: number): Entry[] | undefined {
    if (lo <= this.offsetIndex) return undefined;
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i <= Math.min(hi, this.lastIndex()); i++) {
      const e = this.entries[i - this.offsetIndex - 1];
      bytes += e.data.length + entryOverheadBytes;
      if (out.length > 0 && bytes > bytesMax) break;
      out.push(e);
    }
    return out;
  }

  /**
   * Appends entries that follow (prevIndex, prevTerm) from a leader; returns the last index they
   * vouch for and the first index written (0 when all were present already), or undefined when
   * the previous entry does not match.
   */
  maybeAppend(prevIndex: number, prevTerm: number, entries: Entry[]): { lastNew: number; conflict: number } | undefined {
    if (!this.matchTerm(prevIndex, prevTerm)) return undefined;
    const conflict = this.findConflict(entries);
    if (conflict !== 0) {
      if (conflict <= this.committed) assert(false, `entry ${conflict} conflicts with the committed log (commit ${this.committed})`);
      this.append(entries.slice(conflict - entries[0].index));
    }
    return { lastNew: prevIndex + entries.length, conflict };
  }

  /** The index of the first entry that is new or conflicts with ours; 0 when all are present. */
  private findConflict(entries: Entry[]): number {
    for (const e of entries) {
      if (e.index <= this.offsetIndex) continue; // compacted, hence committed and matching
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /** Appends entries, truncating any conflicting suffix first. */
  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    const first = entries[0].index;
    // Checks on the hot path build their message only when they fail.
    if (first <= this.committed) assert(false, `append at ${first} would overwrite committed ${this.committed}`);
    if (first > this.lastIndex() + 1) assert(false, `append at ${first} leaves a gap after ${this.lastIndex()}`);
    const keep = first - this.offsetIndex - 1;
    if (keep < this.entries.length) this.entries.length = keep;
    for (const e of entries) this.entries.push(e);
    if (first - 1 < this.stabled) this.stabled = first - 1;
  }

  /** Whether entries exist that the driver has not persisted yet. */
  hasUnstable(): boolean {
    return this.lastIndex() > this.stabled;
  }

  commitTo(index: number): void {
    if (index <= this.committed) return;
    if (index > this.lastIndex()) assert(false, `commit ${index} is beyond the last index ${this.lastIndex()}`);
    this.committed = index;
  }

  /** Entries after the last stabled index: what the driver must persist next. */
  unstableEntries(): Entry[] {
    return this.entries.slice(Math.max(0, this.stabled - this.offsetIndex));
  }

  /** Marks the log durable up to (index, term) unless it changed since the driver was told. */
  stableTo(index: number, term: number): void {
    if (this.matchTerm(index, term) && index > this.stabled) this.stabled = index;
  }

  /**
   * Committed entries not yet applied, bounded by `bytesMax` (at least one). They may include
   * entries of the same Ready that are still to be persisted: the driver persists before it applies.
   */
  nextCommitted(bytesMax: number): Entry[] {
    if (this.applied >= this.committed) return [];
    return this.slice(this.applied + 1, this.committed, bytesMax) ?? [];
  }

  appliedTo(index: number): void {
    if (index > this.committed) assert(false, `apply ${index} beyond commit ${this.committed}`);
    if (index > this.applied) this.applied = index;
  }

  /** Drops entries up to `index` (inclusive); they must be applied and covered by a snapshot. */
  compactTo(index: number): void {
    if (index <= this.offsetIndex) return;
    assert(index <= this.applied, `compact ${index} beyond applied ${this.applied}`);
    const term = this.term(index);
    assert(term !== undefined, `compact at unknown index ${index}`);
    this.entries = this.entries.slice(index - this.offsetIndex);
    this.offsetIndex = index;
    this.offsetTerm = term;
  }

  /** Replaces the whole log with a snapshot from the leader. */
  restore(snapshot: Snapshot): void {
    this.snapshot = snapshot;
    this.pendingSnapshot = snapshot;
    this.offsetIndex = snapshot.meta.index;
    this.offsetTerm = snapshot.meta.term;
    this.entries = [];
    this.committed = snapshot.meta.index;
    this.stabled = snapshot.meta.index;
  }

  /**
   * The last index <= `index` whose term is <= `term`: where a leader and a follower may agree
   * (etcd's fast backtracking of mismatched logs).
   */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    for (let i = Math.min(index, this.lastIndex()); i >= this.offsetIndex; i--) {
      const t = this.term(i);
      if (t === undefined) break;
      if (t <= term) return { index: i, term: t };
    }
    return { index: this.offsetIndex, term: this.offsetTerm };
  }
}

// A simulated disk for one node: the WAL as real encoded bytes (so replay and torn-tail repair run
// the production codec), snapshots as atomic files, and writes that are lost on a crash unless
// synced. A crash may tear the last unsynced write, leaving a prefix of its bytes.

import type { Entry, HardState, Snapshot } from '../raft/index.ts';
import type { RestoredState } from '../raft/index.ts';
import {
  decodeRecords,
  emptyLogShape,
  replayLog,
  shapeAfterAppend,
  shapeAfterSnapshot,
  termAt,
  encodeRecords,
  type LogShape,
  type WalRecord,
} from '../journal/raft/wal-record.ts';
import type { Prng } from './prng.ts';

export interface LoadResult {
  restored: RestoredState;
  /** Bytes of a torn tail that replay dropped. */
  tornBytes: number;
}

export class SimDisk {
  private durable: Uint8Array[] = [];
  private durableBytes = 0;
  private unsynced: { bytes: Uint8Array; records: WalRecord[] }[] = [];
  /** What the durable WAL describes, kept incrementally for cheap durability checks. */
  private shape: LogShape = emptyLogShape();
  private snapshot: Snapshot | undefined;
  syncs = 0;

  write(hardState: HardState | undefined, entries: Entry[]): void {
    const records: WalRecord[] = [];
    if (entries.length > 0) records.push({ kind: 'entries', entries });
    if (hardState !== undefined) records.push({ kind: 'hardState', hardState });
    if (records.length === 0) return;
    this.unsynced.push({ bytes: encodeRecords(records), records });
  }

  /**
   * Stores a snapshot the way a real node does: the file is written, synced and renamed before the
   * WAL records the snapshot, so it is durable at once.
   */
  saveSnapshot(snap: Snapshot): void {
    if (this.snapshot !== undefined && this.snapshot.meta.index >= snap.meta.index) return;
    this.snapshot = snap;
    const records: WalRecord[] = [{ kind: 'snapshot', meta: snap.meta }];
    this.unsynced.push({ bytes: encodeRecords(records), records });
  }

  sync(): void {
    for (const w of this.unsynced) this.makeDurable(w.bytes, w.records);
    this.unsynced = [];
    this.syncs++;
  }

  /** Loses unsynced writes; with `tear`, a random prefix of the oldest one survives. */
  crash(prng: Prng, tear: boolean): void {
    const first = this.unsynced[0];
    this.unsynced = [];
    if (tear && first !== undefined) {
      const kept = first.bytes.subarray(0, prng.int(first.bytes.length));
      this.durable.push(kept);
      this.durableBytes += kept.length;
    }
  }

  /** Whether the entry (index, term) survives a crash now: in the synced WAL or a snapshot. */
  hasDurable(index: number, term: number): boolean {
    if (this.snapshot !== undefined && index <= this.snapshot.meta.index) return true;
    return termAt(this.shape, index) === term;
  }

  /** The (index, term) of the last durable entry: the log a node would campaign with after a crash. */
  lastDurable(): { index: number; term: number } {
    const index = Math.max(this.shape.lastIndex, this.snapshot?.meta.index ?? 0);
    const term = termAt(this.shape, index) ?? (this.snapshot?.meta.index === index ? this.snapshot.meta.term : 0);
    return { index, term };
  }

  /** Replays the durable bytes as a restarting node would, repairing a torn tail. */
  load(): LoadResult {
    const all = Buffer.concat(this.durable, this.durableBytes);
    const decoded = decodeRecords(all);
    const records = decoded.records;
    this.durable = [all.subarray(0, decoded.validBytes)];
    this.durableBytes = decoded.validBytes;
    // The snapshot file may be newer than the WAL's record of it (a crash between the two
    // writes): recovery records it in the WAL before anything else is appended.
    const walSnapshot = replayLog(records).state.snapshot;
    if (this.snapshot !== undefined && (walSnapshot?.index ?? 0) < this.snapshot.meta.index) {
      const rec: WalRecord[] = [{ kind: 'snapshot', meta: this.snapshot.meta }];
      records.push(...rec);
      this.makeDurable(encodeRecords(rec), []);
    }
    const { state, shape } = replayLog(records);
    this.shape = shape;
    const restored: RestoredState = { hardState: state.hardState, entries: state.entries };
    if (this.snapshot !== undefined) restored.snapshot = this.snapshot;
    return { restored, tornBytes: decoded.tornBytes };
  }

  /** Rewrites the WAL without entries the snapshot covers, as deleting old segments would. */
  compact(hardState: HardState): void {
    if (this.unsynced.length > 0 || this.snapshot === undefined) return;
    const { state } = replayLog(decodeRecords(Buffer.concat(this.durable, this.durableBytes)).records);
    const after = state.entries.filter((e) => e.index > this.snapshot!.meta.index);
    const records: WalRecord[] = [{ kind: 'snapshot', meta: this.snapshot.meta }, { kind: 'hardState', hardState }];
    const contiguous = after.length > 0 && after[0].index === this.snapshot.meta.index + 1;
    if (contiguous) records.push({ kind: 'entries', entries: after });
    const bytes = encodeRecords(records);
    this.durable = [bytes];
    this.durableBytes = bytes.length;
    this.shape = replayLog(records).shape;
  }

  walBytes(): number {
    return this.durableBytes;
  }

  private makeDurable(bytes: Uint8Array, records: WalRecord[]): void {
    this.durable.push(bytes);
    this.durableBytes += bytes.length;
    for (const r of records) {
      if (r.kind === 'entries') this.shape = shapeAfterAppend(this.shape, r.entries);
      else if (r.kind === 'snapshot') this.shape = shapeAfterSnapshot(this.shape, r.meta);
    }
  }
}

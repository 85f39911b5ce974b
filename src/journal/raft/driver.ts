// Drives one Raft core on real time and a real disk: ticks on a timer, and for each Ready applies
// what is committed, persists to the WAL (one fsync per cycle), sends messages (a leader sends
// first: it replicates while its own disk writes), and advances. Transport and state machine are the caller's.

import { Raft, type RaftConfig } from '../../raft/index.ts';
import type { Entry, HardState, Message, ReadState, Ready, Snapshot, SoftState } from '../../raft/index.ts';
import type { RestoredState } from '../../raft/index.ts';
import type { ReplayedState } from './wal-record.ts';
import { loadNewestSnapshot, pruneSnapshots, saveSnapshot } from './snapshot-file.ts';
import { Wal, type WalRepair } from './wal.ts';

export interface RaftDriverOptions {
  dir: string;
  raft: Omit<RaftConfig, 'rand'>;
  tickMs: number;
  send(m: Message): void;
  apply(e: Entry): void;
  restore?(snap: Snapshot): void | Promise<void>;
  onSoftState?(s: SoftState): void;
  onReadState?(r: ReadState): void;
  onError(err: unknown): void;
}

export class RaftDriver {
  readonly raft: Raft;
  private readonly wal: Wal;
  private readonly opts: RaftDriverOptions;
  private timer: NodeJS.Timeout | undefined;
  private cycling = false;
  /** The newest hard state not yet written (commit-only Readies are not synced on their own). */
  private hardStateUnsaved: HardState | undefined;
  private checkpointsWaiting: { takeData: () => Uint8Array; keepEntries: number; resolve(i: number): void; reject(e: unknown): void }[] = [];
  private stopped = false;
  /** What opening found and fixed: a torn WAL tail cut off, snapshot files that failed their checksum. */
  readonly repair: WalRepair | undefined;
  readonly skippedSnapshots: string[];

  private constructor(raft: Raft, wal: Wal, opts: RaftDriverOptions, repair: WalRepair | undefined, skipped: string[]) {
    this.raft = raft;
    this.wal = wal;
    this.opts = opts;
    this.repair = repair;
    this.skippedSnapshots = skipped;
  }

  /** Opens the WAL and newest snapshot under `dir`, restores the core, and starts ticking. */
  static async start(opts: RaftDriverOptions): Promise<RaftDriver> {
    const { snapshot, skipped } = await loadNewestSnapshot(opts.dir);
    const { wal, state, repair } = await Wal.open(opts.dir);
    if (snapshot !== undefined && (state.snapshot?.index ?? 0) < snapshot.meta.index) {
      // The snapshot file outlived the WAL record of it (a crash between the two writes): record
      // it now, before anything else is appended after the entries it replaces.
      await wal.saveSnapshotMeta(snapshot.meta);
    }
    const raft = new Raft({ ...opts.raft, rand: (n) => Math.floor(Math.random() * n) }, combine(state, snapshot));
    if (snapshot !== undefined) await opts.restore?.(snapshot);
    const d = new RaftDriver(raft, wal, opts, repair, skipped);
    d.timer = setInterval(() => {
      d.raft.tick();
      d.kick();
    }, opts.tickMs);
    d.kick();
    return d;
  }

  step(m: Message): void {
    if (this.stopped) return;
    this.raft.step(m);
    this.kick();
  }

  /** Runs ready cycles until the core has nothing more; one at a time. */
  kick(): void {
    if (this.cycling || this.stopped) return;
    this.cycling = true;
    this.cycle()
      .catch((err: unknown) => this.opts.onError(err))
      .finally(() => {
        this.cycling = false;
      });
  }

  private async cycle(): Promise<void> {
    while (!this.stopped && this.raft.hasReady()) {
      const rd = this.raft.ready();
      if (rd.sendBeforePersist) for (const m of rd.messages) this.opts.send(m);
      if (rd.softState !== undefined) this.opts.onSoftState?.(rd.softState);
      // The state machine lives in memory and is rebuilt from snapshot + WAL after a restart, so
      // entries committed (durable on a majority) are applied without waiting for this node's write.
      if (rd.snapshot !== undefined) await this.opts.restore?.(rd.snapshot);
      for (const e of rd.committed) this.opts.apply(e);
      for (const r of rd.readStates) this.opts.onReadState?.(r);
      await this.persist(rd);
      if (this.stopped) return;
      if (!rd.sendBeforePersist) for (const m of rd.messages) this.opts.send(m);
      this.raft.advance();
      if (this.checkpointsWaiting.length > 0) this.runCheckpoints();
    }
  }

  private async persist(rd: Ready): Promise<void> {
    // A moved commit index alone is not worth an fsync: it is learned again from the leader. It
    // rides along with the next synced write instead, so a restart can apply that far at once.
    if (rd.hardState !== undefined) this.hardStateUnsaved = rd.hardState;
    if (!rd.mustSync) return;
    if (rd.snapshot !== undefined) {
      await saveSnapshot(this.opts.dir, rd.snapshot);
      await this.wal.saveSnapshotMeta(rd.snapshot.meta);
    }
    const hardState = this.hardStateUnsaved;
    this.hardStateUnsaved = undefined;
    await this.wal.save(hardState, rd.entries);
  }

  /**
   * Records a state-machine snapshot and frees the log it covers. `takeData` runs at a point where
   * the state machine holds exactly the entries up to the applied index (between two Ready cycles),
   * the snapshot file is durable before the WAL says so, and WAL segments go only after that.
   */
  checkpoint(takeData: () => Uint8Array, keepEntries: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.checkpointsWaiting.push({ takeData, keepEntries, resolve, reject });
      if (!this.cycling) this.runCheckpoints();
    });
  }

  private runCheckpoints(): void {
    const waiting = this.checkpointsWaiting;
    this.checkpointsWaiting = [];
    for (const w of waiting) this.checkpointNow(w.takeData(), w.keepEntries).then(w.resolve, w.reject);
  }

  private async checkpointNow(data: Uint8Array, keepEntries: number): Promise<number> {
    const index = this.raft.log.applied;
    this.raft.compact(index, data, keepEntries);
    const snap = this.raft.log.snapshot!;
    await saveSnapshot(this.opts.dir, snap);
    await this.wal.saveSnapshotMeta(snap.meta);
    await this.wal.releaseTo(Math.min(this.raft.log.offsetIndex, snap.meta.index));
    await pruneSnapshots(this.opts.dir, 2);
    return index;
  }

  walStats(): ReturnType<Wal['stats']> {
    return this.wal.stats();
  }

  /** Stops ticking and closes the WAL; what was not persisted is lost, as in a crash. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.wal.close();
  }
}

/**
 * The state to restart from: the WAL's, under the newest snapshot file. The file may be newer than
 * the WAL's record of it (a crash between the two writes); entries it covers go, and later ones
 * stay only if they continue the snapshot's history.
 */
export function combine(wal: ReplayedState, snapshot: Snapshot | undefined): RestoredState {
  if (snapshot === undefined) return { hardState: wal.hardState, entries: wal.entries };
  const { index, term } = snapshot.meta;
  const at = wal.entries.find((e) => e.index === index);
  const continues = at === undefined ? wal.entries[0]?.index === index + 1 : at.term === term;
  const entries = continues ? wal.entries.filter((e) => e.index > index) : [];
  return { hardState: wal.hardState, entries, snapshot };
}

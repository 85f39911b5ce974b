// Drives one Raft core on a clock and a disk: ticks on a timer, and for each Ready applies what is
// committed, persists to the WAL (one fsync per cycle), sends messages (a leader sends first: it
// replicates while its own disk writes), and advances. Transport and state machine are the caller's.
// Production passes the real disk and clock; the simulator passes its own, and runs this same code.

import { Raft, type RaftConfig } from '../../raft/index.ts';
import type { Entry, HardState, Message, ReadState, Ready, Snapshot, SoftState } from '../../raft/index.ts';
import type { RestoredState } from '../../raft/index.ts';
import type { ReplayedState } from './wal-record.ts';
import path from 'node:path';
import { ensureDir } from '../../io/ensure-dir.ts';
import { IncomingSnapshotFile, SnapshotWriter, fileSnapshotSink, loadNewestSnapshot, pruneSnapshots, saveSnapshot, type SnapshotFile } from './snapshot-file.ts';
import { CairnError, ErrorCode } from '../../errors.ts';
import { isErrno, type Clock, type Disk, type Timer } from '../../io/index.ts';
import { JournalError, JournalErrorCode } from './errors.ts';
import { checkSnapshotReachesWal } from './snapshot-gap.ts';
import { TickClock } from './tick-clock.ts';
import { Wal, type WalBug, type WalRepair } from './wal.ts';
import type { JournalMetrics } from '../metrics.ts';

/** How far persisting a Ready's snapshot got: the file written, then recorded in the WAL. */
interface SnapshotProgress {
  file?: SnapshotFile;
  recorded: boolean;
}

/** How long a Ready waits before its writes are tried again on a full disk. */
export const diskFullRetryMs = 100;
/** Ticks of real time remembered for lease checks: more than any election timeout. */
const tickClockKeepTicks = 1024;

/**
 * Rules of the driver that the simulator can switch off, to prove its checkers catch the breakage
 * (as FoundationDB's BUGGIFY): never set outside the simulator.
 */
export const driverBugNames = ['ack-before-fsync', 'apply-before-commit', 'lease-ticks-only', 'no-snapshot-restore'] as const;
export type DriverBug = (typeof driverBugNames)[number];

export interface RaftDriverOptions {
  disk: Disk;
  clock: Clock;
  dir: string;
  raft: Omit<RaftConfig, 'rand'>;
  tickMs: number;
  send(m: Message): void;
  apply(e: Entry): void;
  restore?(snap: Snapshot): void | Promise<void>;
  onSoftState?(s: SoftState): void;
  onReadState?(r: ReadState): void;
  onError(err: unknown): void;
  /** Sees every Ready before it is handled (the simulator's checkers, metrics). */
  onReady?(rd: Ready): void;
  /** A write found the disk full: the driver waits and tries again (`attempt` counts the tries). */
  onDiskFull?(err: unknown, attempt: number): void;
  bugs?: ReadonlySet<DriverBug | WalBug>;
  walSegmentBytesMax?: number;
  /** Told of each WAL sync (entries, duration) and each checkpoint (duration, size). */
  metrics?: JournalMetrics;
}

export class RaftDriver {
  readonly raft: Raft;
  private readonly wal: Wal;
  private readonly opts: RaftDriverOptions;
  private timer: Timer | undefined;
  /** With the bug 'apply-before-commit': the last entry applied as soon as it was appended. */
  private appliedEarly = 0;
  private cycling = false;
  /** A turn of the read path is queued for the end of this turn of the event loop (see kick). */
  private readPathQueued = false;
  /** The newest hard state not yet written (commit-only Readies are not synced on their own). */
  private hardStateUnsaved: HardState | undefined;
  /** Work that must see no Ready in flight (see betweenCycles). */
  private betweenCyclesWaiting: { run(): void; reject(e: unknown): void }[] = [];
  /** Checkpoints run one after another. */
  private checkpointChain: Promise<unknown> = Promise.resolve();
  /** Snapshot files held open; all but the core's current one are closed once replaced. */
  private readonly snapshotFiles = new Set<SnapshotFile>();
  private stopped = false;
  /** The Ready loop running now, if any: stop() lets it finish its disk writes. */
  private cycleDone: Promise<void> = Promise.resolve();
  /** A Ready failed half way (a disk error): the core and the state machine may disagree, so nothing more runs. */
  private failed = false;
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

  /** Opens the WAL and newest snapshot under `dir`, restores the core, and starts ticking; then call kick(). */
  static async start(opts: RaftDriverOptions): Promise<RaftDriver> {
    // Leftovers of snapshot writes a crash cut short go before anything else writes there (every
    // complete snapshot stays: an older one is the fallback if the newest fails its checksum).
    await pruneSnapshots(opts.disk, opts.dir, Number.MAX_SAFE_INTEGER);
    const { snapshot, file, skipped } = await loadNewestSnapshot(opts.disk, opts.dir);
    const walBugs = new Set([...(opts.bugs ?? [])].filter((b): b is WalBug => !(driverBugNames as readonly string[]).includes(b)));
    const { wal, state, repair } = await Wal.open(opts.disk, opts.dir, { bugs: walBugs, segmentBytesMax: opts.walSegmentBytesMax }).catch((err: unknown) => {
      file?.close();
      throw err;
    });
    try {
      checkSnapshotReachesWal(state.snapshot, snapshot?.meta, skipped, opts.dir);
    } catch (err) {
      file?.close();
      await wal.close();
      throw err;
    }
    if (snapshot !== undefined && (state.snapshot?.index ?? 0) < snapshot.meta.index) {
      // The snapshot file outlived the WAL record of it (a crash between the two writes): record
      // it now, before anything else is appended after the entries it replaces.
      await wal.saveSnapshotMeta(snapshot.meta);
    }
    // Lease reads are checked against real time too: ticks stop while this process stalls. (With
    // the bug, the lease is counted in ticks only.)
    const clock = new TickClock(opts.tickMs, tickClockKeepTicks, () => opts.clock.now());
    const leaseHolds = opts.bugs?.has('lease-ticks-only') ? undefined : (ticksAgo: number, windowTicks: number): boolean => clock.within(ticksAgo, windowTicks);
    // Snapshots from the leader stream into temporary files there as their chunks arrive.
    await ensureDir(opts.disk, path.join(opts.dir, 'snap'));
    const snapshotSink = fileSnapshotSink(opts.disk, opts.dir);
    const raft = new Raft({ ...opts.raft, leaseHolds, snapshotSink, rand: (n) => opts.clock.randomInt(n) }, combine(state, snapshot));
    // With the bug, a restarted node forgets its snapshot and applies the later entries to an empty state.
    if (snapshot !== undefined && !opts.bugs?.has('no-snapshot-restore')) await opts.restore?.(snapshot);
    const d = new RaftDriver(raft, wal, opts, repair, skipped);
    if (file !== undefined) d.snapshotFiles.add(file);
    d.timer = opts.clock.every(opts.tickMs, () => {
      clock.tick();
      d.raft.tick();
      d.kick();
    });
    // No Ready runs yet: the caller kicks once it holds the driver, so its callbacks can use it.
    return d;
  }

  step(m: Message): void {
    if (this.stopped) return;
    this.raft.step(m);
    this.kick();
  }

  /** Runs ready cycles until the core has nothing more; one at a time. */
  kick(): void {
    if (this.stopped || this.failed) return;
    if (this.cycling) {
      // A Ready is being written: reads need not wait for it (heartbeats, their answers, the
      // reads they confirm). Once per turn of the event loop, so that reads arriving together
      // share one heartbeat round.
      if (!this.readPathQueued) {
        this.readPathQueued = true;
        queueMicrotask(() => {
          this.readPathQueued = false;
          if (!this.cycling || this.stopped || this.failed) return;
          const { messages, readStates } = this.raft.takeReadPath();
          for (const m of messages) this.opts.send(m);
          for (const r of readStates) this.opts.onReadState?.(r);
        });
      }
      return;
    }
    this.cycling = true;
    this.cycleDone = this.cycle()
      .catch((err: unknown) => {
        this.failed = true;
        this.opts.onError(err);
      })
      .finally(() => {
        this.cycling = false;
        this.runBetweenCycles();
      });
  }

  private async cycle(): Promise<void> {
    while (!this.stopped && this.raft.hasReady()) {
      const rd = this.raft.ready();
      this.opts.onReady?.(rd);
      // A leader replicates while its own write is in flight; a follower's acks wait for its fsync
      // (with the bug, they do not: it acknowledges entries it may still lose).
      const sendEarly = rd.sendBeforePersist || this.opts.bugs?.has('ack-before-fsync') === true;
      if (sendEarly) for (const m of rd.messages) this.opts.send(m);
      if (rd.softState !== undefined) this.opts.onSoftState?.(rd.softState);
      // The state machine lives in memory and is rebuilt from snapshot + WAL after a restart, so
      // entries committed (durable on a majority) are applied without waiting for this node's write.
      if (rd.snapshot !== undefined) {
        await this.opts.restore?.(rd.snapshot);
        this.appliedEarly = 0;
      }
      this.applyCommitted(rd);
      for (const r of rd.readStates) this.opts.onReadState?.(r);
      await this.persistRetrying(rd);
      if (this.stopped) return;
      if (!sendEarly) for (const m of rd.messages) this.opts.send(m);
      this.raft.advance();
      this.runBetweenCycles();
    }
  }

  private applyCommitted(rd: Ready): void {
    if (this.opts.bugs?.has('apply-before-commit') !== true) {
      for (const e of rd.committed) this.opts.apply(e);
      return;
    }
    // The bug: new entries are applied as soon as they reach the log, before any quorum holds them.
    for (const e of [...rd.committed, ...rd.entries]) {
      if (e.index <= this.appliedEarly) continue;
      this.opts.apply(e);
      this.appliedEarly = e.index;
    }
  }

  /**
   * Persists a Ready; a full disk is waited out (the same writes are tried again every
   * diskFullRetryMs, as nothing of a failed one stays), so the node stalls but loses nothing and
   * resumes by itself once space is freed. Any other failure ends the driver.
   */
  private async persistRetrying(rd: Ready): Promise<void> {
    // A moved commit index alone is not worth an fsync: it is learned again from the leader. It
    // rides along with the next synced write instead, so a restart can apply that far at once.
    if (rd.hardState !== undefined) this.hardStateUnsaved = rd.hardState;
    if (!rd.mustSync) return;
    const progress: SnapshotProgress = { recorded: rd.snapshot === undefined };
    for (let attempt = 1; ; attempt++) {
      try {
        await this.persist(rd, progress);
        return;
      } catch (err) {
        if (!isDiskFull(err) || this.stopped) throw err;
        this.opts.onDiskFull?.(err, attempt);
        await this.opts.clock.sleep(diskFullRetryMs);
        if (this.stopped) return;
      }
    }
  }

  /** Persists a Ready; `progress` remembers how far a try got, so a retry redoes only the rest. */
  private async persist(rd: Ready, progress: SnapshotProgress): Promise<void> {
    if (!progress.recorded && rd.snapshot !== undefined) {
      if (progress.file === undefined) {
        // A snapshot from the leader is already in a file of its own; one made here is copied to one.
        const data = rd.snapshot.data;
        progress.file = data instanceof IncomingSnapshotFile ? await data.finish() : await saveSnapshot(this.opts.disk, this.opts.dir, rd.snapshot);
        this.snapshotFiles.add(progress.file);
      }
      await this.wal.saveSnapshotMeta(rd.snapshot.meta);
      progress.recorded = true;
      this.opts.metrics?.snapshotInstalled(progress.file.byteLength);
      // From now on the snapshot is read from its file; the chunks it arrived in can go.
      this.raft.replaceSnapshotData(progress.file.meta.index, progress.file);
      this.closeReplacedSnapshotFiles();
    }
    const startedMs = this.opts.clock.now();
    await this.wal.save(this.hardStateUnsaved, rd.entries);
    this.opts.metrics?.persisted(rd.entries.length, (this.opts.clock.now() - startedMs) / 1000);
    this.hardStateUnsaved = undefined;
  }

  /**
   * Records a state-machine snapshot and frees the log it covers. `takeData` runs between two
   * Ready cycles, where the state machine holds exactly the entries up to the applied index; its
   * pieces go straight to the snapshot file, so the state is never copied into one buffer. The
   * file is durable before the WAL says so, and WAL segments go only after that.
   */
  checkpoint(takeData: () => Iterable<Uint8Array>, keepEntries: number): Promise<number> {
    const run = this.checkpointChain.then(() => this.checkpointOnce(takeData, keepEntries));
    this.checkpointChain = run.catch(() => undefined);
    return run;
  }

  private async checkpointOnce(takeData: () => Iterable<Uint8Array>, keepEntries: number): Promise<number> {
    const startedMs = this.opts.clock.now();
    const writer = await SnapshotWriter.create(this.opts.disk, this.opts.dir);
    let file: SnapshotFile;
    try {
      const wrote = await this.betweenCycles(() => {
        const index = this.raft.log.applied;
        if (index <= (this.raft.log.snapshot?.meta.index ?? 0)) return false; // nothing new since the last one
        writer.begin(this.raft.snapshotMeta(index));
        for (const piece of takeData()) writer.write(piece);
        return true;
      });
      if (!wrote) {
        await writer.abort();
        return this.raft.log.snapshot?.meta.index ?? 0;
      }
      file = await writer.finish();
    } catch (err) {
      await writer.abort();
      throw err;
    }
    this.opts.metrics?.checkpointed((this.opts.clock.now() - startedMs) / 1000, file.byteLength);
    this.snapshotFiles.add(file);
    await this.betweenCycles(() => this.raft.compact(file.meta.index, file, keepEntries));
    this.closeReplacedSnapshotFiles();
    if (this.raft.log.snapshot?.data !== file) return file.meta.index; // a newer snapshot from the leader won
    await this.wal.saveSnapshotMeta(file.meta);
    await this.wal.releaseTo(Math.min(this.raft.log.offsetIndex, file.meta.index));
    // Temporary files stay: a snapshot from the leader may be being written right now.
    await pruneSnapshots(this.opts.disk, this.opts.dir, 2, { temporary: false });
    return file.meta.index;
  }

  /** Runs `fn` when no Ready is in flight: now if idle, else right after the current one. */
  private betweenCycles<T>(fn: () => T): Promise<T> {
    if (this.stopped || this.failed) return Promise.reject(new CairnError(ErrorCode.Unavailable, 'raft driver stopped'));
    return new Promise((resolve, reject) => {
      this.betweenCyclesWaiting.push({ run: () => resolve(fn()), reject });
      if (!this.cycling) this.runBetweenCycles();
    });
  }

  private runBetweenCycles(): void {
    const waiting = this.betweenCyclesWaiting;
    if (waiting.length === 0) return;
    this.betweenCyclesWaiting = [];
    if (this.failed || this.stopped) {
      // A checkpoint now could label state the core never advanced to with an older index.
      for (const w of waiting) w.reject(new CairnError(ErrorCode.Unavailable, 'raft driver stopped after a failure'));
      return;
    }
    for (const w of waiting) {
      try {
        w.run();
      } catch (err) {
        w.reject(err);
      }
    }
  }

  private closeReplacedSnapshotFiles(): void {
    const current = this.raft.log.snapshot?.data;
    for (const f of this.snapshotFiles) {
      if (f === current) continue;
      f.close();
      this.snapshotFiles.delete(f);
    }
  }

  walStats(): ReturnType<Wal['stats']> {
    return this.wal.stats();
  }

  /** Stops ticking, lets a Ready or checkpoint in flight finish its writes, and closes the WAL. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    const stopped = new CairnError(ErrorCode.Unavailable, 'raft driver stopped');
    for (const w of this.betweenCyclesWaiting.splice(0)) w.reject(stopped);
    // A Ready or a checkpoint in flight finishes its writes first: closing the WAL under it would
    // turn a clean stop into a write failure, and leave a snapshot file open.
    await this.cycleDone;
    await this.checkpointChain;
    await this.wal.close();
    for (const f of this.snapshotFiles) f.close();
    this.snapshotFiles.clear();
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

/** A write that failed for want of space, whole (nothing of it stays): it may be tried again. */
export function isDiskFull(err: unknown): boolean {
  return (err instanceof JournalError && err.code === JournalErrorCode.DiskFull) || isErrno(err, 'ENOSPC');
}

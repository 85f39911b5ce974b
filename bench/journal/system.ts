// What the journal benchmark measures of each system (cairn on a backend, etcd), and the one load
// measurement they all go through: closed-loop writers, with the disk bytes written and the
// entries committed counted over exactly the measured window.

import type { LoadResult, Operation } from '../cluster.ts';
import { measureLoad } from '../cluster.ts';
import { DiskWriteCounter, type Device } from './disk.ts';
import type { FailoverRun } from './failover.ts';
import type { Options } from './options.ts';
import type { Expiry } from './zookeeper.ts';

/** Members of each cluster: cairn masters, etcd members, ZooKeeper servers. */
export const memberCount = 3;
/** Deadline of one load call, cairn's (MasterClient callTimeoutMs) and etcd's alike. */
export const loadCallTimeoutMs = 5_000;

export interface DiskPerEntry {
  /** Bytes written to the data directories' device(s) by the whole machine over the window. */
  deviceBytes: number;
  /** What the system's own processes caused to be written (write_bytes), by process. */
  processBytes: Record<string, number>;
  /** What they passed to write and send calls (wchar: sockets included), by process. */
  processSyscallBytes: Record<string, number>;
  /** Entries committed over the same window, and how they were counted. */
  entries: number;
  entriesCountedBy: string;
}

export interface CatchUpResult {
  master: string;
  /** Entries written while it was down (the target), and how long writing them took. */
  entriesWritten: number;
  writeSeconds: number;
  /** The leader's commit index when the master was restarted, and what the master had applied when killed. */
  leaderCommitIndex: number;
  appliedAtKill: number;
  /** From the restart to the master's first answer (admin.journal.info), and to applied >= leaderCommitIndex. */
  answeredMs: number;
  caughtUpMs: number;
  /** How it caught up: log entries, a snapshot or a peer's checkpoint (from its status and log). */
  how: string;
}

/** What the ZooKeeper servers counted over a measured window (mntr), summed over the servers unless named for the leader. */
export type ZkCounted = Record<string, number>;

export interface SystemResult {
  /** `cairn raft`, `cairn zookeeper`, `etcd`. */
  label: string;
  load: LoadResult;
  disk: DiskPerEntry | undefined;
  failovers: FailoverRun[];
  catchUp?: CatchUpResult;
  /** ZooKeeper only: raw creates on the same ensemble, and every session expiry seen. */
  raw?: { load: LoadResult; disk: DiskPerEntry | undefined; zk: ZkCounted | undefined; sessions: number };
  /** ZooKeeper only: the servers' counters over the journal's measured window. */
  zk?: ZkCounted;
  expiries?: Expiry[];
  extra: Record<string, unknown>;
}

/**
 * The load of `opts` (warm-up, then the measured window), with bytes written to `devices` and the
 * entries `committed()` counts read at the window's edges; without `committed`, entries are the
 * writes acknowledged in the window.
 */
export async function measureLoadAndDisk(
  opts: Options,
  op: Operation,
  pids: Record<string, number>,
  devices: Device[],
  committed?: { count(): Promise<number>; by: string },
  counters?: () => Promise<Record<string, number>>,
): Promise<{ load: LoadResult; disk: DiskPerEntry | undefined; counted: Record<string, number> | undefined }> {
  const counter = devices.length > 0 ? new DiskWriteCounter(devices, { bench: process.pid, ...pids }) : undefined;
  // Read without delaying the window's edges; a failed read counts as unknown, not as a crash.
  let first: Promise<number> | undefined;
  let last: Promise<number> | undefined;
  let countersFirst: Promise<Record<string, number> | undefined> | undefined;
  let countersLast: Promise<Record<string, number> | undefined> | undefined;
  const load = await measureLoad(opts.proposers, opts.seconds, opts.warmupSeconds, op, pids, {
    atStart: () => {
      counter?.start();
      first = committed?.count().catch(() => NaN);
      countersFirst = counters?.().catch(() => undefined);
    },
    atEnd: () => {
      counter?.end();
      last = committed?.count().catch(() => NaN);
      countersLast = counters?.().catch(() => undefined);
    },
  });
  const counted = difference(await countersFirst, await countersLast);
  if (counter?.result === undefined) return { load, disk: undefined, counted };
  const entries = committed === undefined ? load.ops : (await last!) - (await first!);
  return {
    load,
    disk: { deviceBytes: counter.result.deviceBytes, processBytes: counter.result.processBytes, processSyscallBytes: counter.result.processSyscallBytes, entries, entriesCountedBy: committed?.by ?? 'writes acknowledged in the window' },
    counted,
  };
}

/** Each counter's growth from `a` to `b` (those both have). */
function difference(a: Record<string, number> | undefined, b: Record<string, number> | undefined): Record<string, number> | undefined {
  if (a === undefined || b === undefined) return undefined;
  return Object.fromEntries(Object.keys(b).filter((k) => k in a).map((k) => [k, b[k] - a[k]]));
}

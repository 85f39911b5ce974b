// The journal benchmark's output: each system's figures with their units, the systems side by
// side in one table, and the targets judged from the same run.

import { median, type LoadResult } from '../cluster.ts';
import { formatNumber, type Report } from '../report.ts';
import type { DiskPerEntry, SystemResult, ZkCounted } from './system.ts';
import { loadAfterRecoveryMs } from './failover.ts';
import { ensembleServers, spuriousSessions } from './zookeeper.ts';

/** Other work using more than this many cores during a measurement is worth a warning. */
const sharedMachineCoresMin = 0.1;

export const targets = {
  /** cairn on Raft against etcd, from the journal issue. */
  raftThroughputRatioMin: 2,
  raftP99MsMax: 20,
  raftFailoverMsMax: 1_000,
  /** cairn on ZooKeeper: at least raw ZooKeeper's creates/s, failover within the session timeout and a little. */
  zkThroughputRatioMin: 1,
  zkFailoverMsMax: 3_000,
  zkSpuriousExpiriesMax: 0,
};

export function reportLoad(report: Report, label: string, r: LoadResult): void {
  report.figure(`${label}: writes`, r.opsPerSecond, 'ops/s');
  report.figure(`${label}: latency p50`, r.latencyMs.p50, 'ms');
  report.figure(`${label}: latency p90`, r.latencyMs.p90, 'ms');
  report.figure(`${label}: latency p99`, r.latencyMs.p99, 'ms');
  report.figure(`${label}: latency max`, r.latencyMs.max, 'ms');
  report.figure(`${label}: failed writes`, r.errors, 'ops');
  for (const [name, cores] of Object.entries(r.cpuCores)) report.figure(`${label}: CPU used by ${cpuLabel(name)}`, cores, 'cores');
  const others = r.cpuCores['other processes'] ?? 0;
  if (others > sharedMachineCoresMin) report.note(`${label}: other processes used ${formatNumber(others)} cores during the measurement: the machine was shared, the figures are low`);
  for (const e of r.errorSamples) report.note(`${label} write error: ${e}`);
}

function cpuLabel(name: string): string {
  if (name === 'bench') return 'the bench process (clients)';
  if (name === 'interrupts') return 'interrupts (softirq: loopback TCP, disk)';
  if (name === 'steal') return 'the hypervisor (steal)';
  if (name === 'other processes') return 'other processes (not this benchmark)';
  return name;
}

function reportFailovers(report: Report, label: string, runs: SystemResult['failovers']): void {
  if (runs.length === 0) return;
  const rec = runs.map((r) => r.recoveryMs);
  report.figure(`${label}: failover, kill to first write on new leader (median of ${runs.length})`, median(rec), 'ms');
  report.figure(`${label}: failover (min of ${runs.length})`, Math.min(...rec), 'ms');
  report.figure(`${label}: failover (max of ${runs.length})`, Math.max(...rec), 'ms');
  report.figure(`${label}: load clients' longest stall after the kill (median)`, median(runs.map((r) => r.loadStallMs)), 'ms');
  const open = runs.filter((r) => r.loadStallOpen).length;
  if (open > 0) report.note(`${label}: in ${open} of ${runs.length} failovers the load's clients had not resumed ${loadAfterRecoveryMs} ms after the probes did: those stalls are lower bounds`);
}

function reportDisk(report: Report, label: string, d: DiskPerEntry | undefined): void {
  if (d === undefined) return;
  const own = Object.values(d.processBytes).reduce((a, b) => a + b, 0);
  report.figure(`${label}: entries committed in the measured window (${d.entriesCountedBy})`, d.entries, 'entries');
  report.figure(`${label}: disk bytes written per entry, whole machine (device sectors)`, d.deviceBytes / d.entries, 'bytes');
  report.figure(`${label}: disk bytes written per entry, its own processes (write_bytes)`, own / d.entries, 'bytes');
  for (const [name, bytes] of Object.entries(d.processBytes)) if (bytes > 0) report.figure(`${label}: disk bytes written per entry by ${name}`, bytes / d.entries, 'bytes');
  for (const [name, bytes] of Object.entries(d.processSyscallBytes)) if (bytes > 0) report.figure(`${label}: bytes passed to write/send per entry by ${name} (sockets and files)`, bytes / d.entries, 'bytes');
}

/** What the ZooKeeper servers did per entry written (per raw create), from their mntr counters. */
function reportZkCounted(report: Report, label: string, zk: ZkCounted | undefined, entries: number): void {
  if (zk === undefined) return;
  report.figure(`${label}: ZooKeeper transactions per entry (leader's commit count)`, zk.leader_commits / entries, 'txns');
  report.figure(`${label}: ZooKeeper requests received per entry (all servers, reads included)`, zk.zk_packets_received / entries, 'requests');
  report.figure(`${label}: ZooKeeper bytes received per entry (all servers)`, zk.zk_bytes_received_count / entries, 'bytes');
  report.figure(`${label}: entries per transaction-log fsync (each server)`, entries / (zk.zk_cnt_fsynctime / ensembleServers), 'entries');
  report.figure(`${label}: ZooKeeper transaction-log fsync, mean`, zk.zk_sum_fsynctime / zk.zk_cnt_fsynctime, 'ms');
}

/** Every figure of one system. */
export function reportSystem(report: Report, r: SystemResult): void {
  if (r.extra.leader !== undefined) report.note(`${r.label} leader during the measured load: ${String(r.extra.leader)}`);
  reportLoad(report, r.label, r.load);
  reportDisk(report, r.label, r.disk);
  reportZkCounted(report, r.label, r.zk, r.load.ops);
  reportFailovers(report, r.label, r.failovers);
  if (typeof r.extra.entriesCommittedDuringLoad === 'number') report.figure(`${r.label}: entries committed during the load (leader commit index delta, incl. warm-up)`, r.extra.entriesCommittedDuringLoad, 'entries');
  if (r.extra.checkpointsDuringLoad === true) report.note(`${r.label} took a checkpoint (state snapshot) during the measured load`);
  if (r.catchUp !== undefined) {
    const c = r.catchUp;
    report.figure(`${r.label}: catch-up, restart to first answer (${formatNumber(c.leaderCommitIndex - c.appliedAtKill)} entries behind)`, c.answeredMs, 'ms');
    report.figure(`${r.label}: catch-up, restart to applied index = leader's commit index`, c.caughtUpMs, 'ms');
    report.figure(`${r.label}: writes/s while the follower was down (${c.entriesWritten} entries)`, c.entriesWritten / c.writeSeconds, 'ops/s');
    report.note(`${r.label} catch-up of ${c.master} (restarted at leader commit index ${c.leaderCommitIndex}): ${c.how}`);
  }
  if (r.raw !== undefined) {
    const label = `raw ZooKeeper (${r.label}'s ensemble, ${r.raw.sessions} sessions)`;
    reportLoad(report, label, r.raw.load);
    reportDisk(report, label, r.raw.disk);
    reportZkCounted(report, label, r.raw.zk, r.raw.load.ops);
    report.figure(`ratio ${r.label} / raw ZooKeeper creates: writes/s`, r.load.opsPerSecond / r.raw.load.opsPerSecond, 'x');
  }
  if (r.expiries !== undefined) {
    const spurious = spuriousSessions(r.expiries);
    report.figure(`${r.label}: session expiries explained by a kill`, r.expiries.filter((e) => e.explained).length, 'sessions');
    report.figure(`${r.label}: spurious session expiries (no kill explains them)`, spurious.length, 'sessions');
    for (const e of r.expiries.filter((x) => !x.explained)) report.note(`${r.label}: spurious expiry seen by the ${e.seenBy} at ${new Date(e.atMs).toISOString()}: session ${e.session} of ${e.holder}`);
  }
}

// ---- side by side ----------------------------------------------------------------------------------

function cell(v: number | undefined, digits?: number): string {
  if (v === undefined || Number.isNaN(v)) return '-';
  return digits === undefined ? formatNumber(v) : v.toFixed(digits);
}

function diskCell(d: DiskPerEntry | undefined, own: boolean): string {
  if (d === undefined) return '-';
  const bytes = own ? Object.values(d.processBytes).reduce((a, b) => a + b, 0) : d.deviceBytes;
  return formatNumber(Math.round(bytes / d.entries));
}

function catchUpWord(how: string): string {
  if (how.startsWith('snapshot')) return 'leader snapshot';
  if (how.includes('fetched master')) return 'peer checkpoint';
  if (how.includes('loaded at')) return 'own checkpoint + log';
  return 'log';
}

/** One row per figure, one column per system. */
export function sideBySide(report: Report, results: SystemResult[], catchUpEntries: number): void {
  const rows: [string, (r: SystemResult) => string][] = [
    ['writes/s', (r) => cell(r.load.opsPerSecond)],
    ['latency p50 (ms)', (r) => cell(r.load.latencyMs.p50, 1)],
    ['latency p99 (ms)', (r) => cell(r.load.latencyMs.p99, 1)],
    ['failed writes', (r) => cell(r.load.errors)],
    ['failover median (ms)', (r) => (r.failovers.length === 0 ? '-' : cell(median(r.failovers.map((f) => f.recoveryMs)), 0))],
    ['failover max (ms)', (r) => (r.failovers.length === 0 ? '-' : cell(Math.max(...r.failovers.map((f) => f.recoveryMs)), 0))],
    [`catch-up after ${formatNumber(catchUpEntries)} entries (s)`, (r) => (r.catchUp === undefined ? '-' : cell(r.catchUp.caughtUpMs / 1000, 1))],
    ['catch-up by', (r) => (r.catchUp === undefined ? '-' : catchUpWord(r.catchUp.how))],
    ['disk bytes/entry, whole machine', (r) => diskCell(r.disk, false)],
    ['disk bytes/entry, own processes', (r) => diskCell(r.disk, true)],
    ['raw ZooKeeper creates/s', (r) => (r.raw === undefined ? '-' : cell(r.raw.load.opsPerSecond))],
    ['raw creates: disk bytes/create, whole machine', (r) => diskCell(r.raw?.disk, false)],
    ['ZooKeeper transactions per entry', (r) => (r.zk === undefined ? '-' : cell(r.zk.leader_commits / r.load.ops, 3))],
    ['raw creates: ZooKeeper transactions per create', (r) => (r.raw?.zk === undefined ? '-' : cell(r.raw.zk.leader_commits / r.raw.load.ops, 3))],
    ['spurious session expiries', (r) => (r.expiries === undefined ? '-' : String(spuriousSessions(r.expiries).length))],
    ['CPU of other processes during the load (cores)', (r) => cell(r.load.cpuCores['other processes'], 2)],
  ];
  report.table(
    'side by side (same machine, same run, same load)',
    ['', ...results.map((r) => r.label)],
    rows.map(([name, f]) => [name, ...results.map(f)]),
  );
}

// ---- targets ---------------------------------------------------------------------------------------

function verdict(met: boolean): string {
  return met ? 'met' : 'NOT met';
}

export function reportTargets(report: Report, results: SystemResult[], etcd: SystemResult | undefined, failovers: number): void {
  for (const r of results) {
    const failoverMedian = r.failovers.length === 0 ? undefined : median(r.failovers.map((f) => f.recoveryMs));
    if (r.label === 'cairn raft') {
      if (etcd !== undefined) {
        const ratio = r.load.opsPerSecond / etcd.load.opsPerSecond;
        report.note(`target: cairn raft writes/s >= ${targets.raftThroughputRatioMin}x etcd's: measured ${formatNumber(ratio)}x (${formatNumber(r.load.opsPerSecond)} vs ${formatNumber(etcd.load.opsPerSecond)} ops/s): ${verdict(ratio >= targets.raftThroughputRatioMin)}`);
      } else {
        report.note(`target: cairn raft writes/s >= ${targets.raftThroughputRatioMin}x etcd's: not judged (no etcd in this run)`);
      }
      report.note(`target: cairn raft p99 < ${targets.raftP99MsMax} ms: measured ${formatNumber(r.load.latencyMs.p99)} ms: ${verdict(r.load.latencyMs.p99 < targets.raftP99MsMax)}`);
      if (failovers > 0) report.note(`target: cairn raft failover < ${targets.raftFailoverMsMax} ms (median): measured ${formatNumber(failoverMedian!)} ms: ${verdict(failoverMedian! < targets.raftFailoverMsMax)}`);
    } else if (r.label === 'cairn zookeeper') {
      if (r.raw !== undefined) {
        const ratio = r.load.opsPerSecond / r.raw.load.opsPerSecond;
        report.note(`target: cairn zookeeper writes/s >= raw ZooKeeper creates/s: measured ${formatNumber(r.load.opsPerSecond)} vs ${formatNumber(r.raw.load.opsPerSecond)} (${formatNumber(ratio)}x): ${verdict(ratio >= targets.zkThroughputRatioMin)}`);
      }
      if (failovers > 0) report.note(`target: cairn zookeeper failover < ${targets.zkFailoverMsMax} ms (median): measured ${formatNumber(failoverMedian!)} ms: ${verdict(failoverMedian! < targets.zkFailoverMsMax)}`);
      if (r.expiries !== undefined) {
        const n = spuriousSessions(r.expiries).length;
        report.note(`target: cairn zookeeper spurious session expiries = ${targets.zkSpuriousExpiriesMax}: measured ${n}: ${verdict(n <= targets.zkSpuriousExpiriesMax)}`);
      }
    }
  }
}

// Replicated writes per second, their latency, the time writes stop after the leader is killed,
// the catch-up of a master that missed many entries, and the disk bytes written per entry: through
// 3 cairn masters (each its own process) on each journal backend asked for (the embedded Raft
// journal, ZooKeeper on a 3-server ensemble started here), beside a 3-member etcd cluster driven
// with the same load from the same script (the anchor). On ZooKeeper, raw creates on the same
// ensemble are the anchor the journal is held to, and every session expiry must be explained by a kill.

import { cpus, loadavg, tmpdir } from 'node:os';
import { ProcessGroup } from '../test/cluster/process-cluster.ts';
import { findEtcd, median, sourceState } from './cluster.ts';
import { Report } from './report.ts';
import { journalDir, pathPadding, runCairn, zkSessionTimeoutMs, zkWarmupRounds, zkWarmupSeconds } from './journal/cairn.ts';
import { devicesOf, measureDisk } from './journal/disk.ts';
import { etcdClientVersion, runEtcd } from './journal/etcd.ts';
import { loadBeforeKillMs, probeIntervalMs } from './journal/failover.ts';
import { reportSystem, reportTargets, sideBySide, targets } from './journal/figures.ts';
import { parseOptions, type Backend, type Options } from './journal/options.ts';
import { runProfile } from './journal/profile.ts';
import { memberCount, type SystemResult } from './journal/system.ts';
import { ensembleSettings } from './journal/zookeeper.ts';

export const description = 'replicated 256-byte writes/s, p50/p99, leader-kill failover, catch-up and disk bytes/entry: 3 cairn masters on Raft and/or ZooKeeper beside a 3-member etcd';

const groupPrefix = 'cairn-bench-journal';

function backendConfig(backend: Backend, opts: Options): string {
  if (backend === 'raft') return `${memberCount} masters (cairn master, default Raft and WAL settings: tick 25 ms, election 12-24 ticks, fsync per Ready, checkpoint every 50,000 entries keeping 5,000), each its own process on 127.0.0.1`;
  return `${memberCount} masters (cairn master --journal zookeeper, session timeout ${zkSessionTimeoutMs(opts)} ms${opts.zkSessionTimeoutMs === undefined ? ' (the default)' : ''}, checkpoint every 50,000 entries keeping 20,000 in ZooKeeper, buckets of 10,000 batches) on a fresh ensemble: ${ensembleSettings()}`;
}

/** Runs `body` with a process group of its own (its own directory), closed before the next system starts. */
async function inGroup<T>(name: string, body: (procs: ProcessGroup) => Promise<T>): Promise<T> {
  const procs = await ProcessGroup.create(`${groupPrefix}-${name}`);
  try {
    return await body(procs);
  } finally {
    await procs.close();
  }
}

export async function run(args: string[]): Promise<void> {
  const opts = parseOptions(args);
  if (opts === undefined) return;
  const padBytes = pathPadding(opts.entryBytes);
  const report = new Report('journal');
  report.note(`load average before the run (1, 5, 15 min): ${loadavg().map((l) => l.toFixed(2)).join(', ')} on ${cpus().length} CPUs`);
  const etcd = opts.anchor && opts.cpuProfDir === undefined ? findEtcd((l) => console.log(l)) : undefined;
  const { devices, missing } = devicesOf([tmpdir()]);
  const config: Record<string, string | number> = { source: sourceState() };
  for (const b of opts.backends) config[`cairn ${b}`] = backendConfig(b, opts);
  Object.assign(config, {
    'cairn op': `meta.mutate create of a new file (exclusive) in ${journalDir}: one ${opts.entryBytes}-byte journal entry (msgpack command; a 3-byte seq, 1-2 bytes fewer for a writer's first 255), one MasterClient per writer`,
    etcd: etcd === undefined ? 'not run' : 'missing' in etcd ? `not run: ${etcd.missing}` : `${memberCount} members, ${etcd.version}, stock settings (heartbeat 100 ms, election 1000 ms), one etcd3 client (${etcdClientVersion()}) with its default fault handling`,
    'etcd op': `put of a new key (about 30 bytes) with a ${opts.entryBytes}-byte value`,
    writers: `${opts.proposers} concurrent, closed loop (each starts its next write when the last one answers)`,
    'measured seconds': opts.seconds,
    'warm-up seconds': opts.warmupSeconds,
    failovers: opts.cpuProfDir !== undefined ? 'none (profile mode)' : `${opts.failovers} per system: load ${loadBeforeKillMs} ms, kill -9 the leader, probes write to each survivor every ${probeIntervalMs} ms until one succeeds; the killed member is restarted and caught up between runs`,
    'catch-up': opts.catchUpEntries === 0 ? 'skipped' : `cairn only: kill -9 a follower, write ${opts.catchUpEntries} entries with the same writers, restart it, time until its applied index reaches the leader's commit index (polled every 20 ms)`,
    'ZooKeeper warm-up': opts.backends.includes('zookeeper') ? `${zkWarmupRounds} rounds of ${zkWarmupSeconds} s of the journal's load then ${zkWarmupSeconds} s of the raw creates, on the fresh ensemble before anything is measured (the JVMs compile their hot paths), not measured` : 'not run',
    'raw ZooKeeper': opts.backends.includes('zookeeper') ? `on the journal's own ensemble, after its load: ${opts.proposers} writers, each a closed loop of create(PERSISTENT_SEQUENTIAL, ${opts.entryBytes} bytes) under a throwaway chroot, over ${opts.rawSessions} node-zookeeper-client sessions (${opts.rawSessions === opts.proposers ? 'one per writer' : 'shared round robin'}), session timeout ${zkSessionTimeoutMs(opts)} ms` : 'not run',
    'disk writes': devices.length > 0 ? `/proc/diskstats sectors written x 512 on ${devices.map((d) => `${d.name} (${d.id}, mounted on ${d.mountPoint})`).join(', ')}, which holds every data directory, over the measured window, whole machine; and /proc/PID/io write_bytes of this system's processes` : `not measured: ${missing.join('; ')}`,
    'data directories': `${tmpdir()}/${groupPrefix}-<system>-*, one per system, removed after it`,
    profile: opts.cpuProfDir ?? 'off',
  });
  report.configure(config);
  if (opts.cpuProfDir !== undefined) {
    const dir = opts.cpuProfDir;
    await inGroup(opts.backends[0], (procs) => runProfile(report, procs, opts.backends[0], opts, dir, padBytes));
    report.finish();
    return;
  }
  const disk = await inGroup('disk', (procs) => measureDisk(procs.root, opts.entryBytes));
  const results: SystemResult[] = [];
  for (const b of opts.backends) results.push(await inGroup(b, (procs) => runCairn(procs, b, opts, padBytes, devices)));
  let anchor: SystemResult | undefined;
  if (etcd !== undefined && 'missing' in etcd) report.note(`anchor: ${etcd.missing}; cairn's figures stand alone`);
  else if (etcd !== undefined) anchor = await inGroup('etcd', (procs) => runEtcd(procs, etcd.binary, opts, devices));

  report.figure(`disk: ${opts.entryBytes}-byte append + fdatasync, one at a time`, disk.syncsPerSecond, 'syncs/s');
  report.figure('disk: append + fdatasync latency p50', disk.p50Ms, 'ms');
  report.figure('disk: append + fdatasync latency p99', disk.p99Ms, 'ms');
  for (const r of results) reportSystem(report, r);
  if (anchor !== undefined) {
    reportSystem(report, anchor);
    for (const r of results) {
      report.figure(`ratio ${r.label} / etcd: writes/s`, r.load.opsPerSecond / anchor.load.opsPerSecond, 'x');
      report.figure(`ratio ${r.label} / etcd: latency p50`, r.load.latencyMs.p50 / anchor.load.latencyMs.p50, 'x');
      report.figure(`ratio ${r.label} / etcd: latency p99`, r.load.latencyMs.p99 / anchor.load.latencyMs.p99, 'x');
      if (opts.failovers > 0) report.figure(`ratio ${r.label} / etcd: failover (medians)`, median(r.failovers.map((f) => f.recoveryMs)) / median(anchor.failovers.map((f) => f.recoveryMs)), 'x');
    }
  }
  sideBySide(report, anchor === undefined ? results : [...results, anchor], opts.catchUpEntries);
  reportTargets(report, results, anchor, opts.failovers);
  report.note(`load average after the run (1, 5, 15 min): ${loadavg().map((l) => l.toFixed(2)).join(', ')}`);
  for (const r of [...results, ...(anchor === undefined ? [] : [anchor])]) report.attach(r.label.replace(' ', '-'), r);
  report.attach('targets', targets);
  report.attach('diskProbe', disk);
  report.finish();
}

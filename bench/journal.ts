// Replicated writes per second, their latency, and the time writes stop after the leader is killed,
// through 3 cairn masters (each its own process, WAL fsync on) on this machine, beside a 3-member
// etcd cluster driven with the same load from the same script (the anchor).

import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import path from 'node:path';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import type { Etcd3 } from 'etcd3';
import type { MasterClient } from '../src/client/master-client.ts';
import { CairnError, ErrorCode } from '../src/errors.ts';
import type { CreateCommand } from '../src/meta/commands.ts';
import { encodeCommandEntry } from '../src/meta/state-machine.ts';
import { MasterCluster, ProcessGroup, sleep } from '../test/cluster/process-cluster.ts';
import { EtcdMembers, Load, findEtcd, longestGapMs, measureLoad, median, passThroughPolicy, sourceState, type LoadResult } from './cluster.ts';
import { summarizeProfile, type ProfileSummary } from './cpuprofile.ts';
import { Report, formatNumber } from './report.ts';
import { nonNegativeInt, nonNegativeNumber, positiveInt, positiveNumber } from './args.ts';

export const description = 'replicated 256-byte writes/s, p50/p99 latency and leader-kill failover: 3 cairn masters beside a 3-member etcd';

const memberCount = 3;
/**
 * During a failover every survivor gets a new probe write this often, without waiting for earlier
 * ones (a write forwarded to the dead leader may hang until its deadline): the failover figures are
 * good to about this much.
 */
const probeIntervalMs = 5;
const probeCallTimeoutMs = 1_000;
/** Deadline of one load call, cairn's (MasterClient callTimeoutMs) and etcd's alike. */
const loadCallTimeoutMs = 5_000;
/** Writes must resume within this long after a kill, or the run fails (a liveness bug, not a slow run). */
const recoveryDeadlineMs = 30_000;
/** Load before each kill, and after writes resume (to see how long the load's own clients stall). */
const loadBeforeKillMs = 1_000;
const loadAfterRecoveryMs = 5_000;
/** The disk anchor: appends of one entry's size, each followed by fdatasync, for this long. */
const diskProbeMs = 1_000;
const profileTopFunctions = 25;
const profileTopFiles = 10;
const journalDir = '/journal';
/** A seq of 256..65535 packs in 3 bytes: the width most of a run's commands have. */
const sizingSeq = 1_000;

/** Other work using more than this many cores during a measurement is worth a warning. */
const sharedMachineCoresMin = 0.1;
const targets = { throughputRatioMin: 2, p99MsMax: 20, failoverMsMax: 1_000 };

interface Options {
  seconds: number;
  warmupSeconds: number;
  proposers: number;
  entryBytes: number;
  failovers: number;
  anchor: boolean;
  cpuProfDir: string | undefined;
}

const usage = `usage: npm run bench -- journal [options]
  --seconds N      measured seconds of load, per system (default 10)
  --warmup N       seconds of load before measuring (default 1)
  --proposers N    concurrent writers (default 64)
  --entry-bytes N  bytes of one cairn journal entry / one etcd value (default 256)
  --failovers N    leader kills per system; the median is reported (default 5, 0 skips)
  --no-anchor      skip etcd and report cairn alone
  --cpu-prof DIR   profile mode: cairn load only, every master under node --cpu-prof writing
                   to DIR/master-N; prints the leader's top self-time functions`;

function parseOptions(args: string[]): Options | undefined {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      seconds: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '1' },
      proposers: { type: 'string', default: '64' },
      'entry-bytes': { type: 'string', default: '256' },
      failovers: { type: 'string', default: '5' },
      'no-anchor': { type: 'boolean', default: false },
      'cpu-prof': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(usage);
    return undefined;
  }
  return {
    seconds: positiveNumber(values.seconds, '--seconds'),
    warmupSeconds: nonNegativeNumber(values.warmup, '--warmup'),
    proposers: positiveInt(values.proposers, '--proposers'),
    entryBytes: positiveInt(values['entry-bytes'], '--entry-bytes'),
    failovers: nonNegativeInt(values.failovers, '--failovers'),
    anchor: !values['no-anchor'],
    cpuProfDir: values['cpu-prof'] === undefined ? undefined : path.resolve(values['cpu-prof']),
  };
}





// ---- the cairn operation -----------------------------------------------------------------------

/** Writer w's k-th file: fixed-width numbers, then padding, so that every entry has the same size. */
function journalPath(worker: number, k: number, padBytes: number): string {
  return `${journalDir}/w${String(worker).padStart(3, '0')}-${String(k).padStart(9, '0')}-${'x'.repeat(padBytes)}`;
}

function sampleEntryBytes(padBytes: number): number {
  const cmd: CreateCommand = {
    op: 'create',
    clientId: randomUUID(),
    seq: sizingSeq,
    nowMs: Date.now(),
    path: journalPath(0, 0, padBytes),
    mode: 0o644,
    uid: 0,
    gid: 0,
    exclusive: true,
  };
  return encodeCommandEntry(cmd).length;
}

/** The padding that makes one create entry exactly `entryBytes` long, as the master encodes it. */
function pathPadding(entryBytes: number): number {
  // msgpack's string header grows by a byte past 31 bytes: the estimate can be one off.
  const estimate = entryBytes - sampleEntryBytes(0);
  const pad = [estimate, estimate - 1, estimate - 2].find((p) => p >= 0 && sampleEntryBytes(p) === entryBytes);
  if (pad === undefined) {
    throw new CairnError(ErrorCode.BadOption, `--entry-bytes ${entryBytes}: a create entry cannot have exactly that size (the smallest is ${sampleEntryBytes(0)} bytes)`);
  }
  return pad;
}

/** One MasterClient per writer (one outstanding mutation per client id), each creating new files. */
class CairnWriters {
  readonly clients: MasterClient[];
  private readonly next: number[];
  private readonly padBytes: number;

  constructor(masters: MasterCluster, count: number, padBytes: number) {
    this.clients = Array.from({ length: count }, () => masters.client({ callTimeoutMs: loadCallTimeoutMs }));
    this.next = new Array<number>(count).fill(0);
    this.padBytes = padBytes;
  }

  readonly op = (worker: number): Promise<unknown> =>
    this.clients[worker].mutate('meta.mutate', { op: 'create', path: journalPath(worker, this.next[worker]++, this.padBytes), mode: 0o644, uid: 0, gid: 0, exclusive: true });
}

// ---- failover ----------------------------------------------------------------------------------

interface FailoverRun {
  killed: string;
  /** From the kill to the first successful write on the new leader, as the probes saw it. */
  recoveryMs: number;
  /** Longest stretch with no write completed by the load's own clients, from the kill on. */
  loadStallMs: number;
  /** The load had not resumed when its window closed: loadStallMs is a lower bound. */
  loadStallOpen: boolean;
  newLeader: string;
  /** What the system logged about the election, when it tells (cairn: role changes with terms). */
  story?: string[];
}

/** What a failover needs from a system: its leader, probes of the survivors, kill, restart, load. */
interface FailoverTarget {
  waitForLeader(): Promise<string>;
  /** One write on each member other than `leader`, addressed to that member alone; connections opened. */
  probes(leader: string, run: number): Promise<(() => Promise<unknown>)[]>;
  kill(name: string): Promise<void>;
  restart(name: string): Promise<void>;
  startLoad(): Load;
  /** The election as logged since `sinceWallMs`, if the system's logs tell it. */
  story?(sinceWallMs: number): Promise<string[]>;
}

/**
 * Starts every probe each probeIntervalMs until one succeeds; resolves to that moment
 * (performance.now()) once every attempt has settled, so nothing is left running.
 */
async function firstSuccess(probes: (() => Promise<unknown>)[], deadlineMs: number): Promise<number> {
  let doneAt: number | undefined;
  const attempts: Promise<void>[] = [];
  const giveUpAt = performance.now() + deadlineMs;
  while (doneAt === undefined && performance.now() < giveUpAt) {
    for (const probe of probes) {
      attempts.push(
        probe().then(
          () => {
            doneAt ??= performance.now();
          },
          () => undefined,
        ),
      );
    }
    await sleep(probeIntervalMs);
  }
  await Promise.all(attempts);
  if (doneAt === undefined) throw new Error(`writes did not resume within ${deadlineMs} ms of the leader's kill`);
  return doneAt;
}

async function runFailovers(label: string, target: FailoverTarget, runs: number): Promise<FailoverRun[]> {
  const results: FailoverRun[] = [];
  for (let r = 0; r < runs; r++) {
    const leader = await target.waitForLeader();
    const probes = await target.probes(leader, r);
    const load = target.startLoad();
    let killedAt = 0;
    let killedAtWallMs = 0;
    let recoveredAt = 0;
    try {
      await sleep(loadBeforeKillMs);
      killedAtWallMs = Date.now();
      killedAt = performance.now();
      const killing = target.kill(leader); // SIGKILL is sent before this returns
      recoveredAt = await firstSuccess(probes, recoveryDeadlineMs);
      await killing;
      await sleep(loadAfterRecoveryMs);
    } finally {
      await load.stop();
    }
    const run: FailoverRun = {
      killed: leader,
      recoveryMs: recoveredAt - killedAt,
      loadStallMs: longestGapMs(load.doneAtMs, killedAt, recoveredAt + loadAfterRecoveryMs),
      loadStallOpen: !load.doneAtMs.some((t) => t > recoveredAt && t <= recoveredAt + loadAfterRecoveryMs),
      newLeader: await target.waitForLeader(),
    };
    if (target.story !== undefined) run.story = await target.story(killedAtWallMs);
    console.log(`${label} failover ${r + 1}/${runs}: killed ${run.killed}, writes resumed on ${run.newLeader} after ${formatNumber(run.recoveryMs)} ms; load stalled ${run.loadStallOpen ? '>= ' : ''}${formatNumber(run.loadStallMs)} ms`);
    for (const line of run.story ?? []) console.log(`  ${line}`);
    results.push(run);
    await target.restart(leader);
  }
  return results;
}

// ---- cairn -------------------------------------------------------------------------------------

interface SystemResult {
  load: LoadResult;
  failovers: FailoverRun[];
  extra: Record<string, unknown>;
}

function masterName(id: number): string {
  return `master-${id}`;
}

function masterId(name: string): number {
  return Number(name.slice('master-'.length));
}

async function runCairn(procs: ProcessGroup, opts: Options, padBytes: number): Promise<SystemResult> {
  const masters = await MasterCluster.start(procs, { count: memberCount });
  try {
    const setup = masters.client();
    await setup.mutate('meta.mutate', { op: 'mkdir', path: journalDir, mode: 0o755, uid: 0, gid: 0, parents: false });
    const writers = new CairnWriters(masters, opts.proposers, padBytes);
    const leaderBefore = await masters.waitForLeader();
    const before = await masters.status(leaderBefore);
    console.log(`cairn: ${opts.proposers} writers for ${opts.warmupSeconds} + ${opts.seconds} s...`);
    const load = await measureLoad(opts.proposers, opts.seconds, opts.warmupSeconds, writers.op, masters.pids());
    const after = await masters.status(await masters.waitForLeader());
    const extra = {
      leader: masterName(leaderBefore),
      entriesCommittedDuringLoad: (after?.commitIndex ?? 0) - (before?.commitIndex ?? 0),
      checkpointsDuringLoad: (after?.snapshotIndex ?? 0) > (before?.snapshotIndex ?? 0),
    };
    const probeClient = masters.client({ callTimeoutMs: probeCallTimeoutMs });
    let probeSeq = 0;
    const failovers = await runFailovers('cairn', {
      waitForLeader: async () => masterName(await masters.waitForLeader()),
      probes: async (leader, run) => {
        const survivors = [...masters.masters.values()].filter((m) => masterName(m.id) !== leader);
        await Promise.all(survivors.map((m) => probeClient.callAt(m.address, 'master.ping', {})));
        // Attempts overlap, and a client id has one outstanding mutation: each attempt is its own client.
        return survivors.map((m) => () => {
          const n = ++probeSeq;
          const body = { op: 'create', path: `${journalDir}/probe-${run}-${m.id}-${n}`, mode: 0o644, uid: 0, gid: 0, exclusive: true, clientId: `probe-${n}`, seq: 1 };
          return probeClient.callAt(m.address, 'meta.mutate', body);
        });
      },
      kill: (name) => masters.kill(masterId(name)),
      restart: async (name) => {
        masters.spawn(masterId(name));
        await masters.waitCaughtUp(masterId(name));
      },
      startLoad: () => new Load(opts.proposers, writers.op),
      story: (since) => masters.roleChangesSince(since),
    }, opts.failovers);
    return { load, failovers, extra };
  } catch (err) {
    console.error(await masters.logTails());
    throw err;
  } finally {
    masters.closeClients();
  }
}

// ---- etcd --------------------------------------------------------------------------------------

function etcdKey(worker: number, k: number): string {
  return `bench/journal/w${String(worker).padStart(3, '0')}/${String(k).padStart(9, '0')}`;
}

async function runEtcd(procs: ProcessGroup, binary: string, opts: Options): Promise<SystemResult> {
  const etcd = await EtcdMembers.start(procs, binary, memberCount);
  try {
    const client = etcd.client(etcd.endpoints(), undefined, loadCallTimeoutMs);
    const value = Buffer.from(randomBytes(Math.ceil(opts.entryBytes / 2)).toString('hex').slice(0, opts.entryBytes));
    const next = new Array<number>(opts.proposers).fill(0);
    const op = (worker: number): Promise<unknown> => client.put(etcdKey(worker, next[worker]++)).value(value).exec();
    await client.put('bench/journal/warm').value(value).exec();
    console.log(`etcd: ${opts.proposers} concurrent puts for ${opts.warmupSeconds} + ${opts.seconds} s...`);
    const load = await measureLoad(opts.proposers, opts.seconds, opts.warmupSeconds, op, etcd.pids());
    const leaderAtLoad = await etcd.waitForLeader();
    const probeClients = new Map<string, Etcd3>();
    let probeSeq = 0;
    const failovers = await runFailovers('etcd', {
      waitForLeader: () => etcd.waitForLeader(),
      probes: async (leader) => {
        const survivors = [...etcd.members.values()].filter((m) => m.name !== leader);
        const probes = survivors.map((m) => {
          let c = probeClients.get(m.name);
          if (c === undefined) {
            c = etcd.client([m.clientUrl], passThroughPolicy, probeCallTimeoutMs);
            probeClients.set(m.name, c);
          }
          const probeClient = c;
          return () => probeClient.put(`bench/probe/${++probeSeq}`).value(value).exec();
        });
        await Promise.all(probes.map((p) => p()));
        return probes;
      },
      kill: (name) => etcd.kill(name),
      restart: async (name) => {
        // A restarted member gets new probe connections: the old ones backed off while it was down.
        probeClients.get(name)?.close();
        probeClients.delete(name);
        etcd.spawn(name);
        await etcd.waitServing(name);
      },
      startLoad: () => new Load(opts.proposers, op),
    }, opts.failovers);
    return { load, failovers, extra: { leader: leaderAtLoad, valueBytes: value.length } };
  } catch (err) {
    console.error(await etcd.logTails());
    throw err;
  } finally {
    etcd.closeClients();
  }
}

// ---- the disk ----------------------------------------------------------------------------------

interface DiskResult {
  syncsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
}

/** Appends of `bytes` bytes, each followed by fdatasync, one at a time: what one WAL save costs at least. */
async function measureDisk(dir: string, bytes: number): Promise<DiskResult> {
  const file = path.join(dir, 'disk-probe.dat');
  const fh = await open(file, 'w');
  const buf = Buffer.alloc(bytes, 0x61);
  const latencies: number[] = [];
  try {
    const start = performance.now();
    for (let pos = 0; performance.now() - start < diskProbeMs; pos += bytes) {
      const t = performance.now();
      await fh.write(buf, 0, bytes, pos);
      await fh.datasync();
      latencies.push(performance.now() - t);
    }
  } finally {
    await fh.close();
    await rm(file, { force: true });
  }
  latencies.sort((a, b) => a - b);
  return {
    syncsPerSecond: latencies.length / (diskProbeMs / 1000),
    p50Ms: latencies[Math.floor(latencies.length / 2)],
    p99Ms: latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * 0.99))],
  };
}

// ---- profile mode ------------------------------------------------------------------------------

async function runProfile(report: Report, procs: ProcessGroup, opts: Options, dir: string, padBytes: number): Promise<void> {
  const masters = await MasterCluster.start(procs, {
    count: memberCount,
    nodeArgs: (id) => ['--cpu-prof', '--cpu-prof-dir', path.join(dir, masterName(id))],
  });
  let leader: number;
  let load: LoadResult;
  try {
    await masters.client().mutate('meta.mutate', { op: 'mkdir', path: journalDir, mode: 0o755, uid: 0, gid: 0, parents: false });
    const writers = new CairnWriters(masters, opts.proposers, padBytes);
    leader = await masters.waitForLeader();
    console.log(`cairn under --cpu-prof: ${opts.proposers} writers for ${opts.warmupSeconds} + ${opts.seconds} s...`);
    load = await measureLoad(opts.proposers, opts.seconds, opts.warmupSeconds, writers.op, masters.pids());
    const leaderAfter = await masters.waitForLeader();
    if (leaderAfter !== leader) report.note(`leadership moved from ${masterName(leader)} to ${masterName(leaderAfter)} during the load: the profile mixes roles`);
  } finally {
    await masters.stopAll(); // SIGTERM: a clean exit writes the profiles
  }
  reportLoad(report, 'cairn (profiled)', load);
  const leaderDir = path.join(dir, masterName(leader));
  const files = readdirSync(leaderDir).filter((f) => f.endsWith('.cpuprofile'));
  if (files.length !== 1) throw new Error(`expected one .cpuprofile in ${leaderDir}, found ${files.length}`);
  const summary = summarizeProfile(path.join(leaderDir, files[0]), path.join(import.meta.dirname, '..'), load.windowMonotonicUs);
  printProfile(`${masterName(leader)} (the leader)`, summary);
  report.note(`leader profile: ${path.join(leaderDir, files[0])} (open in Chrome DevTools > Performance)`);
  report.figure('leader: main thread busy (not idle) share of the measured window', 1 - summary.idleMs / summary.sampledMs, 'fraction');
  report.attach('leaderProfile', { file: path.join(leaderDir, files[0]), sampledMs: summary.sampledMs, idleMs: summary.idleMs, functions: summary.functions.slice(0, 50), files: summary.files.slice(0, 20) });
}

function printProfile(who: string, s: ProfileSummary): void {
  console.log(`profile of ${who}, measured window only: ${formatNumber(s.sampledMs)} ms sampled, ${formatNumber(s.idleMs)} ms idle`);
  console.log(`top ${profileTopFunctions} functions by self time (share of non-idle time):`);
  for (const f of s.functions.slice(0, profileTopFunctions)) console.log(`  ${(f.share * 100).toFixed(1).padStart(5)}%  ${formatNumber(f.selfMs).padStart(7)} ms  ${f.name}`);
  console.log(`top ${profileTopFiles} files by self time:`);
  for (const f of s.files.slice(0, profileTopFiles)) console.log(`  ${(f.share * 100).toFixed(1).padStart(5)}%  ${formatNumber(f.selfMs).padStart(7)} ms  ${f.name}`);
}

// ---- report ------------------------------------------------------------------------------------

function reportLoad(report: Report, label: string, r: LoadResult): void {
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

function reportFailovers(report: Report, label: string, runs: FailoverRun[]): void {
  if (runs.length === 0) return;
  const rec = runs.map((r) => r.recoveryMs);
  report.figure(`${label}: failover, kill to first write on new leader (median of ${runs.length})`, median(rec), 'ms');
  report.figure(`${label}: failover (min of ${runs.length})`, Math.min(...rec), 'ms');
  report.figure(`${label}: failover (max of ${runs.length})`, Math.max(...rec), 'ms');
  report.figure(`${label}: load clients' longest stall after the kill (median)`, median(runs.map((r) => r.loadStallMs)), 'ms');
  const open = runs.filter((r) => r.loadStallOpen).length;
  if (open > 0) report.note(`${label}: in ${open} of ${runs.length} failovers the load's clients had not resumed ${loadAfterRecoveryMs} ms after the probes did: those stalls are lower bounds`);
}

function verdict(met: boolean): string {
  return met ? 'met' : 'NOT met';
}

function reportTargets(report: Report, cairn: SystemResult, etcd: SystemResult | undefined, failovers: number): void {
  const p99 = cairn.load.latencyMs.p99;
  if (etcd !== undefined) {
    const ratio = cairn.load.opsPerSecond / etcd.load.opsPerSecond;
    report.note(`target: cairn writes/s >= ${targets.throughputRatioMin}x etcd's: measured ${formatNumber(ratio)}x (${formatNumber(cairn.load.opsPerSecond)} vs ${formatNumber(etcd.load.opsPerSecond)} ops/s): ${verdict(ratio >= targets.throughputRatioMin)}`);
  } else {
    report.note(`target: cairn writes/s >= ${targets.throughputRatioMin}x etcd's: not judged (no etcd in this run)`);
  }
  report.note(`target: cairn p99 < ${targets.p99MsMax} ms: measured ${formatNumber(p99)} ms: ${verdict(p99 < targets.p99MsMax)}`);
  if (failovers > 0) {
    const m = median(cairn.failovers.map((r) => r.recoveryMs));
    report.note(`target: cairn failover < ${targets.failoverMsMax} ms (median): measured ${formatNumber(m)} ms: ${verdict(m < targets.failoverMsMax)}`);
  }
}

export async function run(args: string[]): Promise<void> {
  const opts = parseOptions(args);
  if (opts === undefined) return;
  const padBytes = pathPadding(opts.entryBytes);
  const report = new Report('journal');
  report.note(`load average before the run (1, 5, 15 min): ${loadavg().map((l) => l.toFixed(2)).join(', ')} on ${cpus().length} CPUs`);
  const procs = await ProcessGroup.create('cairn-bench-journal');
  try {
    const etcd = opts.anchor && opts.cpuProfDir === undefined ? findEtcd((l) => console.log(l)) : undefined;
    report.configure({
      source: sourceState(),
      cairn: `${memberCount} masters (cairn master, default Raft and WAL settings: tick 25 ms, election 12-24 ticks, fsync per Ready), each its own process on 127.0.0.1`,
      'cairn op': `meta.mutate create of a new file (exclusive) in ${journalDir}: one ${opts.entryBytes}-byte journal entry (msgpack command; a 3-byte seq, 1-2 bytes fewer for a writer's first 255), one MasterClient per writer`,
      etcd: etcd === undefined ? 'not run' : 'missing' in etcd ? `not run: ${etcd.missing}` : `${memberCount} members, ${etcd.version}, stock settings (heartbeat 100 ms, election 1000 ms), one etcd3 client (${etcdClientVersion()}) with its default fault handling`,
      'etcd op': `put of a new key (about 30 bytes) with a ${opts.entryBytes}-byte value`,
      writers: `${opts.proposers} concurrent, closed loop (each starts its next write when the last one answers)`,
      'measured seconds': opts.seconds,
      'warm-up seconds': opts.warmupSeconds,
      failovers: opts.cpuProfDir !== undefined ? 'none (profile mode)' : `${opts.failovers} per system: load ${loadBeforeKillMs} ms, kill -9 the leader, probes write to each survivor every ${probeIntervalMs} ms until one succeeds; the killed member is restarted and caught up between runs`,
      'data directories': procs.root,
      profile: opts.cpuProfDir ?? 'off',
    });
    if (opts.cpuProfDir !== undefined) {
      await runProfile(report, procs, opts, opts.cpuProfDir, padBytes);
      report.finish();
      return;
    }
    const disk = await measureDisk(procs.root, opts.entryBytes);
    const cairn = await runCairn(procs, opts, padBytes);
    let anchor: SystemResult | undefined;
    if (etcd !== undefined && 'missing' in etcd) report.note(`anchor: ${etcd.missing}; cairn's figures stand alone`);
    else if (etcd !== undefined) anchor = await runEtcd(procs, etcd.binary, opts);
    report.figure(`disk: ${opts.entryBytes}-byte append + fdatasync, one at a time`, disk.syncsPerSecond, 'syncs/s');
    report.figure('disk: append + fdatasync latency p50', disk.p50Ms, 'ms');
    report.figure('disk: append + fdatasync latency p99', disk.p99Ms, 'ms');
    report.note(`cairn leader during the measured load: ${String(cairn.extra.leader)}`);
    if (anchor !== undefined) report.note(`etcd leader after the measured load: ${String(anchor.extra.leader)}`);
    reportLoad(report, 'cairn', cairn.load);
    reportFailovers(report, 'cairn', cairn.failovers);
    report.figure('cairn: entries committed during the measured load (leader commit index delta, incl. warm-up)', Number(cairn.extra.entriesCommittedDuringLoad), 'entries');
    if (anchor !== undefined) {
      reportLoad(report, 'etcd', anchor.load);
      reportFailovers(report, 'etcd', anchor.failovers);
      report.figure('ratio cairn / etcd: writes/s', cairn.load.opsPerSecond / anchor.load.opsPerSecond, 'x');
      report.figure('ratio cairn / etcd: latency p50', cairn.load.latencyMs.p50 / anchor.load.latencyMs.p50, 'x');
      report.figure('ratio cairn / etcd: latency p99', cairn.load.latencyMs.p99 / anchor.load.latencyMs.p99, 'x');
      if (opts.failovers > 0) {
        report.figure('ratio cairn / etcd: failover (medians)', median(cairn.failovers.map((r) => r.recoveryMs)) / median(anchor.failovers.map((r) => r.recoveryMs)), 'x');
      }
      report.attach('etcd', anchor);
    }
    if (cairn.extra.checkpointsDuringLoad === true) report.note('cairn took a checkpoint (state snapshot) during the measured load');
    reportTargets(report, cairn, anchor, opts.failovers);
    report.attach('cairn', cairn);
    report.attach('targets', targets);
    report.finish();
  } finally {
    await procs.close();
  }
}

function etcdClientVersion(): string {
  try {
    return `etcd3 ${(JSON.parse(readFileSync(path.join(import.meta.dirname, '..', 'node_modules', 'etcd3', 'package.json'), 'utf8')) as { version: string }).version}`;
  } catch {
    return 'etcd3';
  }
}

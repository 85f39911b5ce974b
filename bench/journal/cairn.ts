// cairn's masters on one journal backend (Raft, or ZooKeeper on an ensemble this benchmark starts)
// under the benchmark's load: writes/s and latency, disk bytes per entry, raw ZooKeeper creates on
// the same ensemble, leader-kill failovers, and the catch-up of a master that missed many entries.

import { randomUUID } from 'node:crypto';
import { copyFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import type { MasterClient } from '../../src/client/master-client.ts';
import { CairnError, ErrorCode } from '../../src/errors.ts';
import { newZkClusterId } from '../../src/journal/zookeeper/cluster-id.ts';
import type { Ensemble } from '../../src/journal/zookeeper/ensemble.ts';
import { zkJournalDefaults } from '../../src/journal/zookeeper/zk-journal.ts';
import { rootCaller, type CreateCommand } from '../../src/meta/commands.ts';
import { encodeCommandEntry } from '../../src/meta/state-machine.ts';
import { MasterCluster, sleep, type ProcessGroup } from '../../test/cluster/process-cluster.ts';
import { Load, type Operation } from '../cluster.ts';
import { formatNumber } from '../report.ts';
import type { Device } from './disk.ts';
import { probeCallTimeoutMs, runFailovers } from './failover.ts';
import type { Backend, Options } from './options.ts';
import { loadCallTimeoutMs, measureLoadAndDisk, memberCount, type CatchUpResult, type SystemResult } from './system.ts';
import { RawCreates, SessionLedger, ensembleCounters, ensemblePids, spuriousSessions, startBenchEnsemble, zkStory } from './zookeeper.ts';

export const journalDir = '/journal';
/** A seq of 256..65535 packs in 3 bytes: the width most of a run's commands have. */
const sizingSeq = 1_000;
/** Failed writes while writing the catch-up entries before the run is given up as broken. */
const catchUpErrorsMax = 1_000;
/** How long a restarted master gets to catch up before the run fails. */
const catchUpDeadlineMs = 300_000;
const catchUpPollMs = 20;
/** After the last phase, beyond the session timeout, before expiries are counted. */
const expirySettleMs = 2_000;
/** Unmeasured load on a fresh ensemble before anything is measured on it (JIT warm-up): rounds of both loads, seconds each. */
export const zkWarmupSeconds = 5;
export const zkWarmupRounds = 3;

// ---- the operation -------------------------------------------------------------------------------

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
    caller: rootCaller,
  };
  return encodeCommandEntry(cmd).length;
}

/** The padding that makes one create entry exactly `entryBytes` long, as the master encodes it. */
export function pathPadding(entryBytes: number): number {
  // msgpack's string header grows by a byte past 31 bytes: the estimate can be one off.
  const estimate = entryBytes - sampleEntryBytes(0);
  const pad = [estimate, estimate - 1, estimate - 2].find((p) => p >= 0 && sampleEntryBytes(p) === entryBytes);
  if (pad === undefined) {
    throw new CairnError(ErrorCode.BadOption, `--entry-bytes ${entryBytes}: a create entry cannot have exactly that size (the smallest is ${sampleEntryBytes(0)} bytes)`);
  }
  return pad;
}

/** One MasterClient per writer (one outstanding mutation per client id), each creating new files. */
export class CairnWriters {
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

export function masterName(id: number): string {
  return `master-${id}`;
}

function masterId(name: string): number {
  return Number(name.slice('master-'.length));
}

// ---- the system ------------------------------------------------------------------------------------

/** The session timeout the masters run with (and the raw clients use). */
export function zkSessionTimeoutMs(opts: Options): number {
  return opts.zkSessionTimeoutMs ?? zkJournalDefaults.sessionTimeoutMs;
}

/** Masters on one backend, and for ZooKeeper the ensemble under them; stop() ends both, masters first. */
export class CairnSystem {
  readonly backend: Backend;
  readonly masters: MasterCluster;
  readonly zk: { ensemble: Ensemble; stop(): Promise<void> } | undefined;
  /** Which master processes were killed, for telling explained session expiries from spurious ones. */
  readonly ledger = new SessionLedger();

  private constructor(backend: Backend, masters: MasterCluster, zk: CairnSystem['zk']) {
    this.backend = backend;
    this.masters = masters;
    this.zk = zk;
  }

  static async start(procs: ProcessGroup, backend: Backend, opts: Options, nodeArgs?: (id: number) => string[]): Promise<CairnSystem> {
    if (backend === 'raft') return new CairnSystem(backend, await MasterCluster.start(procs, { count: memberCount, ...(nodeArgs === undefined ? {} : { nodeArgs }) }), undefined);
    const zk = await startBenchEnsemble(path.join(procs.root, 'zookeeper'));
    try {
      const env: Record<string, string> = opts.zkSessionTimeoutMs === undefined ? {} : { CAIRN_ZK_SESSION_TIMEOUT_MS: String(opts.zkSessionTimeoutMs) };
      const masters = await MasterCluster.start(procs, { count: memberCount, env, ...(nodeArgs === undefined ? {} : { nodeArgs }), zookeeper: { connect: zk.ensemble.connectString, clusterId: newZkClusterId() } });
      return new CairnSystem(backend, masters, zk);
    } catch (err) {
      await zk.stop();
      throw err;
    }
  }

  /** The masters' and the ZooKeeper servers' PIDs by name, for CPU and disk accounting. */
  pids(): Record<string, number> {
    return { ...this.masters.pids(), ...(this.zk === undefined ? {} : ensemblePids(this.zk.ensemble)) };
  }

  masterLogs(): Record<string, string> {
    return Object.fromEntries([...this.masters.masters.values()].map((m) => [masterName(m.id), m.log]));
  }

  serverLogs(): string[] {
    return this.zk?.ensemble.servers.map((s) => s.log) ?? [];
  }

  /** Notes each running master's current ZooKeeper session (from its status) in the ledger. */
  async noteSessions(): Promise<void> {
    if (this.zk === undefined) return;
    for (const m of this.masters.masters.values()) {
      const pid = m.child?.pid;
      const session = (await this.masters.status(m.id))?.zookeeper?.sessionId;
      if (pid !== undefined && session !== undefined) this.ledger.session(masterName(m.id), pid, session);
    }
  }

  /** kill -9, noted in the ledger first; SIGKILL is sent before this returns. */
  kill(id: number): Promise<void> {
    this.ledger.killed(this.masters.masters.get(id)?.child?.pid);
    return this.masters.kill(id);
  }

  /** SIGTERM to the masters (clean exits: sessions closed, profiles written), then the ensemble. */
  async stop(): Promise<void> {
    try {
      await this.masters.stopAll();
    } finally {
      await this.zk?.stop();
    }
  }
}

/** Copies the masters' and ZooKeeper servers' logs beside the results (the run's directory is removed): the evidence of what went wrong. */
function keepLogs(sys: CairnSystem, why: string): string {
  const dir = path.join(import.meta.dirname, '..', 'results', `journal-logs-${new Date().toISOString().replaceAll(':', '-')}-${sys.backend}`);
  mkdirSync(dir, { recursive: true });
  const files: [string, string][] = [...Object.entries(sys.masterLogs()).map(([name, log]): [string, string] => [log, `${name}.log`]), ...sys.serverLogs().map((log, i): [string, string] => [log, `zk-${i + 1}.log`])];
  for (const [from, to] of files) {
    try {
      copyFileSync(from, path.join(dir, to));
    } catch {
      // a log never written (a process that did not start): nothing to keep
    }
  }
  console.log(`${why}: logs kept in ${path.relative(process.cwd(), dir)}`);
  return dir;
}

// ---- the measurements ------------------------------------------------------------------------------

export async function runCairn(procs: ProcessGroup, backend: Backend, opts: Options, padBytes: number, devices: Device[]): Promise<SystemResult> {
  const label = `cairn ${backend}`;
  const sys = await CairnSystem.start(procs, backend, opts);
  const { masters } = sys;
  try {
    await masters.client().mutate('meta.mutate', { op: 'mkdir', path: journalDir, mode: 0o755, uid: 0, gid: 0, parents: false });
    const writers = new CairnWriters(masters, opts.proposers, padBytes);
    if (sys.zk !== undefined) await warmUpEnsemble(sys, sys.zk.ensemble, opts, writers.op);
    const leader = await masters.waitForLeader();
    const before = await masters.status(leader);
    console.log(`${label}: ${opts.proposers} writers for ${opts.warmupSeconds} + ${opts.seconds} s...`);
    const committed = { count: async () => (await masters.status(leader))?.commitIndex ?? NaN, by: `commit index of the leader (${masterName(leader)}) at the window's edges` };
    const ensemble = sys.zk?.ensemble;
    const zkCounters = ensemble === undefined ? undefined : () => ensembleCounters(ensemble);
    const { load, disk, counted } = await measureLoadAndDisk(opts, writers.op, sys.pids(), devices, committed, zkCounters);
    const after = await masters.status(await masters.waitForLeader());
    const result: SystemResult = {
      label,
      load,
      disk,
      failovers: [],
      ...(counted === undefined ? {} : { zk: counted }),
      extra: {
        leader: masterName(leader),
        entriesCommittedDuringLoad: (after?.commitIndex ?? 0) - (before?.commitIndex ?? 0),
        checkpointsDuringLoad: (after?.snapshotIndex ?? 0) > (before?.snapshotIndex ?? 0),
      },
    };
    if (sys.zk !== undefined) result.raw = await runRawCreates(sys, sys.zk.ensemble, opts, devices);
    result.failovers = await runCairnFailovers(sys, writers, opts, label);
    if (opts.catchUpEntries > 0) result.catchUp = await measureCatchUp(sys, writers, opts, label);
    if (sys.zk !== undefined) {
      // A master hears of its session's expiry only when it next reaches a server: give it the time.
      await sleep(zkSessionTimeoutMs(opts) + expirySettleMs);
      await sys.noteSessions();
      result.expiries = sys.ledger.expiries(sys.masterLogs(), sys.serverLogs());
      const spurious = spuriousSessions(result.expiries);
      if (spurious.length > 0) result.extra.logsKept = keepLogs(sys, `${label}: ${spurious.length} spurious session expiries (${spurious.join(', ')})`);
    }
    return result;
  } catch (err) {
    console.error(await masters.logTails());
    keepLogs(sys, `${label} failed`);
    throw err;
  } finally {
    masters.closeClients();
    await sys.stop();
  }
}

/**
 * A fresh ensemble's JVMs interpret before they compile, and C2 goes on compiling for tens of
 * seconds: both loads that are measured on it (the journal's multis, reads and watches, and the raw
 * creates) run first, unmeasured, zkWarmupRounds times for zkWarmupSeconds each, so that neither
 * pays for the JIT. (Warming up with raw creates alone left C2 busy during the journal's window.)
 */
export async function warmUpEnsemble(sys: CairnSystem, ensemble: Ensemble, opts: Options, journalOp: (worker: number) => Promise<unknown>): Promise<void> {
  for (let round = 1; round <= zkWarmupRounds; round++) {
    console.log(`ZooKeeper JVM warm-up ${round}/${zkWarmupRounds}: the journal's load, then raw creates, ${zkWarmupSeconds} s each (not measured)...`);
    const journalLoad = new Load(opts.proposers, journalOp);
    await sleep(zkWarmupSeconds * 1000);
    await journalLoad.stop();
    const raw = await RawCreates.open(ensemble.connectString, opts.rawSessions, zkSessionTimeoutMs(opts), opts.entryBytes);
    sys.ledger.raw(raw.sessionIds);
    try {
      const load = new Load(opts.proposers, raw.op);
      await sleep(zkWarmupSeconds * 1000);
      await load.stop();
    } finally {
      raw.close();
    }
  }
}

async function runRawCreates(sys: CairnSystem, ensemble: Ensemble, opts: Options, devices: Device[]): Promise<SystemResult['raw']> {
  const raw = await RawCreates.open(ensemble.connectString, opts.rawSessions, zkSessionTimeoutMs(opts), opts.entryBytes);
  sys.ledger.raw(raw.sessionIds);
  try {
    console.log(`raw ZooKeeper: ${opts.proposers} writers over ${opts.rawSessions} sessions, PERSISTENT_SEQUENTIAL creates of ${opts.entryBytes} bytes under ${raw.chroot}, for ${opts.warmupSeconds} + ${opts.seconds} s...`);
    const { load, disk, counted } = await measureLoadAndDisk(opts, raw.op, sys.pids(), devices, undefined, () => ensembleCounters(ensemble));
    return { load, disk, zk: counted, sessions: opts.rawSessions };
  } finally {
    raw.close();
  }
}

function runCairnFailovers(sys: CairnSystem, writers: CairnWriters, opts: Options, label: string): Promise<SystemResult['failovers']> {
  const { masters } = sys;
  const probeClient = masters.client({ callTimeoutMs: probeCallTimeoutMs });
  let probeSeq = 0;
  return runFailovers(label, {
    waitForLeader: async () => masterName(await masters.waitForLeader()),
    probes: async (leader, run) => {
      await sys.noteSessions();
      const survivors = [...masters.masters.values()].filter((m) => masterName(m.id) !== leader);
      await Promise.all(survivors.map((m) => probeClient.callAt(m.address, 'master.ping', {})));
      // Attempts overlap, and a client id has one outstanding mutation: each attempt is its own client.
      return survivors.map((m) => () => {
        const n = ++probeSeq;
        const body = { op: 'create', path: `${journalDir}/probe-${run}-${m.id}-${n}`, mode: 0o644, uid: 0, gid: 0, exclusive: true, clientId: `probe-${n}`, seq: 1, caller: rootCaller };
        return probeClient.callAt(m.address, 'meta.mutate', body);
      });
    },
    kill: (name) => sys.kill(masterId(name)),
    restart: async (name) => {
      masters.spawn(masterId(name));
      await masters.waitCaughtUp(masterId(name));
      await sys.noteSessions();
    },
    startLoad: () => new Load(opts.proposers, writers.op),
    story: (since) => (sys.backend === 'raft' ? masters.roleChangesSince(since) : Promise.resolve(zkStory(sys.masterLogs(), sys.serverLogs(), since))),
  }, opts.failovers);
}

/** `total` writes by `workers` closed-loop writers; failed ones are written again. Returns the seconds taken. */
async function writeEntries(workers: number, total: number, op: Operation): Promise<number> {
  let claimed = 0;
  let errors = 0;
  let lastError: unknown;
  const started = performance.now();
  const loop = async (w: number): Promise<void> => {
    for (let n = 0; claimed < total && errors <= catchUpErrorsMax; n++) {
      claimed++;
      try {
        await op(w, n);
      } catch (err) {
        claimed--;
        errors++;
        lastError = err;
      }
    }
  };
  await Promise.all(Array.from({ length: workers }, (_, w) => loop(w)));
  if (errors > catchUpErrorsMax) throw new Error(`more than ${catchUpErrorsMax} writes failed while writing ${total} entries; the last: ${(lastError as Error).message}`);
  return (performance.now() - started) / 1000;
}

/** Kills a follower, writes opts.catchUpEntries entries, restarts it and times its catch-up. */
async function measureCatchUp(sys: CairnSystem, writers: CairnWriters, opts: Options, label: string): Promise<CatchUpResult> {
  const { masters } = sys;
  const leader = await masters.waitForLeader();
  const follower = [...masters.masters.values()].find((m) => m.id !== leader && m.child !== undefined)!.id;
  await masters.waitCaughtUp(follower);
  const appliedAtKill = (await masters.status(follower))?.appliedIndex ?? 0;
  await sys.noteSessions();
  const killedAtWallMs = Date.now();
  await sys.kill(follower);
  console.log(`${label} catch-up: ${masterName(follower)} killed at applied index ${appliedAtKill}; writing ${opts.catchUpEntries} entries...`);
  const writeSeconds = await writeEntries(opts.proposers, opts.catchUpEntries, writers.op);
  const leaderNow = await masters.waitForLeader();
  const leaderStatus = await masters.status(leaderNow);
  if (leaderStatus === undefined) throw new Error(`the leader ${masterName(leaderNow)} does not answer`);
  const target = leaderStatus.commitIndex;
  const restartedAtWallMs = Date.now();
  const restartedAt = performance.now();
  masters.spawn(follower);
  let answeredMs: number | undefined;
  for (;;) {
    const st = await masters.status(follower);
    const now = performance.now();
    if (st !== undefined) answeredMs ??= now - restartedAt;
    const pid = masters.masters.get(follower)?.child?.pid;
    if (st?.zookeeper?.sessionId !== undefined && pid !== undefined) sys.ledger.session(masterName(follower), pid, st.zookeeper.sessionId);
    if (st !== undefined && st.appliedIndex >= target) break;
    if (now - restartedAt > catchUpDeadlineMs) throw new Error(`${masterName(follower)} did not reach index ${target} within ${catchUpDeadlineMs} ms of its restart (at ${st?.appliedIndex ?? 'no answer'})`);
    await sleep(catchUpPollMs);
  }
  const caughtUpMs = performance.now() - restartedAt;
  const how = sys.backend === 'raft' ? raftCatchUpHow(appliedAtKill, leaderStatus.firstIndex) : zkCatchUpHow(sys.masterLogs(), masterName(follower), killedAtWallMs, restartedAtWallMs);
  const result: CatchUpResult = { master: masterName(follower), entriesWritten: opts.catchUpEntries, writeSeconds, leaderCommitIndex: target, appliedAtKill, answeredMs: answeredMs!, caughtUpMs, how };
  console.log(`${label} catch-up: ${result.master} restarted ${formatNumber(target - appliedAtKill)} entries behind (written in ${formatNumber(writeSeconds)} s); answered after ${formatNumber(result.answeredMs)} ms, caught up to ${target} after ${formatNumber(caughtUpMs)} ms: ${how}`);
  return result;
}

function raftCatchUpHow(appliedAtKill: number, leaderFirstIndex: number): string {
  return leaderFirstIndex > appliedAtKill + 1
    ? `snapshot from the leader (its log starts at index ${leaderFirstIndex}, the master had applied ${appliedAtKill}), then log entries`
    : `log entries from the leader (its log starts at index ${leaderFirstIndex}, the master had applied ${appliedAtKill})`;
}

/**
 * From the masters' logs: what the restarted master did and when (ms after the restart: a local
 * checkpoint loaded, its session, a peer's checkpoint fetched and installed, a session lost), and
 * which log buckets the other masters deleted while it was down.
 */
function zkCatchUpHow(logs: Record<string, string>, master: string, killedAtWallMs: number, restartedAtWallMs: number): string {
  const own = zkStory({ [master]: logs[master] }, [], restartedAtWallMs, 1_000);
  const at = (pattern: RegExp): { ms: string; m: RegExpExecArray } | undefined => {
    for (const line of own) {
      const m = pattern.exec(line);
      if (m !== null) return { ms: /^\+(\d+) ms/.exec(line)?.[1] ?? '?', m };
    }
    return undefined;
  };
  const local = at(/state restored from checkpoint (\d+)/);
  const session = at(/zookeeper journal: session ([0-9a-f]+) on/);
  const fetching = at(/fetching master (\d+)'s checkpoint (\d+)/);
  const expired = at(/zookeeper session expired/);
  const parts = [local === undefined ? 'no local checkpoint' : `local checkpoint ${local.m[1]} loaded at +${local.ms} ms`];
  if (session !== undefined) parts.push(`session opened (log read to its end) at +${session.ms} ms`);
  if (fetching === undefined) parts.push('read the rest of the log from ZooKeeper');
  else parts.push(`the log after its checkpoint was deleted: fetched master-${fetching.m[1]}'s checkpoint ${fetching.m[2]} at +${fetching.ms} ms, then read the rest of the log`);
  if (expired !== undefined) parts.push(`its session expired at +${expired.ms} ms`);
  const others = Object.fromEntries(Object.entries(logs).filter(([name]) => name !== master));
  const deleted = zkStory(others, [], killedAtWallMs, 10_000).filter((l) => l.includes('deleted log bucket')).length;
  parts.push(`${deleted} log bucket deletions by the leaders while it was down or catching up`);
  return parts.join('; ');
}

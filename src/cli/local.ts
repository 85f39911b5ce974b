// `cairn local up|status|down`: a whole cluster as child processes on this machine, each with its
// own directory and log under the cluster directory, recorded in cluster.json.

import { dirMode, fileMode } from '../io/node-disk.ts';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { replaceFileSync } from './replace-file.ts';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MasterClient } from '../client/index.ts';
import type { JournalStatus } from '../journal/index.ts';
import { rootCaller, type RoutingInfo, type WorkerInfo } from '../meta/index.ts';
import { isRebuildCode, localRebuildSteps, stepsMarker } from '../master/rebuild.ts';
import { clusterFileName, isAlive, readLocalCluster, type LocalCluster, type LocalJournal, type LocalProcess, type LocalZooKeeper } from './cluster-target.ts';
import { CairnError, ErrorCode, assert } from '../errors.ts';
import { configError } from './config.ts';
import { lastErrorLine } from './exit-line.ts';
import { processIdentity } from './identity.ts';
import { freePort } from '../free-port.ts';
import { spawnDaemon } from './daemon.ts';
import { newS3Key } from './s3-user-cmd.ts';
import { hashPassword, newPassword } from '../web/passwords.ts';
import { newZkClusterId } from '../journal/zookeeper/cluster-id.ts';
import { attachEnsemble, startEnsemble, type Ensemble, type ZkMode } from '../journal/zookeeper/ensemble.ts';
import { withServerNodeFlags } from './node-flags.ts';

export { freePort };

const mainScript = fileURLToPath(new URL('./main.ts', import.meta.url));
const startDeadlineMs = 20_000;
/** Tries at starting a new cluster whose ports another program took first. */
const startAttemptsMax = 3;
const stopGraceMs = 5_000;

export interface ProcessStatus extends LocalProcess {
  alive: boolean;
  role?: string;
  term?: number;
  appliedIndex?: number;
  /** Workers: their targets with the public state the masters give them. */
  targets?: { targetId: number; state: string; chainId: number; path: string }[];
}

export interface LocalUpOptions {
  dir: string;
  masters: number;
  /** Storage workers (0: metadata only). */
  workers: number;
  targetsPerWorker: number;
  replication: number;
  join?: number;
  /** The masters' journal for a new cluster (raft if not given); an existing cluster keeps its own. */
  journal?: LocalJournal;
  log: (line: string) => void;
  attempt?: number;
}

/** Servers in the ZooKeeper ensemble of a local cluster: a quorum that survives one failure. */
const zkServers = 3;
/** Under the cluster directory: zookeeper/zk-N per server. */
const zkDirName = 'zookeeper';

/** How long `local up` waits for the workers' chains to serve. */
const chainsDeadlineMs = 30_000;

export async function localUp(opts: LocalUpOptions): Promise<LocalCluster> {
  if (!(opts.masters >= 1 && opts.masters <= 7)) throw configError(`--masters must be 1 to 7, got ${opts.masters}`);
  const existing = readLocalCluster(opts.dir);
  // Without its record, a cluster's data would be taken for nothing: a new cluster over it gets no
  // leader (the masters' logs name the old members), and the record is what knows its secret.
  const leftovers = existing === undefined ? clusterDataIn(opts.dir) : [];
  if (leftovers.length > 0) {
    throw configError(`${opts.dir} holds a cluster's data (${leftovers.join(', ')}) but no ${clusterFileName}, the record of its ports and secret: put the record back (from a copy), or, to start over, remove those directories or use another --dir`);
  }
  const zkDirFound = existsSync(path.join(opts.dir, zkDirName));
  // A stopped cluster restarts with the shape it was made with.
  const shape = existing?.shape ?? { workers: opts.workers, targetsPerWorker: opts.targetsPerWorker, replication: opts.replication };
  if (!(shape.workers >= 0 && shape.workers <= 64)) throw configError(`--workers must be 0 to 64, got ${shape.workers}`);
  if (!(shape.targetsPerWorker >= 1 && shape.targetsPerWorker <= 16)) throw configError(`--targets-per-worker must be 1 to 16, got ${shape.targetsPerWorker}`);
  if (!(shape.replication >= 1 && shape.replication <= 16)) throw configError(`--replication must be 1 to 16, got ${shape.replication}`);
  if (shape.workers > 0 && shape.workers < shape.replication) {
    throw configError(`--replication ${shape.replication} needs at least ${shape.replication} workers (a chain's replicas are on distinct workers), got --workers ${shape.workers}`);
  }
  if (existing === undefined && opts.join !== undefined) throw configError(`--join adds a master to an existing cluster, and there is none in ${opts.dir}`);
  const journal = existing === undefined ? (opts.journal ?? 'raft') : journalOf(existing);
  if (opts.journal !== undefined && opts.journal !== journal) throw configError(`the cluster in ${opts.dir} keeps its journal on ${journal}; --journal ${opts.journal} needs a new cluster (another --dir)`);
  if (journal === 'zookeeper' && opts.join !== undefined) throw configError('--join adds a member to the Raft journal; with --journal zookeeper there is no membership to change');
  if (existing !== undefined && opts.join === undefined && existing.processes.every((p) => isAlive(p.pid)) && zooKeeperRunning(existing)) {
    throw configError(`a cluster is already running in ${opts.dir}; 'cairn local status --dir ${opts.dir}' shows it, 'cairn local down --dir ${opts.dir}' stops it`);
  }
  mkdirSync(opts.dir, { recursive: true, mode: dirMode });
  const secret = existing?.secret ?? randomBytes(24).toString('base64url');
  // The masters' ensemble comes first: they need it to start.
  const zk = journal === 'zookeeper' ? await upZooKeeper(opts.dir, existing, opts.log) : undefined;
  // A new cluster gets fresh ports; a stopped one restarts with its members, addresses and data.
  const founders = existing === undefined ? await newFounders(opts.masters) : foundersOf(existing);
  const ids = existing === undefined ? [...founders.keys()] : mastersOf(opts.dir, existing, opts.join, opts.log);
  const peers = [...founders].map(([id, a]) => `${id}=${a}`).join(',');
  const processes: LocalProcess[] = [];
  /** Master directories this call made: a retry removes only these, never one it found (it may hold another process's lock). */
  const madeDirs = new Set<string>();
  /** Where each started master's log stood before it started: its exit line comes after. */
  const logStarts = new Map<number, number>();
  for (const id of ids) {
    const before = existing?.processes.find((p) => p.kind === 'master' && p.id === id);
    if (before !== undefined && isAlive(before.pid)) {
      processes.push(before);
      continue;
    }
    const dir = path.join(opts.dir, `master-${id}`);
    // Only a founder with a WAL may be given the founders: an empty one would found the cluster
    // again. Any other master joins: one without a WAL is new (a rebuilt master has a new id,
    // docs/masters.md), and waits to be added; one with a WAL restarts from it.
    const join = journal === 'raft' && existing !== undefined && (!founders.has(id) || !existsSync(path.join(dir, 'wal')));
    if (!existsSync(dir)) madeDirs.add(dir);
    mkdirSync(dir, { recursive: true, mode: dirMode });
    const log = path.join(dir, 'master.log');
    const address = before?.address ?? founders.get(id) ?? `127.0.0.1:${await freePort()}`;
    const http = before?.http ?? `127.0.0.1:${await freePort()}`;
    // The ZooKeeper journal takes no --peers: its masters find each other through ZooKeeper.
    const members = journal === 'zookeeper' ? [] : join ? ['--join'] : ['--peers', peers];
    logStarts.set(id, existsSync(log) ? statSync(log).size : 0);
    const pid = spawnDetached(['master', '--id', String(id), '--dir', dir, '--listen', address, ...members, '--http', http, '--replication', String(shape.replication), ...journalArgs(journal, zk?.record)], log, secret);
    processes.push({ kind: 'master', id, address, http, pid, dir, log });
    if (id === opts.join) opts.log(`master ${id} starts empty at ${address} and joins; 'cairn admin journal add ${id} --dir ${opts.dir}' makes it a member`);
  }
  const cluster: LocalCluster = { secret, createdAt: existing?.createdAt ?? new Date().toISOString(), founders: [...founders], shape, journal, ...(zk === undefined ? {} : { zookeeper: zk.record }), processes };
  writeCluster(opts.dir, cluster);
  const started = processes.filter((p) => !existing?.processes.some((e) => e.pid === p.pid)).length;
  opts.log(`started ${started} of ${processes.length} masters (logs in ${opts.dir}/master-N/master.log); waiting for a leader...`);
  try {
    await waitForLeader(cluster, opts.dir, logStarts);
  } catch (err) {
    // A free port can be taken by another program before a new master binds it: start afresh.
    const attempt = opts.attempt ?? 1;
    if (existing !== undefined) {
      // The members that are up stay up, and the workers recorded before stay recorded (the new
      // record holds the masters alone so far): 'local status' and 'local down' find them all.
      writeCluster(opts.dir, { ...cluster, processes: [...processes, ...existing.processes.filter((p) => p.kind !== 'master')] });
      throw err;
    }
    if (attempt >= startAttemptsMax || !portTaken(processes)) {
      // A new cluster that cannot start is not left half running; its logs stay for a look.
      for (const p of processes) signal(p.pid, 'SIGKILL');
      await zk?.ensemble.stop(0);
      throw err;
    }
    opts.log('a port was taken by another program while the masters started; starting again on new ports');
    for (const p of processes) signal(p.pid, 'SIGKILL');
    await zk?.ensemble.stop(0);
    for (const p of processes) if (madeDirs.has(p.dir)) rmSync(p.dir, { recursive: true, force: true });
    if (!zkDirFound) rmSync(path.join(opts.dir, zkDirName), { recursive: true, force: true });
    rmSync(path.join(opts.dir, clusterFileName), { force: true });
    return localUp({ ...opts, attempt: attempt + 1 });
  }
  try {
    if (existing === undefined) await giveRootToUser(cluster);
    if (shape.workers > 0) await startWorkers(cluster, opts.dir, existing, opts.log);
  } catch (err) {
    // As with the masters: a new cluster that cannot start is not left running; its logs stay.
    // (A process already gone is skipped: its pid may be another program's by now.)
    if (existing === undefined) {
      for (const p of cluster.processes) if (isAlive(p.pid)) signal(p.pid, 'SIGKILL');
      await zk?.ensemble.stop(0);
    }
    throw err;
  }
  return cluster;
}

/**
 * A new local cluster belongs to the user who started it: its root directory becomes theirs (a new
 * namespace's root is root's, 0755), so that their `cairn fs` commands may create files in it.
 */
async function giveRootToUser(cluster: LocalCluster): Promise<void> {
  const { uid, gid } = processIdentity();
  if (uid === 0 && gid === 0) return;
  const client = clientFor(cluster, startDeadlineMs);
  try {
    await client.mutate('meta.mutate', { op: 'setattr', path: '/', uid, gid });
  } finally {
    client.close();
  }
}

/** Starts the workers (each with its targets under D/worker-N) and waits until every chain serves. */
async function startWorkers(cluster: LocalCluster, clusterDir: string, existing: LocalCluster | undefined, log: (line: string) => void): Promise<void> {
  const shape = cluster.shape!;
  const masters = cluster.processes.filter((p) => p.kind === 'master').map((p) => p.address).join(',');
  /** Where each started worker's log stood before it started: its exit line comes after. */
  const logStarts = new Map<number, number>();
  const spawnWorker = async (id: number, before: LocalProcess | undefined): Promise<LocalProcess> => {
    const dir = path.join(clusterDir, `worker-${id}`);
    mkdirSync(dir, { recursive: true, mode: dirMode });
    const targets = Array.from({ length: shape.targetsPerWorker }, (_, i) => ['--target', path.join(dir, `target-${i + 1}`)]).flat();
    const address = before?.address ?? `127.0.0.1:${await freePort()}`;
    const http = before?.http ?? `127.0.0.1:${await freePort()}`;
    const logFile = path.join(dir, 'worker.log');
    logStarts.set(id, existsSync(logFile) ? statSync(logFile).size : 0);
    spawnedAt.set(id, Date.now());
    const pid = spawnDetached(['worker', '--id', String(id), '--listen', address, '--masters', masters, ...targets, '--http', http], logFile, cluster.secret);
    return { kind: 'worker', id, address, http, pid, dir, log: logFile };
  };
  /** When this call started each worker it started: one counts once it has registered since (until then, its record may be its dead predecessor's). */
  const spawnedAt = new Map<number, number>();
  /** Workers started again on new ports: a free port can be taken by another program before the worker binds it. */
  const retried = new Map<number, number>();
  // A decommissioned worker never registers again: it is not started (its data directory stays).
  const decommissioned = existing === undefined ? new Set<number>() : await decommissionedWorkers(cluster);
  for (let id = 1; id <= shape.workers; id++) {
    const before = existing?.processes.find((p) => p.kind === 'worker' && p.id === id);
    if (decommissioned.has(id)) {
      log(`worker ${id} was decommissioned: not started (its id never registers again; ${path.join(clusterDir, `worker-${id}`)} stays)`);
      continue;
    }
    if (before !== undefined && isAlive(before.pid)) {
      cluster.processes.push(before);
      continue;
    }
    cluster.processes.push(await spawnWorker(id, before));
  }
  writeCluster(clusterDir, cluster);
  log(`started ${shape.workers - decommissioned.size} workers with ${shape.targetsPerWorker} targets each (logs in ${clusterDir}/worker-N/worker.log); waiting for their chains...`);
  const client = clientFor(cluster, startDeadlineMs);
  try {
    let start = Date.now();
    const want = Math.floor((shape.workers * shape.targetsPerWorker) / shape.replication);
    for (;;) {
      const dead = cluster.processes.filter((p) => p.kind === 'worker' && !isAlive(p.pid));
      const again = dead.find((p) => !existing?.processes.some((e) => e.kind === 'worker' && e.id === p.id) && (retried.get(p.id) ?? 0) < startAttemptsMax - 1 && addressTaken(p.log, logStarts.get(p.id) ?? 0));
      if (again !== undefined) {
        log(`worker ${again.id}: a port was taken by another program while it started; starting it again on new ports`);
        retried.set(again.id, (retried.get(again.id) ?? 0) + 1);
        cluster.processes[cluster.processes.indexOf(again)] = await spawnWorker(again.id, undefined);
        writeCluster(clusterDir, cluster);
        start = Date.now(); // the wait for the chains starts over with it
        continue;
      }
      if (dead.length > 0) throw new CairnError(ErrorCode.ProcessFailed, `worker ${dead[0].id} exited: ${lastErrorLine(dead[0].log, logStarts.get(dead[0].id) ?? 0) ?? 'no error line'}; see ${dead[0].log}`);
      const routing = await client.query<RoutingInfo>('cluster.routing', {});
      const serving = (id: number): boolean => routing.targets.some((t) => t.targetId === id && t.state === 'serving');
      const workers = spawnedAt.size === 0 ? [] : await client.query<WorkerInfo[]>('meta.query', { op: 'workers' });
      const registered = [...spawnedAt].every(([id, at]) => workers.some((w) => w.workerId === id && w.updatedMs >= at));
      if (registered && routing.chains.length >= want && routing.chains.every((c) => c.targetIds.every(serving))) return;
      if (Date.now() - start > chainsDeadlineMs) {
        throw new CairnError(ErrorCode.Unavailable, `after ${chainsDeadlineMs} ms: ${routing.chains.length} of ${want} chains, not all serving; see the worker logs under ${clusterDir}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    client.close();
  }
}

/** The ids of the cluster's decommissioned workers, as its masters (running, with a leader) know them. */
async function decommissionedWorkers(cluster: LocalCluster): Promise<Set<number>> {
  const client = clientFor(cluster, startDeadlineMs);
  try {
    const workers = await client.query<WorkerInfo[]>('meta.query', { op: 'workers' });
    return new Set(workers.filter((w) => w.decommissionedMs !== undefined).map((w) => w.workerId));
  } finally {
    client.close();
  }
}

/** The masters' logs in `dir` (master-N/wal): a cluster's data. */
function clusterDataIn(dir: string): string[] {
  try {
    return readdirSync(dir)
      .filter((n) => /^master-\d+$/.test(n) && existsSync(path.join(dir, n, 'wal')))
      .sort()
      .map((n) => `${n}/wal`);
  } catch {
    return [];
  }
}

function writeCluster(dir: string, cluster: LocalCluster): void {
  replaceFileSync(path.join(dir, clusterFileName), `${JSON.stringify(cluster, null, 2)}\n`, 0o600);
}

function journalOf(c: LocalCluster): LocalJournal {
  return c.journal ?? 'raft';
}

/** The flags that put a master on the cluster's journal: none for Raft, the default. */
export function journalArgs(journal: LocalJournal, zk: LocalZooKeeper | undefined): string[] {
  if (journal === 'raft') return [];
  assert(zk !== undefined, 'a local cluster on ZooKeeper has its ensemble recorded');
  return ['--journal', 'zookeeper', '--zk', zk.connectString, '--zk-cluster', zk.clusterId];
}

/** Whether every ZooKeeper server of the cluster runs (true when it has none). */
function zooKeeperRunning(c: LocalCluster): boolean {
  if (c.zookeeper === undefined) return true;
  const e = attachEnsemble(c.zookeeper.servers);
  return e.servers.every((s) => e.isRunning(s.id));
}

/**
 * Starts a new cluster's ZooKeeper ensemble (3 servers under D/zookeeper, detached like the
 * masters), or restarts the servers of an existing one that are down; waits until they serve.
 */
async function upZooKeeper(dir: string, existing: LocalCluster | undefined, log: (line: string) => void): Promise<{ record: LocalZooKeeper; ensemble: Ensemble }> {
  if (existing === undefined) {
    const ensemble = await startEnsemble({ dir: path.join(dir, zkDirName), servers: zkServers, detached: true });
    const record = { clusterId: newZkClusterId(), connectString: ensemble.connectString, servers: [...ensemble.servers] };
    log(`started ZooKeeper: ${zkServers} servers at ${record.connectString} (logs in ${dir}/${zkDirName}/zk-N/zookeeper.log); cluster id ${record.clusterId}`);
    return { record, ensemble };
  }
  assert(existing.zookeeper !== undefined, 'a local cluster on ZooKeeper has its ensemble recorded');
  const ensemble = attachEnsemble(existing.zookeeper.servers);
  const down = ensemble.servers.filter((s) => !ensemble.isRunning(s.id)).map((s) => s.id);
  const record = (): LocalZooKeeper => ({ ...existing.zookeeper!, servers: [...ensemble.servers] });
  if (down.length > 0) {
    log(`restarting ZooKeeper servers ${down.join(', ')}...`);
    try {
      await ensemble.start(down);
    } catch (err) {
      // Their new PIDs are kept, so that 'local status' and 'local down' still find them.
      writeCluster(dir, { ...existing, zookeeper: record() });
      throw err;
    }
  }
  return { record: record(), ensemble };
}

async function newFounders(count: number): Promise<Map<number, string>> {
  const founders = new Map<number, string>();
  for (let id = 1; id <= count; id++) founders.set(id, `127.0.0.1:${await freePort()}`);
  return founders;
}

/** The founding masters (a record written before founders were kept: its masters, which were the founders then). */
function foundersOf(c: LocalCluster): Map<number, string> {
  return new Map(c.founders ?? c.processes.filter((p) => p.kind === 'master').map((p) => [p.id, p.address]));
}

const masterDirName = /^master-(\d+)$/;

/**
 * The masters of an existing local cluster: one per D/master-N directory (a directory moved aside,
 * such as master-2.corrupt, is none), plus `join`, a new one. Ids are never reused, so the new id
 * must be one no directory or record of this cluster has had.
 */
function mastersOf(dir: string, c: LocalCluster, join: number | undefined, log: (line: string) => void): number[] {
  const ids = readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && masterDirName.test(e.name))
    .map((e) => Number(masterDirName.exec(e.name)![1]));
  for (const p of c.processes) {
    if (p.kind === 'master' && !ids.includes(p.id)) log(`master ${p.id} is not started: ${path.join(dir, `master-${p.id}`)} is gone (docs/masters.md, 'Rebuilding a master')`);
  }
  if (join !== undefined) {
    if (usedLocalIds(dir, c).has(join)) throw configError(`master ${join} already exists or existed in ${dir}, and ids are never reused: --join ${unusedLocalId(dir, c)}`);
    ids.push(join);
  }
  if (ids.length === 0) throw configError(`no master directories (master-N) in ${dir}; 'cairn local down --dir ${dir}' and start a new cluster elsewhere`);
  return ids.sort((a, b) => a - b);
}

/** Every id this local cluster has recorded or kept a directory for, also one moved aside. */
function usedLocalIds(dir: string, c: LocalCluster): Set<number> {
  const ids = new Set([...foundersOf(c).keys(), ...c.processes.map((p) => p.id)]);
  for (const name of readdirSync(dir)) {
    const m = /^master-(\d+)(?:$|\.)/.exec(name);
    if (m !== null) ids.add(Number(m[1]));
  }
  return ids;
}

/** An id for a new master of this local cluster: above every id it has had. */
export function unusedLocalId(dir: string, c: LocalCluster): number {
  return Math.max(0, ...usedLocalIds(dir, c)) + 1;
}

/** Whether a master of a new cluster exited because its address was in use. */
function portTaken(processes: LocalProcess[]): boolean {
  return processes.some((p) => !isAlive(p.pid) && addressTaken(p.log, 0));
}

/** Whether a process's log, from byte `from` on, says its address was in use. */
function addressTaken(log: string, from: number): boolean {
  return existsSync(log) && readFileSync(log).subarray(from).includes('EADDRINUSE');
}

function spawnDetached(args: string[], logFile: string, secret: string): number {
  const fd = openSync(logFile, 'a', fileMode);
  try {
    const nodeArgs = withServerNodeFlags([]);
    const child = spawn(process.execPath, [...nodeArgs, mainScript, ...args], {
      detached: true,
      stdio: ['ignore', fd, fd],
      env: { ...process.env, CAIRN_SECRET: secret },
    });
    child.unref();
    if (child.pid === undefined) throw new CairnError(ErrorCode.ProcessFailed, `could not start ${args[0]} (${process.execPath} ${mainScript}); see ${logFile}`);
    return child.pid;
  } finally {
    closeSync(fd);
  }
}

/**
 * Waits until a master leads and every master answers. A master that exits meanwhile (a bad flag,
 * a full disk, an unusable directory) ends the wait at once with why, from its log: waiting for a
 * leader that cannot come would only end in 'no leader'.
 */
async function waitForLeader(cluster: LocalCluster, clusterDir: string, logStarts: Map<number, number>): Promise<void> {
  const start = Date.now();
  for (;;) {
    const dead = cluster.processes.filter((p) => !isAlive(p.pid));
    if (dead.length > 0) throw new CairnError(ErrorCode.ProcessFailed, exitReport(dead, clusterDir, unusedLocalId(clusterDir, cluster), logStarts));
    const st = await localStatus(cluster);
    if (st.some((p) => p.role === 'leader') && st.every((p) => p.alive && p.role !== 'unreachable')) return;
    if (Date.now() - start > startDeadlineMs) throw new CairnError(ErrorCode.Unavailable, `no leader after ${startDeadlineMs} ms; see the logs under the cluster directory`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Why a master exited, from the one-line error it wrote last. A master that refuses to start
 * because its data is unusable gets the rebuild steps for this local cluster.
 */
function exitReport(dead: LocalProcess[], clusterDir: string, newId: number, logStarts: Map<number, number>): string {
  const p = dead[0];
  const others = dead.length === 1 ? '' : ` (also exited: ${dead.slice(1).map((d) => `master ${d.id}`).join(', ')})`;
  const line = lastErrorLine(p.log, logStarts.get(p.id) ?? 0);
  if (line === undefined) return `master ${p.id} exited with no error line in its log; see ${p.log}${others}`;
  const code = /\((CAIRN_[A-Z_]+)\)$/.exec(line)?.[1] ?? '';
  const steps = line.indexOf(stepsMarker);
  if (!isRebuildCode(code) || steps < 0) return `master ${p.id} exited: ${line}; see ${p.log}${others}`;
  const why = line.slice(0, steps).trim();
  return `${why} For this local cluster, in this order: ${localRebuildSteps(p.id, newId, clusterDir, p.dir)} (${code}; log: ${p.log})`;
}

export async function localStatus(cluster: LocalCluster): Promise<ProcessStatus[]> {
  const client = clientFor(cluster, 2_000);
  try {
    const routing = cluster.processes.some((p) => p.kind === 'worker') ? await client.query<RoutingInfo>('cluster.routing', {}).catch(() => undefined) : undefined;
    return await Promise.all(
      cluster.processes.map(async (p): Promise<ProcessStatus> => {
        const alive = isAlive(p.pid);
        if (p.kind === 'worker') {
          const targets = routing?.targets.filter((t) => t.workerId === p.id).map((t) => ({ targetId: t.targetId, state: t.state, chainId: t.chainId, path: t.path }));
          return { ...p, alive, ...(targets === undefined ? {} : { targets }) };
        }
        if (!alive) return { ...p, alive };
        try {
          const st = await client.callAt<JournalStatus>(p.address, 'admin.journal.info', {});
          return { ...p, alive, role: st.role, term: st.term, appliedIndex: st.appliedIndex };
        } catch {
          return { ...p, alive, role: 'unreachable' };
        }
      }),
    );
  } finally {
    client.close();
  }
}

export interface ZkServerStatus {
  kind: 'zookeeper';
  id: number;
  address: string;
  clientPort: number;
  pid: number;
  alive: boolean;
  mode: ZkMode;
  dir: string;
  log: string;
}

/** The cluster's ZooKeeper servers (none for a cluster on Raft), with their mode from `srvr`. */
export async function zooKeeperStatus(cluster: LocalCluster): Promise<ZkServerStatus[]> {
  if (cluster.zookeeper === undefined) return [];
  const e = attachEnsemble(cluster.zookeeper.servers);
  return Promise.all(
    e.servers.map(async (s): Promise<ZkServerStatus> => {
      const mode = await e.status(s.id);
      return { kind: 'zookeeper', id: s.id, address: `127.0.0.1:${s.clientPort}`, clientPort: s.clientPort, pid: s.pid, alive: mode !== 'down', mode, dir: s.dir, log: s.log };
    }),
  );
}

/** The S3 gateway `local up --s3` started for a cluster, and its access key (the file is the owner's only: 0600). */
const s3FileName = 's3.json';
export interface LocalS3 {
  endpoint: string;
  pid: number;
  /** Where its /metrics is served. */
  http?: string;
  accessKeyId: string;
  secretKey: string;
}

export interface S3Status extends LocalS3 {
  kind: 's3';
  id: number;
  address: string;
  alive: boolean;
}

export function readLocalS3(dir: string): LocalS3 | undefined {
  try {
    return JSON.parse(readFileSync(path.join(dir, s3FileName), 'utf8')) as LocalS3;
  } catch {
    return undefined;
  }
}

/**
 * Starts the cluster's S3 gateway as a daemon (unless it runs already), with an access key of its
 * own made once (acting as root, all buckets) and kept beside the cluster's record.
 */
export async function startLocalS3(dir: string, listen: string, cliArgs: string[], log: (line: string) => void): Promise<LocalS3> {
  const cluster = readLocalCluster(dir);
  assert(cluster !== undefined, `no local cluster in ${dir}`);
  const old = readLocalS3(dir);
  if (old !== undefined && isAlive(old.pid)) return old;
  let key = old === undefined ? undefined : { accessKeyId: old.accessKeyId, secretKey: old.secretKey };
  if (key === undefined) {
    key = newS3Key('LOCAL');
    const client = clientFor(cluster, 10_000);
    try {
      await client.mutate('meta.mutate', { op: 's3UserAdd', ...key, buckets: ['*'], uid: 0, gid: 0 });
    } finally {
      client.close();
    }
  }
  const { pid, message } = await spawnDaemon([...cliArgs, 's3', '--dir', path.resolve(dir), '--listen', listen, '--http', '127.0.0.1:0'], path.join(dir, 's3.log'), 'the S3 gateway');
  const { endpoint, http } = message as { endpoint?: unknown; http?: unknown };
  const s3: LocalS3 = { endpoint: String(endpoint), pid, ...(typeof http === 'string' ? { http } : {}), ...key };
  replaceFileSync(path.join(dir, s3FileName), JSON.stringify(s3, null, 2), fileMode);
  log(`S3 gateway on ${s3.endpoint} (pid ${pid}, log ${path.join(dir, 's3.log')}${s3.http === undefined ? '' : `, /metrics on http://${s3.http}`})`);
  return s3;
}

/** The local cluster's dashboard: an address of it (any master's: followers forward to the leader) and a login made once. */
const dashboardFileName = 'dashboard.json';
export interface LocalDashboard {
  url: string;
  user: string;
  password: string;
}

/**
 * The dashboard of a local cluster: a read-only login named `local` is made once (its password
 * kept beside the cluster's record, owner-only, as the cluster secret is), and the address is
 * master 1's HTTP port.
 */
export async function ensureLocalDashboard(dir: string): Promise<LocalDashboard | undefined> {
  const cluster = readLocalCluster(dir);
  const master = cluster?.processes.find((p) => p.kind === 'master' && p.http !== undefined);
  if (cluster === undefined || master === undefined) return undefined;
  const file = path.join(dir, dashboardFileName);
  let login: { user: string; password: string } | undefined;
  try {
    login = JSON.parse(readFileSync(file, 'utf8')) as LocalDashboard;
  } catch {
    login = undefined;
  }
  if (login === undefined) {
    login = { user: 'local', password: newPassword() };
    const passwordHash = await hashPassword(login.password);
    const client = clientFor(cluster, 10_000);
    try {
      // A login left from a dashboard.json that was deleted: replaced, as its password is lost.
      await client.mutate('meta.mutate', { op: 'dashboardUserRemove', name: login.user }).catch(() => undefined);
      await client.mutate('meta.mutate', { op: 'dashboardUserAdd', name: login.user, passwordHash, uid: 0, gid: 0 });
    } finally {
      client.close();
    }
  }
  const dashboard: LocalDashboard = { url: `http://${master.http}/`, user: login.user, password: login.password };
  replaceFileSync(file, JSON.stringify(dashboard, null, 2), fileMode);
  return dashboard;
}

export function s3Status(dir: string): S3Status[] {
  const s3 = readLocalS3(dir);
  return s3 === undefined ? [] : [{ kind: 's3', id: 1, address: s3.endpoint.replace(/^http:\/\//, ''), alive: isAlive(s3.pid), ...s3 }];
}

async function stopLocalS3(dir: string, log: (line: string) => void): Promise<void> {
  const s3 = readLocalS3(dir);
  if (s3 === undefined || !isAlive(s3.pid)) return;
  await stopProcesses([{ pid: s3.pid, name: 'the S3 gateway' }], log);
  log(`stopped the S3 gateway on ${s3.endpoint}`);
}

/** The FUSE mounts `local up --mount` started for a cluster, kept beside its record. */
const mountsFileName = 'mounts.json';
export interface LocalMount {
  mountpoint: string;
  pid: number;
  /** Where its /metrics is served. */
  http?: string;
}

export function recordLocalMount(dir: string, m: LocalMount): void {
  const file = path.join(dir, mountsFileName);
  const mounts = readLocalMounts(dir).filter((x) => isAlive(x.pid) && x.mountpoint !== m.mountpoint);
  replaceFileSync(file, JSON.stringify([...mounts, m], null, 2), fileMode);
}

function readLocalMounts(dir: string): LocalMount[] {
  try {
    return JSON.parse(readFileSync(path.join(dir, mountsFileName), 'utf8')) as LocalMount[];
  } catch {
    return [];
  }
}

/** Stops the mount daemons (they flush open files and unmount) before the cluster they use. */
async function stopLocalMounts(dir: string, log: (line: string) => void): Promise<void> {
  const mounts = readLocalMounts(dir).filter((m) => isAlive(m.pid));
  const killed = await stopProcesses(mounts.map((m) => ({ pid: m.pid, name: `the mount at ${m.mountpoint}`, whenKilled: ' (the next \'cairn mount\' there detaches it)' })), log);
  for (const m of mounts) if (!killed.has(m.pid)) log(`unmounted ${m.mountpoint}`);
  rmSync(path.join(dir, mountsFileName), { force: true });
}

/**
 * SIGTERM to each process that runs, then SIGKILL (logged) to any still running after
 * stopGraceMs; the pids it had to kill.
 */
async function stopProcesses(procs: { pid: number; name: string; whenKilled?: string }[], log: (line: string) => void): Promise<Set<number>> {
  for (const p of procs) if (isAlive(p.pid)) signal(p.pid, 'SIGTERM');
  const start = Date.now();
  while (procs.some((p) => isAlive(p.pid)) && Date.now() - start < stopGraceMs) await new Promise((r) => setTimeout(r, 50));
  const killed = new Set<number>();
  for (const p of procs) {
    if (!isAlive(p.pid)) continue;
    signal(p.pid, 'SIGKILL');
    killed.add(p.pid);
    log(`${p.name} (pid ${p.pid}) did not stop in ${stopGraceMs} ms: killed${p.whenKilled ?? ''}`);
  }
  return killed;
}

export async function localDown(dir: string, log: (line: string) => void): Promise<void> {
  const cluster = readLocalCluster(dir);
  if (cluster === undefined) {
    log(`no local cluster in ${dir}`);
    return;
  }
  await stopLocalS3(dir, log);
  await stopLocalMounts(dir, log);
  await stopProcesses(cluster.processes.map((p) => ({ pid: p.pid, name: `${p.kind} ${p.id}` })), log);
  // After the masters, so that none of them sees its journal vanish under it.
  if (cluster.zookeeper !== undefined) {
    const e = attachEnsemble(cluster.zookeeper.servers);
    const running = e.servers.filter((s) => e.isRunning(s.id)).length;
    await e.stop(stopGraceMs);
    log(`stopped ${running} ZooKeeper servers`);
  }
  log(`stopped ${cluster.processes.length} processes; data kept in ${dir} ('cairn local up --dir ${dir}' restarts them)`);
}

function clientFor(cluster: LocalCluster, deadlineMs: number): MasterClient {
  const masters = cluster.processes.filter((p) => p.kind === 'master').map((p) => p.address);
  // Starting, watching and setting up the cluster is the administrator's: as root.
  return new MasterClient({ masters, secret: cluster.secret, deadlineMs, callTimeoutMs: 1_000, caller: rootCaller });
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}

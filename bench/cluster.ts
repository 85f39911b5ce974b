// Helpers shared by the benchmarks that run real processes on 127.0.0.1: a three-member etcd
// cluster as the anchor, and a closed-loop load runner. The process group and the cairn masters
// come from test/cluster/process-cluster.ts, which the process tests use too.

import { execFileSync, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Etcd3, type IOptions } from 'etcd3';
import { freePort } from '../src/cli/local.ts';
import { logTail, sleep, waitFor, waitForLeaderOf, type ProcessGroup } from '../test/cluster/process-cluster.ts';

// ---- etcd (the anchor) -------------------------------------------------------------------------

/** Installs Debian's `packages` (as root), saying so; throws with apt-get's last line when it fails. */
export function aptInstall(packages: string[]): void {
  const names = packages.join(' ');
  console.log(`installing ${packages.join(', ')} (apt-get install -y ${names})...`);
  const r = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', ...packages], { encoding: 'utf8', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  if (r.status !== 0) throw new Error(`apt-get install ${names} failed: ${(r.stderr || r.stdout || String(r.error)).trim().split('\n').pop()}`);
}

/** `tool` from Debian's package `pkg`: installed here when missing and run as root (a bench needs it), else a clear error. */
export function ensureDebianTool(tool: string, pkg = tool): void {
  if (spawnSync(tool, ['--version']).status === 0) return;
  if (process.getuid?.() !== 0) throw new Error(`${tool} is not installed: run sudo apt-get install -y ${pkg}`);
  aptInstall([pkg]);
}

/**
 * The etcd binary: on PATH, or installed from Debian's etcd-server package when running as root.
 * Returns undefined with the reason when neither works, so the caller can report cairn alone.
 */
export function findEtcd(log: (line: string) => void): { binary: string; version: string } | { missing: string } {
  const found = (): string | undefined => ['/usr/bin/etcd', '/usr/local/bin/etcd'].find((p) => existsSync(p)) ?? whichEtcd();
  let binary = found();
  if (binary === undefined && process.getuid?.() === 0) {
    log('etcd not found: installing Debian package etcd-server (apt-get update; apt-get install -y etcd-server)');
    try {
      execFileSync('apt-get', ['update'], { stdio: 'ignore' });
      execFileSync('apt-get', ['install', '-y', 'etcd-server'], { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    } catch (err) {
      return { missing: `installing etcd-server failed (${(err as Error).message.split('\n')[0]})` };
    }
    binary = found();
  }
  if (binary === undefined) {
    return { missing: 'etcd is not installed and this is not root: install it with `sudo apt-get install etcd-server` to run the anchor' };
  }
  const version = execFileSync(binary, ['--version'], { encoding: 'utf8' }).split('\n')[0].trim();
  return { binary, version };
}

function whichEtcd(): string | undefined {
  try {
    const p = execFileSync('sh', ['-c', 'command -v etcd'], { encoding: 'utf8' }).trim();
    return p.length > 0 ? p : undefined;
  } catch {
    return undefined;
  }
}

type EtcdPolicy = NonNullable<NonNullable<IOptions['faultHandling']>['global']>;

/** A fault-handling policy that calls straight through: no retries, no circuit breaker. */
export const passThroughPolicy: EtcdPolicy = {
  _altReturn: undefined as never,
  onSuccess: () => ({ dispose() {} }),
  onFailure: () => ({ dispose() {} }),
  async execute<T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T, signal?: AbortSignal): Promise<T> {
    return await fn({ signal: signal ?? new AbortController().signal });
  },
};

export interface EtcdMember {
  name: string;
  clientUrl: string;
  peerUrl: string;
  dir: string;
  log: string;
  child: ChildProcess | undefined;
}

/** etcd members with stock settings except addresses and data directories, on 127.0.0.1. */
export class EtcdMembers {
  readonly members = new Map<string, EtcdMember>();
  private readonly procs: ProcessGroup;
  private readonly binary: string;
  private initialCluster = '';
  private readonly clients: Etcd3[] = [];

  private constructor(procs: ProcessGroup, binary: string) {
    this.procs = procs;
    this.binary = binary;
  }

  static async start(procs: ProcessGroup, binary: string, count: number): Promise<EtcdMembers> {
    const e = new EtcdMembers(procs, binary);
    for (let i = 1; i <= count; i++) {
      const name = `etcd-${i}`;
      const dir = path.join(procs.root, name);
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      e.members.set(name, {
        name,
        clientUrl: `http://127.0.0.1:${await freePort()}`,
        peerUrl: `http://127.0.0.1:${await freePort()}`,
        dir,
        log: path.join(procs.root, `${name}.log`),
        child: undefined,
      });
    }
    e.initialCluster = [...e.members.values()].map((m) => `${m.name}=${m.peerUrl}`).join(',');
    for (const name of e.members.keys()) e.spawn(name);
    await e.waitForLeader();
    return e;
  }

  endpoints(): string[] {
    return [...this.members.values()].map((m) => m.clientUrl);
  }

  pids(): Record<string, number> {
    return Object.fromEntries([...this.members.values()].filter((m) => m.child?.pid !== undefined).map((m) => [m.name, m.child!.pid!]));
  }

  /** Restarting with an existing data directory ignores the initial-cluster flags, as etcd documents. */
  spawn(name: string): void {
    const m = this.member(name);
    const args = [
      '--name', m.name,
      '--data-dir', m.dir,
      '--listen-client-urls', m.clientUrl,
      '--advertise-client-urls', m.clientUrl,
      '--listen-peer-urls', m.peerUrl,
      '--initial-advertise-peer-urls', m.peerUrl,
      '--initial-cluster', this.initialCluster,
      '--initial-cluster-state', 'new',
      '--initial-cluster-token', 'cairn-bench',
    ];
    m.child = this.procs.spawn(this.binary, args, m.log);
  }

  async kill(name: string): Promise<void> {
    const m = this.member(name);
    if (m.child !== undefined) await this.procs.stop(m.child, 'SIGKILL');
    m.child = undefined;
  }

  /** A client of the whole cluster (etcd3's defaults), or of the given endpoints with the given fault handling and call deadline. */
  client(hosts: string[] = this.endpoints(), policy?: EtcdPolicy, callTimeoutMs?: number): Etcd3 {
    const opts: IOptions = { hosts };
    if (callTimeoutMs !== undefined) opts.defaultCallOptions = (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + callTimeoutMs });
    if (policy !== undefined) opts.faultHandling = { host: () => policy, global: policy };
    const c = new Etcd3(opts);
    this.clients.push(c);
    return c;
  }

  /** The leader's name, as the first running member that answers knows it. */
  async leaderName(): Promise<string | undefined> {
    for (const m of this.members.values()) {
      if (m.child === undefined) continue;
      const c = new Etcd3({ hosts: m.clientUrl, faultHandling: { host: () => passThroughPolicy, global: passThroughPolicy } });
      try {
        const st = await c.maintenance.status({ deadline: Date.now() + 1_000 });
        if (st.leader !== '0' && st.leader === st.header.member_id) return m.name;
      } catch {
        // not answering yet: ask the next one
      } finally {
        c.close();
      }
    }
    return undefined;
  }

  waitForLeader(exclude?: string, deadlineMs = 30_000): Promise<string> {
    return waitForLeaderOf(() => this.leaderName(), exclude, 'an etcd leader', deadlineMs, () => this.logTails());
  }

  /** Waits until a put through member `name` alone succeeds: it has rejoined and knows the leader. */
  async waitServing(name: string, deadlineMs = 60_000): Promise<void> {
    const c = this.client([this.member(name).clientUrl], passThroughPolicy);
    try {
      await waitFor(async () => {
        try {
          await c.put('bench/rejoin').value(name).options({ deadline: Date.now() + 1_000 }).exec();
          return true;
        } catch {
          return false;
        }
      }, `etcd member ${name} to serve again`, deadlineMs, () => this.logTails());
    } finally {
      c.close();
    }
  }

  async logTails(lines = 20): Promise<string> {
    const tails = await Promise.all([...this.members.values()].map((m) => logTail(m.name, m.log, lines)));
    return tails.join('\n');
  }

  closeClients(): void {
    for (const c of this.clients) c.close();
    this.clients.length = 0;
  }

  private member(name: string): EtcdMember {
    const m = this.members.get(name);
    if (m === undefined) throw new Error(`no etcd member ${name}`);
    return m;
  }
}

// ---- load --------------------------------------------------------------------------------------

/** One operation of worker `worker`; `n` counts that worker's operations from 0. */
export type Operation = (worker: number, n: number) => Promise<unknown>;

export interface LoadResult {
  workers: number;
  seconds: number;
  ops: number;
  errors: number;
  /** The first few distinct error messages, for the report. */
  errorSamples: string[];
  opsPerSecond: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  /** CPU use of each named process over the measured window, in cores (1 = one core busy). */
  cpuCores: Record<string, number>;
  /** The measured window on the monotonic clock (µs), which V8's CPU profiles also use. */
  windowMonotonicUs: { from: number; to: number };
}

function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/** A running closed-loop load: each worker starts its next operation as soon as the previous one ends. */
export class Load {
  /** Completion times (performance.now()) and latencies of successful operations, in completion order. */
  readonly doneAtMs: number[] = [];
  readonly latenciesMs: number[] = [];
  errors = 0;
  readonly errorSamples: string[] = [];
  private stopping = false;
  private readonly running: Promise<void>[] = [];
  private readonly counts: number[];

  constructor(workers: number, op: Operation) {
    this.counts = new Array<number>(workers).fill(0);
    for (let w = 0; w < workers; w++) this.running.push(this.loop(w, op));
  }

  /** Stops starting operations and waits for those in flight. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.running);
  }

  private async loop(worker: number, op: Operation): Promise<void> {
    while (!this.stopping) {
      const started = performance.now();
      try {
        await op(worker, this.counts[worker]++);
        const now = performance.now();
        this.doneAtMs.push(now);
        this.latenciesMs.push(now - started);
      } catch (err) {
        this.errors++;
        const msg = `${(err as { code?: string }).code ?? ''} ${(err as Error).message ?? String(err)}`.trim();
        if (this.errorSamples.length < 5 && !this.errorSamples.includes(msg)) this.errorSamples.push(msg);
      }
    }
  }
}

/**
 * Called synchronously as the measured window opens and closes, to read other counters over the
 * same window (disk sectors, a commit index); a hook that needs I/O keeps its own promise.
 */
export interface WindowHooks {
  atStart(): void;
  atEnd(): void;
}

/**
 * Runs `op` on `workers` concurrent workers: `warmupSeconds` unmeasured, then `seconds` measured.
 * Operations still in flight when the window closes complete, but do not count. `pids` names the
 * processes whose CPU use over the window is reported (this one is always included as 'bench').
 */
export async function measureLoad(workers: number, seconds: number, warmupSeconds: number, op: Operation, pids: Record<string, number> = {}, hooks?: WindowHooks): Promise<LoadResult> {
  const load = new Load(workers, op);
  await sleep(warmupSeconds * 1000);
  const from = performance.now();
  const fromUs = monotonicUs();
  const errorsBefore = load.errors;
  const firstIndex = load.doneAtMs.length;
  const cpuBefore = cpuSnapshot(pids);
  hooks?.atStart();
  await sleep(seconds * 1000);
  hooks?.atEnd();
  const to = performance.now();
  const toUs = monotonicUs();
  const cpuCores = coresUsedSince(cpuBefore, pids, (to - from) / 1000);
  const errors = load.errors - errorsBefore;
  await load.stop();
  const latencies: number[] = [];
  for (let i = firstIndex; i < load.doneAtMs.length && load.doneAtMs[i] <= to; i++) latencies.push(load.latenciesMs[i]);
  const elapsed = (to - from) / 1000;
  return {
    workers,
    seconds: elapsed,
    ops: latencies.length,
    errors,
    errorSamples: load.errorSamples,
    opsPerSecond: latencies.length / elapsed,
    latencyMs: summarize(latencies),
    cpuCores,
    windowMonotonicUs: { from: fromUs, to: toUs },
  };
}

interface CpuSnapshot {
  self: NodeJS.CpuUsage;
  others: Map<string, number | undefined>;
  machine: MachineCpu | undefined;
}

function cpuSnapshot(pids: Record<string, number>): CpuSnapshot {
  return { self: process.cpuUsage(), others: new Map(Object.entries(pids).map(([name, pid]) => [name, processCpuSeconds(pid)])), machine: machineBusySeconds() };
}

/**
 * CPU seconds per wall second (1 = one core busy) of each process since `before`, and of the
 * whole machine ('machine') and whatever else ran on it ('other processes'): a run that shared
 * the machine with other work says so.
 */
function coresUsedSince(before: CpuSnapshot, pids: Record<string, number>, seconds: number): Record<string, number> {
  const d = process.cpuUsage(before.self);
  const out: Record<string, number> = { bench: (d.user + d.system) / 1e6 / seconds };
  for (const [name, pid] of Object.entries(pids)) {
    const start = before.others.get(name);
    const end = processCpuSeconds(pid);
    if (start !== undefined && end !== undefined) out[name] = (end - start) / seconds;
  }
  const machineEnd = machineBusySeconds();
  if (before.machine !== undefined && machineEnd !== undefined) {
    const ours = Object.values(out).reduce((a, b) => a + b, 0);
    const processes = (machineEnd.processes - before.machine.processes) / seconds;
    out.interrupts = (machineEnd.interrupts - before.machine.interrupts) / seconds;
    out['other processes'] = Math.max(0, processes - ours);
    out.steal = (machineEnd.steal - before.machine.steal) / seconds;
  }
  return out;
}

export interface MachineCpu {
  /** User and system time of every process. */
  processes: number;
  /** Hard and soft interrupts (loopback TCP is mostly softirq), charged to no process. */
  interrupts: number;
  /** Time the hypervisor gave to someone else while this machine wanted to run. */
  steal: number;
  /** Time no CPU had anything to run (idle, and idle waiting for I/O). */
  idle: number;
}

/** CPU seconds of the whole machine since boot, from /proc/stat (Linux). */
export function machineBusySeconds(): MachineCpu | undefined {
  try {
    clockTicksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal (guest time is already inside user)
    const t = clockTicksPerSecond;
    return { processes: (cpu[0] + cpu[1] + cpu[2]) / t, interrupts: (cpu[5] + cpu[6]) / t, steal: cpu[7] / t, idle: (cpu[3] + cpu[4]) / t };
  } catch {
    return undefined;
  }
}

/** The commit the benchmark runs, and whether src/ differs from it (CAIRN_BENCH_SOURCE overrides, for an exported tree). */
export function sourceState(): string {
  if (process.env.CAIRN_BENCH_SOURCE !== undefined) return process.env.CAIRN_BENCH_SOURCE;
  try {
    const cwd = path.join(import.meta.dirname, '..');
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return dirty === '' ? `commit ${commit}` : `commit ${commit} plus uncommitted changes in src/`;
  } catch {
    return 'unknown (not a git checkout; set CAIRN_BENCH_SOURCE)';
  }
}

let clockTicksPerSecond: number | undefined;

/** User plus system CPU seconds of a process, from /proc (Linux); undefined elsewhere or once it has exited. */
export function processCpuSeconds(pid: number): number | undefined {
  try {
    clockTicksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start at state, field 3; utime and stime are 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / clockTicksPerSecond;
  } catch {
    return undefined;
  }
}

function summarize(latencies: number[]): LoadResult['latencyMs'] {
  if (latencies.length === 0) return { p50: NaN, p90: NaN, p99: NaN, max: NaN, mean: NaN };
  const sorted = Float64Array.from(latencies).sort();
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  const mean = sorted.reduce((a, b) => a + b, 0) / sorted.length;
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted[sorted.length - 1], mean };
}

/** The longest stretch with no completed operation between `fromMs` and `toMs` (performance.now() times). */
export function longestGapMs(doneAtMs: number[], fromMs: number, toMs: number): number {
  let prev = fromMs;
  let gap = 0;
  for (const t of doneAtMs) {
    if (t < fromMs) continue;
    if (t > toMs) break;
    gap = Math.max(gap, t - prev);
    prev = t;
  }
  return Math.max(gap, toMs - prev);
}

export function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

// Helpers shared by the benchmarks that run real processes on 127.0.0.1: a process group that owns
// its children and temporary directory (stopped by PID, removed at the end, also on failure), three
// cairn masters, a three-member etcd cluster as the anchor, and a closed-loop load runner.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Etcd3, type IOptions } from 'etcd3';
import { MasterClient } from '../src/client/master-client.ts';
import { freePort } from '../src/cli/local.ts';
import type { JournalStatus } from '../src/journal/journal.ts';

const mainScript = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
/** How long a process gets to exit after SIGTERM before it is killed. */
const stopGraceMs = 5_000;
const pollMs = 20;

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `cond` until it holds; fails with `what` and optional context once `deadlineMs` passes. */
export async function waitFor(cond: () => Promise<boolean> | boolean, what: string, deadlineMs: number, context?: () => Promise<string>): Promise<void> {
  const start = Date.now();
  while (!(await cond())) {
    if (Date.now() - start > deadlineMs) {
      const extra = context === undefined ? '' : `\n${await context()}`;
      throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}${extra}`);
    }
    await sleep(pollMs);
  }
}

// ---- processes ---------------------------------------------------------------------------------

/** Child processes and one temporary directory, all owned here: close() stops each by PID and removes the directory. */
export class ProcessGroup {
  readonly root: string;
  private readonly children = new Set<ChildProcess>();
  private closing: Promise<void> | undefined;
  private readonly onSignal = (sig: NodeJS.Signals): void => {
    void this.close().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  };

  private constructor(root: string) {
    this.root = root;
    process.once('SIGINT', this.onSignal);
    process.once('SIGTERM', this.onSignal);
  }

  static async create(prefix: string): Promise<ProcessGroup> {
    return new ProcessGroup(await mkdtemp(path.join(tmpdir(), `${prefix}-`)));
  }

  /** Starts `command` with stdout and stderr appended to `logFile`. */
  spawn(command: string, args: string[], logFile: string, env: Record<string, string> = {}): ChildProcess {
    const fd = openSync(logFile, 'a');
    try {
      const child = spawn(command, args, { stdio: ['ignore', fd, fd], env: { ...process.env, ...env } });
      if (child.pid === undefined) throw new Error(`could not start ${command}; see ${logFile}`);
      this.children.add(child);
      child.once('exit', () => this.children.delete(child));
      return child;
    } finally {
      closeSync(fd);
    }
  }

  /** Sends `signal` to the child's PID and waits for it to exit; kill -9 by default. */
  async stop(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL', graceMs = stopGraceMs): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    process.kill(child.pid!, signal);
    if (signal === 'SIGKILL') return exited;
    const timer = setTimeout(() => {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL');
    }, graceMs);
    await exited;
    clearTimeout(timer);
  }

  /** Stops every child still running (SIGTERM, then SIGKILL after a grace period) and removes the directory. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      process.off('SIGINT', this.onSignal);
      process.off('SIGTERM', this.onSignal);
      await Promise.all([...this.children].map((c) => this.stop(c, 'SIGTERM')));
      await rm(this.root, { recursive: true, force: true });
    })();
    return this.closing;
  }
}

async function logTail(file: string, lines: number): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return `--- ${file} ---\n${text.trimEnd().split('\n').slice(-lines).join('\n')}`;
}

// ---- cairn masters -----------------------------------------------------------------------------

export interface MasterProc {
  id: number;
  address: string;
  dir: string;
  log: string;
  child: ChildProcess | undefined;
}

export interface MastersOptions {
  count: number;
  /** Extra node flags for master `id`, e.g. ['--cpu-prof', '--cpu-prof-dir', dir]. */
  nodeArgs?: (id: number) => string[];
}

/** cairn masters as child processes (`cairn master`), each with its own directory and log file. */
export class CairnMasters {
  readonly secret = 'bench-secret';
  readonly masters = new Map<number, MasterProc>();
  private readonly procs: ProcessGroup;
  private readonly nodeArgs: (id: number) => string[];
  private peers = '';
  private readonly clients: MasterClient[] = [];
  private admin: MasterClient | undefined;

  private constructor(procs: ProcessGroup, nodeArgs: (id: number) => string[]) {
    this.procs = procs;
    this.nodeArgs = nodeArgs;
  }

  static async start(procs: ProcessGroup, opts: MastersOptions): Promise<CairnMasters> {
    const c = new CairnMasters(procs, opts.nodeArgs ?? (() => []));
    const addresses: string[] = [];
    for (let i = 0; i < opts.count; i++) addresses.push(`127.0.0.1:${await freePort()}`);
    c.peers = addresses.map((a, i) => `${i + 1}=${a}`).join(',');
    for (let i = 0; i < opts.count; i++) {
      const id = i + 1;
      const dir = path.join(procs.root, `master-${id}`);
      c.masters.set(id, { id, address: addresses[i], dir, log: path.join(procs.root, `master-${id}.log`), child: undefined });
      c.spawn(id);
    }
    await c.waitForLeader();
    return c;
  }

  addresses(): string[] {
    return [...this.masters.values()].map((m) => m.address);
  }

  /** PIDs of the running masters by name (master-N), for CPU accounting. */
  pids(): Record<string, number> {
    return Object.fromEntries([...this.masters.values()].filter((m) => m.child?.pid !== undefined).map((m) => [`master-${m.id}`, m.child!.pid!]));
  }

  spawn(id: number): void {
    const m = this.master(id);
    const args = [...this.nodeArgs(id), mainScript, 'master', '--id', String(id), '--dir', m.dir, '--listen', m.address, '--peers', this.peers];
    m.child = this.procs.spawn(process.execPath, args, m.log, { CAIRN_SECRET: this.secret });
  }

  /** kill -9 by PID: nothing is flushed. */
  async kill(id: number): Promise<void> {
    const m = this.master(id);
    if (m.child !== undefined) await this.procs.stop(m.child, 'SIGKILL');
    m.child = undefined;
  }

  /** SIGTERM to every master: they exit cleanly (and write their CPU profiles, if asked to). */
  async stopAll(): Promise<void> {
    this.closeClients();
    for (const m of this.masters.values()) {
      if (m.child !== undefined) await this.procs.stop(m.child, 'SIGTERM');
      m.child = undefined;
    }
  }

  /** A client with its own client id: one outstanding mutation per client, so one per concurrent caller. */
  client(opts: { deadlineMs?: number; callTimeoutMs?: number } = {}): MasterClient {
    const c = new MasterClient({ masters: this.addresses(), secret: this.secret, deadlineMs: opts.deadlineMs ?? 30_000, callTimeoutMs: opts.callTimeoutMs ?? 5_000 });
    this.clients.push(c);
    return c;
  }

  async status(id: number): Promise<JournalStatus | undefined> {
    try {
      return await this.adminClient().callAt<JournalStatus>(this.master(id).address, 'admin.journal.info', {});
    } catch {
      return undefined;
    }
  }

  async leaderId(): Promise<number | undefined> {
    for (const m of this.masters.values()) {
      if (m.child === undefined) continue;
      const st = await this.status(m.id);
      if (st?.role === 'leader') return m.id;
    }
    return undefined;
  }

  async waitForLeader(exclude?: number, deadlineMs = 30_000): Promise<number> {
    let leader: number | undefined;
    await waitFor(async () => {
      leader = await this.leaderId();
      return leader !== undefined && leader !== exclude;
    }, 'a cairn leader', deadlineMs, () => this.logTails());
    return leader!;
  }

  /** Waits until master `id` has applied everything the leader had committed when the wait began. */
  async waitCaughtUp(id: number, deadlineMs = 60_000): Promise<void> {
    const leader = await this.waitForLeader(undefined, deadlineMs);
    const target = (await this.status(leader))?.commitIndex ?? 0;
    await waitFor(async () => ((await this.status(id))?.appliedIndex ?? -1) >= target, `master ${id} to apply index ${target}`, deadlineMs, () => this.logTails());
  }

  async logTails(lines = 20): Promise<string> {
    const tails = await Promise.all([...this.masters.values()].map((m) => logTail(m.log, lines)));
    return tails.join('\n');
  }

  /** The journal's role changes logged since `sinceMs` (wall clock), in time order: the story of an election. */
  async roleChangesSince(sinceMs: number, max = 20): Promise<string[]> {
    const found: { at: number; line: string }[] = [];
    for (const m of this.masters.values()) {
      const text = await readFile(m.log, 'utf8').catch(() => '');
      for (const line of text.split('\n')) {
        if (!line.includes('"msg":"role ')) continue;
        let rec: { time?: string; msg?: string; term?: number };
        try {
          rec = JSON.parse(line) as typeof rec;
        } catch {
          continue;
        }
        const at = Date.parse(rec.time ?? '');
        if (at >= sinceMs) found.push({ at, line: `+${at - sinceMs} ms master-${m.id} term ${rec.term}: ${rec.msg}` });
      }
    }
    return found.sort((a, b) => a.at - b.at).slice(0, max).map((f) => f.line);
  }

  closeClients(): void {
    for (const c of this.clients) c.close();
    this.clients.length = 0;
    this.admin?.close();
    this.admin = undefined;
  }

  private master(id: number): MasterProc {
    const m = this.masters.get(id);
    if (m === undefined) throw new Error(`no master ${id}`);
    return m;
  }

  private adminClient(): MasterClient {
    this.admin ??= new MasterClient({ masters: this.addresses(), secret: this.secret, callTimeoutMs: 1_000 });
    return this.admin;
  }
}

// ---- etcd (the anchor) -------------------------------------------------------------------------

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

  async waitForLeader(exclude?: string, deadlineMs = 30_000): Promise<string> {
    let leader: string | undefined;
    await waitFor(async () => {
      leader = await this.leaderName();
      return leader !== undefined && leader !== exclude;
    }, 'an etcd leader', deadlineMs, () => this.logTails());
    return leader!;
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
    const tails = await Promise.all([...this.members.values()].map((m) => logTail(m.log, lines)));
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
 * Runs `op` on `workers` concurrent workers: `warmupSeconds` unmeasured, then `seconds` measured.
 * Operations still in flight when the window closes complete, but do not count. `pids` names the
 * processes whose CPU use over the window is reported (this one is always included as 'bench').
 */
export async function measureLoad(workers: number, seconds: number, warmupSeconds: number, op: Operation, pids: Record<string, number> = {}): Promise<LoadResult> {
  const load = new Load(workers, op);
  await sleep(warmupSeconds * 1000);
  const from = performance.now();
  const fromUs = monotonicUs();
  const errorsBefore = load.errors;
  const firstIndex = load.doneAtMs.length;
  const cpuBefore = cpuSnapshot(pids);
  await sleep(seconds * 1000);
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

interface MachineCpu {
  /** User and system time of every process. */
  processes: number;
  /** Hard and soft interrupts (loopback TCP is mostly softirq), charged to no process. */
  interrupts: number;
  /** Time the hypervisor gave to someone else while this machine wanted to run. */
  steal: number;
}

/** CPU seconds of the whole machine since boot, from /proc/stat (Linux). */
function machineBusySeconds(): MachineCpu | undefined {
  try {
    clockTicksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal (guest time is already inside user)
    const t = clockTicksPerSecond;
    return { processes: (cpu[0] + cpu[1] + cpu[2]) / t, interrupts: (cpu[5] + cpu[6]) / t, steal: cpu[7] / t };
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

// Real cairn masters as child processes on 127.0.0.1, for the process tests (through harness.ts)
// and the benchmarks (bench/): a process group that owns its children and temporary directory, free
// ports from the OS, a directory and log file per master, kill -9 and restart by PID, and waits on
// conditions with deadlines (never fixed sleeps). No node:test here, so the benchmarks can use it.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { MasterClient } from '../../src/client/master-client.ts';
import { rootCaller } from '../../src/meta/commands.ts';
import { freePort } from '../../src/cli/local.ts';
import type { JournalStatus } from '../../src/journal/journal.ts';

export const mainScript = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
/** How long a process gets to exit after SIGTERM before it is killed. */
const stopGraceMs = 5_000;
/** Tries at starting a cluster whose ports another process took first. */
const startAttemptsMax = 3;
/** How long a starting cluster is watched for a master that exits (a port taken, a bad flag). */
const startupWatchMs = 10_000;
/** How often waitFor checks again; the failover times bench/journal.ts reports resolve to this. */
const pollMs = 20;

/** Runs the `cairn` CLI as a user would: its output and exit status; a failing command does not throw. */
export async function runCairn(args: string[], env: Record<string, string> = {}, timeoutMs = 60_000): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const r = await promisify(execFile)(process.execPath, [mainScript, ...args], { env: { ...process.env, ...env }, timeout: timeoutMs });
    return { stdout: r.stdout, stderr: r.stderr, code: 0 };
  } catch (err) {
    const e = err as { stdout: string; stderr: string; code: number };
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
}

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

/** Polls `find` until it names a leader other than `exclude`, and returns it. */
export async function waitForLeaderOf<T>(find: () => Promise<T | undefined>, exclude: T | undefined, what: string, deadlineMs: number, context: () => Promise<string>): Promise<T> {
  let leader: T | undefined;
  await waitFor(async () => {
    leader = await find();
    return leader !== undefined && leader !== exclude;
  }, what, deadlineMs, context);
  return leader!;
}

/** Whether a process with this PID exists (signal 0 checks without sending anything). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The last `lines` lines of a log file under a heading naming `title`. */
export async function logTail(title: string, file: string, lines: number): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return `--- ${title} (${file}) ---\n${text.trimEnd().split('\n').slice(-lines).join('\n')}`;
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

  /**
   * Stops every child still running and removes the directory. SIGTERM (then SIGKILL after a grace
   * period) lets them exit cleanly; SIGKILL is for callers with no use for a clean exit.
   */
  close(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    this.closing ??= (async () => {
      process.off('SIGINT', this.onSignal);
      process.off('SIGTERM', this.onSignal);
      await Promise.all([...this.children].map((c) => this.stop(c, signal)));
      await rm(this.root, { recursive: true, force: true });
    })();
    return this.closing;
  }
}

// ---- cairn masters -----------------------------------------------------------------------------

export interface MasterProc {
  id: number;
  address: string;
  dir: string;
  log: string;
  child: ChildProcess | undefined;
  /** Started with `--join` (added to the group later) rather than `--peers`. */
  join: boolean;
}

export interface MasterClusterOptions {
  count: number;
  /** Environment for every master, e.g. checkpoint settings. */
  env?: Record<string, string>;
  /** Extra node flags for master `id`, e.g. ['--cpu-prof', '--cpu-prof-dir', dir]. */
  nodeArgs?: (id: number) => string[];
  /** Default deadline of client() calls and of the waits for a leader and for convergence; 30 s if not given. */
  deadlineMs?: number;
  /** Run on the ZooKeeper journal at this ensemble, under this cluster id; the Raft journal when absent. */
  zookeeper?: { connect: string; clusterId: string };
  /** Where each process runs: 127.0.0.1 of this namespace when absent. */
  placement?: Placement;
}

/** Hosts of their own for the processes (network namespaces, test/chaos/netlab.ts). */
export interface Placement {
  /** The IP a process listens on. */
  host(kind: 'master' | 'worker', id: number): string;
  /** The command prefix that starts a program on its host, e.g. ['ip', 'netns', 'exec', NS]. */
  prefix(kind: 'master' | 'worker', id: number): string[];
}

/** A master's port on a host of its own: no other process there to clash with. */
const placedMasterPort = 7000;

/** cairn masters as child processes (`cairn master`) of a ProcessGroup, each with its own directory and log file under the group's root. */
export class MasterCluster {
  /** Its own secret: a client that reached another test's master by a reused port is refused, not answered. */
  readonly secret = randomBytes(16).toString('hex');
  readonly masters = new Map<number, MasterProc>();
  private readonly procs: ProcessGroup;
  private readonly env: Record<string, string>;
  private readonly nodeArgs: (id: number) => string[];
  private readonly deadlineMs: number;
  readonly zookeeper: { connect: string; clusterId: string } | undefined;
  readonly placement: Placement | undefined;
  private peers = '';
  private readonly clients: MasterClient[] = [];
  private admin: MasterClient | undefined;

  private constructor(procs: ProcessGroup, opts: MasterClusterOptions) {
    this.procs = procs;
    this.env = opts.env ?? {};
    this.nodeArgs = opts.nodeArgs ?? (() => []);
    this.deadlineMs = opts.deadlineMs ?? 30_000;
    this.zookeeper = opts.zookeeper;
    this.placement = opts.placement;
  }

  /**
   * Starts `opts.count` masters that know each other (`--peers`) and waits for a leader. A free
   * port can be taken by another process before a master binds it (tests run in parallel): then
   * the whole cluster starts again on new ports and fresh directories.
   */
  static async start(procs: ProcessGroup, opts: MasterClusterOptions): Promise<MasterCluster> {
    const c = new MasterCluster(procs, opts);
    for (let attempt = 1; ; attempt++) {
      const addresses: string[] = [];
      for (let i = 0; i < opts.count; i++) addresses.push(await c.newAddress(i + 1));
      c.peers = addresses.map((a, i) => `${i + 1}=${a}`).join(',');
      for (let i = 0; i < opts.count; i++) {
        c.masters.set(i + 1, c.newMaster(i + 1, addresses[i], false));
        c.spawn(i + 1);
      }
      const lost = await c.firstToDie(startupWatchMs);
      if (lost === undefined) break;
      const why = (await readFile(c.master(lost).log, 'utf8').catch(() => '')).trim().split('\n').at(-1) ?? '';
      if (attempt >= startAttemptsMax) throw new Error(`master ${lost} exited while the cluster started (attempt ${attempt}): ${why}`);
      for (const id of c.masters.keys()) await c.kill(id);
      for (const m of c.masters.values()) await rm(m.dir, { recursive: true, force: true });
      c.masters.clear();
      c.admin?.close();
      c.admin = undefined;
    }
    await c.waitForLeader();
    return c;
  }

  /** The first master whose process exits within `ms`, or undefined once all are still up and serving. */
  private async firstToDie(ms: number): Promise<number | undefined> {
    const deadline = Date.now() + ms;
    while (true) {
      for (const m of this.masters.values()) if (m.child !== undefined && (m.child.exitCode !== null || m.child.signalCode !== null)) return m.id;
      if (Date.now() > deadline) return undefined;
      const up = await Promise.all([...this.masters.values()].map((m) => this.adminClient().callAt(m.address, 'master.ping', {}).then(() => true, () => false)));
      if (up.every((u) => u)) return undefined;
      await sleep(pollMs);
    }
  }

  /** Adds a master process that joins later (`cairn master --join`); the caller adds it to the group. */
  async addJoiner(id: number): Promise<MasterProc> {
    const m = this.newMaster(id, await this.newAddress(id), true);
    this.masters.set(id, m);
    this.spawn(id);
    return m;
  }

  addresses(): string[] {
    return [...this.masters.values()].map((m) => m.address);
  }

  /** PIDs of the running masters by name (master-N), for CPU accounting. */
  pids(): Record<string, number> {
    return Object.fromEntries([...this.masters.values()].filter((m) => m.child?.pid !== undefined).map((m) => [`master-${m.id}`, m.child!.pid!]));
  }

  /** Starts (or restarts, on its existing directory) master `id`. */
  spawn(id: number): void {
    const m = this.master(id);
    const args = [...this.nodeArgs(id), mainScript, 'master', '--id', String(id), '--dir', m.dir, '--listen', m.address];
    if (this.zookeeper !== undefined) args.push('--journal', 'zookeeper', '--zk', this.zookeeper.connect, '--zk-cluster', this.zookeeper.clusterId);
    else if (m.join) args.push('--join');
    else args.push('--peers', this.peers);
    const prefix = this.placement?.prefix('master', id) ?? [];
    m.child = prefix.length === 0 ? this.procs.spawn(process.execPath, args, m.log, { CAIRN_SECRET: this.secret, ...this.env }) : this.procs.spawn(prefix[0], [...prefix.slice(1), process.execPath, ...args], m.log, { CAIRN_SECRET: this.secret, ...this.env });
  }

  private async newAddress(id: number): Promise<string> {
    return this.placement === undefined ? `127.0.0.1:${await freePort()}` : `${this.placement.host('master', id)}:${placedMasterPort}`;
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
    const c = new MasterClient({ masters: this.addresses(), secret: this.secret, deadlineMs: opts.deadlineMs ?? this.deadlineMs, callTimeoutMs: opts.callTimeoutMs ?? 5_000, caller: rootCaller });
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

  waitForLeader(exclude?: number, deadlineMs = this.deadlineMs): Promise<number> {
    return waitForLeaderOf(() => this.leaderId(), exclude, 'a cairn leader', deadlineMs, () => this.logTails());
  }

  /** Waits until master `id` has applied everything the leader had committed when the wait began. */
  async waitCaughtUp(id: number, deadlineMs = 60_000): Promise<void> {
    const leader = await this.waitForLeader(undefined, deadlineMs);
    const target = (await this.status(leader))?.commitIndex ?? 0;
    await waitFor(async () => ((await this.status(id))?.appliedIndex ?? -1) >= target, `master ${id} to apply index ${target}`, deadlineMs, () => this.logTails());
  }

  async stateHash(id: number): Promise<{ hash: string; applied: number }> {
    return this.adminClient().callAt(this.master(id).address, 'admin.stateHash', {});
  }

  /**
   * Waits until every running master reports the same state hash at the same applied index, with
   * nothing in its log left to apply. Without that last condition, masters that restarted together
   * from the same checkpoint agree on a state they have not yet caught up from.
   */
  async waitConverged(deadlineMs = this.deadlineMs): Promise<string> {
    let hash = '';
    await waitFor(async () => {
      const running = [...this.masters.values()].filter((m) => m.child !== undefined);
      const hashes = await Promise.all(running.map((m) => this.caughtUpStateHash(m.id)));
      if (hashes.some((h) => h === undefined)) return false;
      const first = hashes[0]!;
      hash = first.hash;
      return hashes.every((h) => h!.hash === first.hash && h!.applied === first.applied);
    }, 'all masters to converge on one state hash', deadlineMs, async () => `${await this.journalViews()}\n${await this.logTails()}`);
    return hash;
  }

  /** What each running master says of its state and journal, or why it does not answer: for failure reports. */
  async journalViews(): Promise<string> {
    const lines: string[] = [];
    for (const m of this.masters.values()) {
      if (m.child === undefined) continue;
      const h = await this.stateHash(m.id).then((v) => JSON.stringify(v), (e: unknown) => `no state hash: ${(e as Error).message}`);
      const st = await this.status(m.id);
      lines.push(`--- master ${m.id} now: ${h}; journal ${st === undefined ? 'does not answer' : JSON.stringify(st)}`);
    }
    return lines.join('\n');
  }

  /** Master `id`'s state hash, or undefined while it does not answer or its log holds entries beyond the hashed state. */
  private async caughtUpStateHash(id: number): Promise<{ hash: string; applied: number } | undefined> {
    const h = await this.stateHash(id).catch(() => undefined);
    if (h === undefined) return undefined;
    const st = await this.status(id);
    return st !== undefined && st.lastIndex <= h.applied ? h : undefined;
  }

  async logTails(lines = 30): Promise<string> {
    const tails = await Promise.all([...this.masters.values()].map((m) => logTail(`master ${m.id}`, m.log, lines)));
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

  private newMaster(id: number, address: string, join: boolean): MasterProc {
    const root = this.procs.root;
    return { id, address, dir: path.join(root, `master-${id}`), log: path.join(root, `master-${id}.log`), child: undefined, join };
  }

  private master(id: number): MasterProc {
    const m = this.masters.get(id);
    if (m === undefined) throw new Error(`no master ${id}`);
    return m;
  }

  private adminClient(): MasterClient {
    this.admin ??= new MasterClient({ masters: this.addresses(), secret: this.secret, callTimeoutMs: 1_000, caller: rootCaller });
    return this.admin;
  }
}

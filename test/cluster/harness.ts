// Real masters as child processes on 127.0.0.1 for process tests: free ports from the OS, a fresh
// directory each, logs captured to files (their tails printed when a test fails), kill -9 and
// restart by PID, and waits on conditions with deadlines (never fixed sleeps).

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { closeSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { MasterClient } from '../../src/client/master-client.ts';
import { freePort } from '../../src/cli/local.ts';
import type { JournalStatus } from '../../src/journal/journal.ts';

const mainScript = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

export interface MasterProc {
  id: number;
  address: string;
  dir: string;
  log: string;
  child: ChildProcess | undefined;
  join: boolean;
}

export interface ClusterOptions {
  masters: number;
  /** Extra flags for every master, e.g. checkpoint settings. */
  env?: Record<string, string>;
}

export class TestCluster {
  readonly root: string;
  readonly secret = 'test-secret';
  readonly masters = new Map<number, MasterProc>();
  private peers = '';
  private readonly env: Record<string, string>;
  private readonly clients: MasterClient[] = [];

  private constructor(root: string, env: Record<string, string>) {
    this.root = root;
    this.env = env;
  }

  static async start(t: TestContext, opts: ClusterOptions): Promise<TestCluster> {
    const root = await mkdtemp(path.join(tmpdir(), 'cairn-cluster-'));
    const c = new TestCluster(root, opts.env ?? {});
    t.after(() => c.shutdown(t));
    const addresses: string[] = [];
    for (let i = 0; i < opts.masters; i++) addresses.push(`127.0.0.1:${await freePort()}`);
    c.peers = addresses.map((a, i) => `${i + 1}=${a}`).join(',');
    for (let i = 0; i < opts.masters; i++) {
      const id = i + 1;
      c.masters.set(id, { id, address: addresses[i], dir: path.join(root, `master-${id}`), log: path.join(root, `master-${id}.log`), child: undefined, join: false });
      c.spawn(id);
    }
    await c.waitForLeader();
    return c;
  }

  /** Adds a master process that joins later (`cairn master --join`); the caller adds it to the group. */
  async addJoiner(id: number): Promise<MasterProc> {
    const m: MasterProc = { id, address: `127.0.0.1:${await freePort()}`, dir: path.join(this.root, `master-${id}`), log: path.join(this.root, `master-${id}.log`), child: undefined, join: true };
    this.masters.set(id, m);
    this.spawn(id);
    return m;
  }

  spawn(id: number): void {
    const m = this.masters.get(id)!;
    const args = [mainScript, 'master', '--id', String(id), '--dir', m.dir, '--listen', m.address];
    if (m.join) args.push('--join');
    else args.push('--peers', this.peers);
    const fd = openSync(m.log, 'a');
    try {
      m.child = spawn(process.execPath, args, { stdio: ['ignore', fd, fd], env: { ...process.env, CAIRN_SECRET: this.secret, ...this.env } });
    } finally {
      closeSync(fd);
    }
  }

  /** kill -9: no chance to flush anything. */
  async kill(id: number): Promise<void> {
    const m = this.masters.get(id)!;
    const child = m.child;
    if (child === undefined || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    m.child = undefined;
  }

  client(opts: { deadlineMs?: number } = {}): MasterClient {
    const c = new MasterClient({ masters: [...this.masters.values()].map((m) => m.address), secret: this.secret, deadlineMs: opts.deadlineMs ?? 20_000 });
    this.clients.push(c);
    return c;
  }

  async status(id: number): Promise<JournalStatus | undefined> {
    const c = this.adminClient();
    try {
      return await c.callAt<JournalStatus>(this.masters.get(id)!.address, 'admin.journal.info', {});
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

  async waitForLeader(exclude?: number): Promise<number> {
    let leader: number | undefined;
    await waitFor(async () => {
      leader = await this.leaderId();
      return leader !== undefined && leader !== exclude;
    }, 'a leader', 20_000, () => this.logTails());
    return leader!;
  }

  async stateHash(id: number): Promise<{ hash: string; applied: number }> {
    return this.adminClient().callAt(this.masters.get(id)!.address, 'admin.stateHash', {});
  }

  /** Waits until every running master reports the same state hash at the same applied index. */
  async waitConverged(deadlineMs = 20_000): Promise<string> {
    let hash = '';
    await waitFor(async () => {
      const hashes = await Promise.all([...this.masters.values()].filter((m) => m.child !== undefined).map((m) => this.stateHash(m.id).catch(() => undefined)));
      if (hashes.some((h) => h === undefined)) return false;
      const first = hashes[0]!;
      hash = first.hash;
      return hashes.every((h) => h!.hash === first.hash && h!.applied === first.applied);
    }, 'all masters to converge on one state hash', deadlineMs, () => this.logTails());
    return hash;
  }

  private admin: MasterClient | undefined;
  private adminClient(): MasterClient {
    this.admin ??= new MasterClient({ masters: [...this.masters.values()].map((m) => m.address), secret: this.secret, callTimeoutMs: 1_000 });
    return this.admin;
  }

  async logTails(lines = 30): Promise<string> {
    const out: string[] = [];
    for (const m of this.masters.values()) {
      const text = await readFile(m.log, 'utf8').catch(() => '');
      out.push(`--- master ${m.id} (${m.log}) ---`, ...text.trimEnd().split('\n').slice(-lines));
    }
    return out.join('\n');
  }

  private async shutdown(t: TestContext): Promise<void> {
    for (const c of this.clients) c.close();
    this.admin?.close();
    const failed = (t as unknown as { passed?: boolean }).passed === false;
    if (failed) console.error(await this.logTails());
    for (const m of this.masters.values()) await this.kill(m.id);
    await rm(this.root, { recursive: true, force: true });
  }
}

export async function waitFor(cond: () => Promise<boolean> | boolean, what: string, deadlineMs: number, context?: () => Promise<string>): Promise<void> {
  const start = Date.now();
  while (!(await cond())) {
    if (Date.now() - start > deadlineMs) {
      const extra = context !== undefined ? `\n${await context()}` : '';
      throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}${extra}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

// ZooKeeper for the journal benchmark: a 3-server ensemble started and stopped by the benchmark
// (killed by PID even on Ctrl-C), raw ZooKeeper creates as the anchor the ZooKeeper journal is
// held to, and the accounting of session expiries: each one must be explained by a kill.

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import zookeeper from 'node-zookeeper-client';
import { fourLetterWord, initLimitTicks, maxSessionTimeoutMs, startEnsemble, syncLimitTicks, tickMs, type Ensemble } from '../../src/journal/zookeeper/ensemble.ts';

/** Anyone may do anything: the throwaway chroot of the raw creates. */
const openAcl = [new zookeeper.ACL(zookeeper.Permission.ALL, new zookeeper.Id('world', 'anyone'))];
/** How long a raw client gets to connect. */
const connectDeadlineMs = 10_000;

export const ensembleServers = 3;

export function ensembleSettings(): string {
  return `${ensembleServers} servers (Debian zookeeper 3.8, one JVM each, src/journal/zookeeper/ensemble.ts): tickTime ${tickMs} ms, initLimit ${initLimitTicks} ticks, syncLimit ${syncLimitTicks} ticks, maxSessionTimeout ${maxSessionTimeoutMs} ms, forceSync=yes, -Xmx256m -XX:+UseSerialGC`;
}

/**
 * Starts an ensemble under `dir`. Until stop(), SIGINT and SIGTERM kill its JVMs at once (by PID):
 * the process group's own handler then stops the masters and exits.
 */
export async function startBenchEnsemble(dir: string): Promise<{ ensemble: Ensemble; stop(): Promise<void> }> {
  const ensemble = await startEnsemble({ dir, servers: ensembleServers });
  const onSignal = (): void => void ensemble.stop(0).catch(() => undefined);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    ensemble,
    stop: async () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await ensemble.stop();
    },
  };
}

/** PIDs of the ensemble's JVMs by name (zk-N), for CPU and disk accounting. */
export function ensemblePids(ensemble: Ensemble): Record<string, number> {
  return Object.fromEntries(ensemble.servers.map((s) => [`zk-${s.id}`, s.pid]));
}

/** mntr counters summed over the servers: requests and replies, bytes, fsyncs of the transaction log. */
const summedCounters = ['zk_packets_received', 'zk_packets_sent', 'zk_bytes_received_count', 'zk_cnt_fsynctime', 'zk_sum_fsynctime'];

/**
 * The ensemble's counters now (mntr of every server): summedCounters added up, and from the
 * leader its commits (`leader_commits`: transactions) and the znode count.
 */
export async function ensembleCounters(ensemble: Ensemble): Promise<Record<string, number>> {
  const out: Record<string, number> = Object.fromEntries(summedCounters.map((k) => [k, 0]));
  // All servers at once, so that the counters are of one moment as nearly as can be.
  const replies = await Promise.all(ensemble.servers.map((s) => fourLetterWord(s.clientPort, 'mntr')));
  for (const reply of replies) {
    const values = new Map(
      reply
        .split('\n')
        .map((l) => l.split('\t'))
        .filter((f): f is [string, string] => f.length === 2),
    );
    for (const k of summedCounters) out[k] += Number(values.get(k) ?? NaN);
    if (values.get('zk_server_state') === 'leader') {
      out.leader_commits = Number(values.get('zk_commit_count'));
      out.znodes = Number(values.get('zk_znode_count'));
    }
  }
  return out;
}

// ---- raw creates ---------------------------------------------------------------------------------

function connectClient(connect: string, sessionTimeoutMs: number): Promise<zookeeper.Client> {
  const client = zookeeper.createClient(connect, { sessionTimeout: sessionTimeoutMs, spinDelay: 200, retries: 0 });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.close();
      reject(new Error(`no ZooKeeper server of ${connect} answered within ${connectDeadlineMs} ms`));
    }, connectDeadlineMs);
    client.once('connected', () => {
      clearTimeout(timer);
      resolve(client);
    });
    client.connect();
  });
}

function createNode(client: zookeeper.Client, p: string, data: Buffer, mode: number): Promise<string> {
  return new Promise((resolve, reject) => client.create(p, data, openAcl, mode, (err, created) => (err ? reject(err) : resolve(created))));
}

/**
 * Plain ZooKeeper creates of PERSISTENT_SEQUENTIAL znodes under a throwaway chroot, through
 * `sessions` sessions of node-zookeeper-client (each connected to a server of its own choosing);
 * writer w uses session w mod `sessions`.
 */
export class RawCreates {
  readonly chroot: string;
  readonly sessionIds: string[];
  private readonly clients: zookeeper.Client[];
  private readonly data: Buffer;

  private constructor(chroot: string, clients: zookeeper.Client[], dataBytes: number) {
    this.chroot = chroot;
    this.clients = clients;
    this.sessionIds = clients.map((c) => sessionHex(c.getSessionId()));
    this.data = randomBytes(dataBytes);
  }

  static async open(connect: string, sessions: number, sessionTimeoutMs: number, dataBytes: number): Promise<RawCreates> {
    const chroot = `/bench-raw-${randomBytes(6).toString('hex')}`;
    const setup = await connectClient(connect, sessionTimeoutMs);
    try {
      await createNode(setup, chroot, Buffer.alloc(0), zookeeper.CreateMode.PERSISTENT);
    } finally {
      setup.close();
    }
    const clients: zookeeper.Client[] = [];
    try {
      for (let i = 0; i < sessions; i++) clients.push(await connectClient(`${connect}${chroot}`, sessionTimeoutMs));
    } catch (err) {
      for (const c of clients) c.close();
      throw err;
    }
    return new RawCreates(chroot, clients, dataBytes);
  }

  readonly op = (worker: number): Promise<unknown> => createNode(this.clients[worker % this.clients.length], '/c-', this.data, zookeeper.CreateMode.PERSISTENT_SEQUENTIAL);

  /** Closes every session (a close, not an expiry: the server logs no 'Expiring session' for these). */
  close(): void {
    for (const c of this.clients) c.close();
  }
}

/** A session id as ZooKeeper's server logs it: hex without leading zeros. */
export function sessionHex(id: Buffer | string): string {
  const hex = typeof id === 'string' ? id.replace(/^0x/, '') : id.toString('hex');
  return BigInt(`0x${hex}`).toString(16);
}

// ---- session expiries -----------------------------------------------------------------------------

interface LogLine {
  atMs: number;
  pid: number;
  msg: string;
}

function masterLogLines(file: string): LogLine[] {
  const out: LogLine[] = [];
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return out;
  }
  for (const line of text.split('\n')) {
    if (!line.includes('zookeeper')) continue;
    try {
      const rec = JSON.parse(line) as { time?: string; pid?: number; msg?: string };
      if (typeof rec.msg === 'string' && typeof rec.pid === 'number') out.push({ atMs: Date.parse(rec.time ?? ''), pid: rec.pid, msg: rec.msg });
    } catch {
      // not a log record (a stack trace, a line of the runtime): not ours to count
    }
  }
  return out;
}

/** log4j's ISO8601 stamp `2026-11-30 10:13:17,123`, in local time. */
function zkLogTime(line: string): number {
  const m = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}),(\d{3})/.exec(line);
  return m === null ? NaN : Date.parse(`${m[1]}T${m[2]}.${m[3]}`);
}

export interface Expiry {
  session: string;
  atMs: number;
  /** Who held the session: `master-N pid P`, `raw client`, or `unknown`. */
  holder: string;
  /** Seen by the server (its 'Expiring session' line) or by the master (its 'zookeeper session expired' line). */
  seenBy: 'server' | 'master';
  explained: boolean;
}

/**
 * Every session of the masters and of the raw clients, and which master processes the benchmark
 * killed: an expiry of a killed process's session is explained, any other is spurious. A master
 * logs 'zookeeper session expired' only while it runs, so every such line is spurious.
 */
export class SessionLedger {
  private readonly killedPids = new Set<number>();
  private readonly rawSessions = new Set<string>();
  /** Sessions the masters reported (admin.journal.info): a master killed while still starting has not logged its own yet. */
  private readonly reported = new Map<string, { master: string; pid: number }>();

  /** Call just before SIGKILL (synchronously with it). */
  killed(pid: number | undefined): void {
    if (pid !== undefined) this.killedPids.add(pid);
  }

  /** A master's current session, as its status reports it. */
  session(master: string, pid: number, sessionId: string): void {
    this.reported.set(sessionHex(sessionId), { master, pid });
  }

  raw(sessionIds: string[]): void {
    for (const s of sessionIds) this.rawSessions.add(sessionHex(s));
  }

  /** Reads the masters' logs (name to file) and the servers' logs. */
  expiries(masterLogs: Record<string, string>, serverLogs: string[]): Expiry[] {
    const owner = new Map(this.reported);
    const out: Expiry[] = [];
    for (const [master, file] of Object.entries(masterLogs)) {
      // A master that never logged its session (still starting) may have reported it in its status.
      const lastSession = new Map<number, string>([...this.reported].map(([session, o]) => [o.pid, session]));
      for (const l of masterLogLines(file)) {
        const opened = /^zookeeper journal: session ([0-9a-f]+) on /.exec(l.msg);
        if (opened !== null) {
          const s = sessionHex(opened[1]);
          owner.set(s, { master, pid: l.pid });
          lastSession.set(l.pid, s);
        } else if (l.msg.includes('zookeeper session expired')) {
          out.push({ session: lastSession.get(l.pid) ?? 'unknown', atMs: l.atMs, holder: `${master} pid ${l.pid}`, seenBy: 'master', explained: false });
        }
      }
    }
    const seen = new Set<string>();
    const texts = serverLogs.map((file) => {
      try {
        return readFileSync(file, 'utf8');
      } catch {
        return '';
      }
    });
    // Masters authenticate with the cluster secret (digest); the raw clients do not.
    const digest = new Set<string>();
    for (const text of texts) for (const m of text.matchAll(/Session 0x([0-9a-f]+): auth success for scheme digest/g)) digest.add(sessionHex(m[1]));
    for (const text of texts) {
      for (const line of text.split('\n')) {
        const m = /Expiring session 0x([0-9a-f]+)/.exec(line);
        if (m === null) continue;
        const session = sessionHex(m[1]);
        if (seen.has(session)) continue; // a leader change may log one twice
        seen.add(session);
        const o = owner.get(session);
        const holder = o !== undefined ? `${o.master} pid ${o.pid}` : this.rawSessions.has(session) ? 'raw client' : digest.has(session) ? 'a master (digest auth; its process never reported the session)' : 'unknown';
        out.push({ session, atMs: zkLogTime(line), holder, seenBy: 'server', explained: o !== undefined && this.killedPids.has(o.pid) });
      }
    }
    return out.sort((a, b) => a.atMs - b.atMs);
  }
}

/** Spurious expiries: sessions that expired with no kill to explain it, each counted once. */
export function spuriousSessions(expiries: Expiry[]): string[] {
  return [...new Set(expiries.filter((e) => !e.explained).map((e) => `${e.session} (${e.holder})`))];
}

/** The masters' ZooKeeper log lines and the servers' session expiries since `sinceMs`: the story of a failover. */
export function zkStory(masterLogs: Record<string, string>, serverLogs: string[], sinceMs: number, max = 20): string[] {
  const found: { at: number; line: string }[] = [];
  for (const [master, file] of Object.entries(masterLogs)) {
    for (const l of masterLogLines(file)) if (l.atMs >= sinceMs) found.push({ at: l.atMs, line: `+${l.atMs - sinceMs} ms ${master}: ${l.msg}` });
  }
  for (const [i, file] of serverLogs.entries()) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      const m = /(Expiring session 0x[0-9a-f]+, timeout of \d+ms exceeded)/.exec(line);
      const at = zkLogTime(line);
      if (m !== null && at >= sinceMs) found.push({ at, line: `+${at - sinceMs} ms ${path.basename(path.dirname(file)) || `zk-${i + 1}`}: ${m[1]}` });
    }
  }
  return found.sort((a, b) => a.at - b.at).slice(0, max).map((f) => f.line);
}

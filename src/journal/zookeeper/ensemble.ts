// A ZooKeeper ensemble on this machine (the Debian package's server, one JVM per server, 127.0.0.1
// only), for `cairn local up --journal zookeeper` and the tests: each server's directory, config and
// logs, free ports, start, kill, restart and stop by PID, and readiness through the `srvr` word.

import { dirMode, fileMode } from '../../io/node-disk.ts';
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, closeSync, constants, existsSync, mkdirSync, openSync, readFileSync, readSync, fstatSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CairnError, ErrorCode, assert } from '../../errors.ts';
import { freePort } from '../../free-port.ts';
import type { Logger } from '../../log.ts';

// ---- settings ------------------------------------------------------------------------------------
// Why each value: docs/zookeeper.md, 'Settings'.

/** ZooKeeper's unit of time. Every server is on loopback, so a tick far below the 2 s default costs nothing and makes session expiry fine-grained. */
export const tickMs = 500;
/** Ticks a follower has to connect to the leader and sync (10 s): three JVMs starting at once on 2 shared cores, with little data to copy. */
export const initLimitTicks = 20;
/**
 * Ticks a follower may fall behind or stay silent before it is dropped (5 s). A killed server is
 * seen at once (the kernel closes its sockets), so this only decides how long a stalled JVM (GC,
 * a starved CPU) is waited for, and waiting beats churning elections on a shared machine.
 */
export const syncLimitTicks = 10;
/** The longest session a client may ask for: it bounds how long a dead master keeps its ephemeral znodes. The shortest is 2 ticks (1 s). */
export const maxSessionTimeoutMs = 10_000;
/** Each JVM's heap: ZooKeeper holds its whole tree in memory, and a journal's tree stays small; three of these share the machine with cairn. */
export const heapMb = 256;
/** Connections one client address (all of them are 127.0.0.1 here) may hold per server: ZooKeeper's default, written out. */
export const clientConnectionsMax = 60;
/** Snapshots (and their transaction logs) kept; older ones are purged every hour, so a long-running ensemble's disk use stays bounded. */
export const snapshotsKept = 3;
/** One log4j file's size, and the rotated files kept beside it. */
const logFileMb = 10;
const logFilesKept = 3;

/** Servers in one ensemble: a quorum of 7 already survives 3 failures. */
export const serversMax = 7;
/** How long a start waits for its servers to serve. */
const startDeadlineMs = 30_000;
/** How long stop() waits after SIGTERM before SIGKILL. */
const stopGraceMs = 5_000;
/** How long a signalled server gets to disappear before kill() gives up. */
const exitDeadlineMs = 10_000;
/** Tries at starting a new ensemble whose ports another program took first. */
const startAttemptsMax = 3;
const pollMs = 100;
/** A four-letter word's answer is a few hundred bytes; more is not ZooKeeper. */
const wordReplyBytesMax = 64 * 1024;
const wordTimeoutMs = 1_000;
const logTailLines = 12;

// ---- installation -------------------------------------------------------------------------------

/** Where Debian's packages put their jars. */
export const debianJarDir = '/usr/share/java';
/**
 * The server jar (its manifest names the rest of its classpath) and a logging binding: the manifest
 * brings slf4j-api without one, and slf4j then drops every line. Both come with the zookeeper package.
 */
const jarNames = ['zookeeper.jar', 'slf4j-log4j12.jar', 'log4j-1.2.jar'];
const mainClass = 'org.apache.zookeeper.server.quorum.QuorumPeerMain';
export const installHint = "install it with 'apt-get install -y --no-install-recommends zookeeper' (it brings Java), or run 'bash scripts/install-system-packages.sh' as root";

export interface ZkInstall {
  java: string;
  classpath: string[];
}

/** Java and the ZooKeeper jars, or a CAIRN_NOT_INSTALLED error that says how to install them. */
export function findZooKeeper(opts: { jarDir?: string; searchPath?: string } = {}): ZkInstall {
  const jarDir = opts.jarDir ?? debianJarDir;
  const classpath = jarNames.map((j) => path.join(jarDir, j));
  const missing = classpath.filter((f) => !readable(f));
  if (missing.length > 0) throw new CairnError(ErrorCode.NotInstalled, `ZooKeeper is not installed (no ${missing.join(', ')}): ${installHint}`, { missing });
  const java = findExecutable('java', opts.searchPath ?? process.env.PATH ?? '');
  if (java === undefined) throw new CairnError(ErrorCode.NotInstalled, `Java is not installed (no 'java' on PATH): ${installHint}`, { missing: ['java'] });
  return { java, classpath };
}

function readable(file: string): boolean {
  try {
    accessSync(file, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

function findExecutable(name: string, searchPath: string): string | undefined {
  for (const dir of searchPath.split(path.delimiter).filter((d) => d !== '')) {
    const file = path.join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

// ---- configuration ------------------------------------------------------------------------------

/** One server of an ensemble, as saved (cluster.json) and re-attached. */
export interface ZkServerInfo {
  id: number;
  /** The running JVM, or the last one started. */
  pid: number;
  clientPort: number;
  quorumPort: number;
  electionPort: number;
  dir: string;
  /** ZooKeeper's own log (log4j); the JVM's stdout and stderr go to jvm.log beside it. */
  log: string;
}

/** A server's state: serving as `leader` or `follower`, running but not serving (`looking`: no quorum yet), or `down`. */
export type ZkMode = 'leader' | 'follower' | 'looking' | 'down';

const configFile = 'zoo.cfg';
const jvmLogFile = 'jvm.log';

/** zoo.cfg for one server of `all`. */
export function zooConfig(server: ZkServerInfo, all: readonly ZkServerInfo[]): string {
  const lines = [
    `tickTime=${tickMs}`,
    `initLimit=${initLimitTicks}`,
    `syncLimit=${syncLimitTicks}`,
    `maxSessionTimeout=${maxSessionTimeoutMs}`,
    `dataDir=${path.join(server.dir, 'data')}`,
    'forceSync=yes',
    `clientPort=${server.clientPort}`,
    'clientPortAddress=127.0.0.1',
    `maxClientCnxns=${clientConnectionsMax}`,
    `maxCnxns=${clientConnectionsMax}`,
    // 3.8's AdminServer (Jetty) would listen on 0.0.0.0:8080.
    'admin.enableServer=false',
    '4lw.commands.whitelist=ruok,srvr,mntr,stat',
    `autopurge.snapRetainCount=${snapshotsKept}`,
    'autopurge.purgeInterval=1',
    // A single server still runs the quorum code (and reports `leader`), like a real ensemble.
    'standaloneEnabled=false',
    'reconfigEnabled=false',
    'quorumListenOnAllIPs=false',
    ...all.map((s) => `server.${s.id}=127.0.0.1:${s.quorumPort}:${s.electionPort}`),
  ];
  return `${lines.join('\n')}\n`;
}

/** log4j 1.2 config: everything at INFO into the server's own rotated file. */
export function log4jConfig(logFile: string): string {
  return [
    'log4j.rootLogger=INFO, FILE',
    'log4j.appender.FILE=org.apache.log4j.RollingFileAppender',
    `log4j.appender.FILE.File=${logFile}`,
    `log4j.appender.FILE.MaxFileSize=${logFileMb}MB`,
    `log4j.appender.FILE.MaxBackupIndex=${logFilesKept}`,
    'log4j.appender.FILE.layout=org.apache.log4j.PatternLayout',
    'log4j.appender.FILE.layout.ConversionPattern=%d{ISO8601} %-5p [myid:%X{myid}] [%t:%C{1}@%L] - %m%n',
    '',
  ].join('\n');
}

/** The java command line of one server. */
export function serverArgs(install: ZkInstall, server: ZkServerInfo): string[] {
  return [
    `-Xmx${heapMb}m`,
    // No background GC threads: at this heap size a serial collection takes milliseconds, and three JVMs share 2 cores.
    '-XX:+UseSerialGC',
    // A JVM out of memory limps on; exiting shows it as down and lets `local up` restart it.
    '-XX:+ExitOnOutOfMemoryError',
    // No /tmp/hsperfdata_* file per JVM, which a kill -9 would leave behind.
    '-XX:-UsePerfData',
    // No JMX: the log4j MBeans are off, and no remote JMX port is opened.
    '-Dzookeeper.jmx.log4j.disable=true',
    `-Dlog4j.configuration=file:${path.join(server.dir, 'log4j.properties')}`,
    '-cp',
    install.classpath.join(':'),
    mainClass,
    path.join(server.dir, configFile),
  ];
}

/** Writes a new server's directory: zoo.cfg, log4j.properties, data/myid. */
function writeServerDir(server: ZkServerInfo, all: readonly ZkServerInfo[]): void {
  // The owner's alone, like cairn's own data (the log in ZooKeeper holds the namespace).
  mkdirSync(path.join(server.dir, 'data'), { recursive: true, mode: dirMode });
  writeFileSync(path.join(server.dir, 'data', 'myid'), `${server.id}\n`, { mode: fileMode });
  writeFileSync(path.join(server.dir, 'log4j.properties'), log4jConfig(server.log), { mode: fileMode });
  writeFileSync(path.join(server.dir, configFile), zooConfig(server, all), { mode: fileMode });
}

export function serverDirName(id: number): string {
  return `zk-${id}`;
}

/** The client connect string of `servers`: 127.0.0.1:p1,127.0.0.1:p2,... */
export function connectStringOf(servers: readonly ZkServerInfo[]): string {
  return servers.map((s) => `127.0.0.1:${s.clientPort}`).join(',');
}

// ---- the ensemble -------------------------------------------------------------------------------

export interface StartEnsembleOptions {
  /** Each server gets DIR/zk-N; none may exist yet. */
  dir: string;
  /** 1 to 7; 3 if not given. */
  servers?: number;
  /** Servers outlive this process (`local up`); otherwise they are killed when it exits (tests). */
  detached?: boolean;
  log?: Logger;
  /** How long to wait for every server to serve; 30 s if not given. */
  deadlineMs?: number;
  /** Where the jars are; /usr/share/java if not given. */
  jarDir?: string;
}

/** Starts a new ensemble and waits until each server serves (one leader, the others following). */
export async function startEnsemble(opts: StartEnsembleOptions): Promise<Ensemble> {
  const count = opts.servers ?? 3;
  if (!(Number.isInteger(count) && count >= 1 && count <= serversMax)) throw new CairnError(ErrorCode.BadOption, `a ZooKeeper ensemble has 1 to ${serversMax} servers, got ${count}`);
  for (let id = 1; id <= count; id++) {
    const dir = path.join(opts.dir, serverDirName(id));
    if (existsSync(dir)) throw new CairnError(ErrorCode.BadOption, `${dir} already holds a ZooKeeper server: restart it through its saved record (attachEnsemble), or remove ${opts.dir}`);
  }
  const install = findZooKeeper(opts.jarDir === undefined ? {} : { jarDir: opts.jarDir });
  for (let attempt = 1; ; attempt++) {
    const servers = await newServers(opts.dir, count);
    for (const s of servers) writeServerDir(s, servers);
    const ensemble = new Ensemble(servers, install, opts.detached === true, opts.log);
    try {
      await ensemble.start(undefined, opts.deadlineMs ?? startDeadlineMs);
      return ensemble;
    } catch (err) {
      await ensemble.stop(0);
      // A free port can be taken by another program before a server binds it: start afresh.
      if (attempt >= startAttemptsMax || !servers.some((s) => logMentions(s, 'Address already in use'))) throw err;
      opts.log?.warn({ attempt }, 'a ZooKeeper port was taken while the ensemble started; starting again on new ports');
      for (const s of servers) rmSync(s.dir, { recursive: true, force: true });
    }
  }
}

/** An ensemble started by another process (`local up`), from its saved record; it stays detached. */
export function attachEnsemble(servers: ZkServerInfo[], opts: { log?: Logger; jarDir?: string } = {}): Ensemble {
  checkServerInfo(servers);
  // Installation is checked when a server has to be started, not to look at or stop running ones.
  const install = (): ZkInstall => findZooKeeper(opts.jarDir === undefined ? {} : { jarDir: opts.jarDir });
  return new Ensemble(
    servers.map((s) => ({ ...s })),
    install,
    true,
    opts.log,
  );
}

/** Checks a saved record at the boundary: a damaged one must not make us signal someone else's PID. */
function checkServerInfo(servers: unknown): asserts servers is ZkServerInfo[] {
  const port = (p: unknown): boolean => Number.isInteger(p) && (p as number) >= 1 && (p as number) <= 65_535;
  const ok =
    Array.isArray(servers) &&
    servers.length >= 1 &&
    servers.length <= serversMax &&
    servers.every(
      (s: Partial<ZkServerInfo>) =>
        Number.isInteger(s.id) && s.id! >= 1 && Number.isInteger(s.pid) && s.pid! > 0 && port(s.clientPort) && port(s.quorumPort) && port(s.electionPort) && typeof s.dir === 'string' && typeof s.log === 'string',
    ) &&
    new Set(servers.map((s: ZkServerInfo) => s.id)).size === servers.length;
  if (!ok) throw new CairnError(ErrorCode.BadOption, `a saved ZooKeeper ensemble record is damaged: ${JSON.stringify(servers).slice(0, 200)}`);
}

async function newServers(dir: string, count: number): Promise<ZkServerInfo[]> {
  // Three ports per server, all different (the OS may hand out a port again once it is closed).
  const ports = new Set<number>();
  while (ports.size < count * 3) ports.add(await freePort());
  const p = [...ports];
  return Array.from({ length: count }, (_, i) => {
    const id = i + 1;
    const serverDir = path.join(dir, serverDirName(id));
    return { id, pid: 0, clientPort: p[3 * i], quorumPort: p[3 * i + 1], electionPort: p[3 * i + 2], dir: serverDir, log: path.join(serverDir, 'zookeeper.log') };
  });
}

/**
 * A running (or partly running) ensemble. Every signal goes to a PID this ensemble started, or one a
 * saved record names and whose command line is still that server's: a reused PID is left alone.
 */
export class Ensemble {
  readonly detached: boolean;
  private readonly records: ZkServerInfo[];
  private readonly install: ZkInstall | (() => ZkInstall);
  private readonly log: Logger | undefined;
  /** The servers this process spawned, by id (attached or not), to tell their exit without polling PIDs. */
  private readonly children = new Map<number, ChildProcess>();
  /** Kills attached servers if this process exits without stop(): a crashed test leaves no JVM behind. */
  private readonly onExit = (): void => {
    for (const c of this.children.values()) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  };

  constructor(servers: ZkServerInfo[], install: ZkInstall | (() => ZkInstall), detached: boolean, log: Logger | undefined) {
    this.records = servers;
    this.install = install;
    this.detached = detached;
    this.log = log;
    if (!detached) process.on('exit', this.onExit);
  }

  /** The servers with their current PIDs: save this to re-attach later. */
  get servers(): readonly ZkServerInfo[] {
    return this.records.map((s) => ({ ...s }));
  }

  get connectString(): string {
    return connectStringOf(this.records);
  }

  /** Whether server `id`'s JVM is running. */
  isRunning(id: number): boolean {
    const s = this.server(id);
    const child = this.children.get(id);
    if (child !== undefined && child.pid === s.pid) return child.exitCode === null && child.signalCode === null;
    return isServerProcess(s);
  }

  /** The server's mode, from its `srvr` answer. */
  async status(id: number): Promise<ZkMode> {
    const s = this.server(id);
    if (!this.isRunning(id)) return 'down';
    return modeOf(await fourLetterWord(s.clientPort, 'srvr').catch(() => undefined));
  }

  /**
   * Starts servers `ids` (every server, if not given) that are not running, with their config and
   * data, and waits until each of them serves. Start together the servers that make a quorum.
   */
  async start(ids?: number[], deadlineMs = startDeadlineMs): Promise<void> {
    const want = ids ?? this.records.map((s) => s.id);
    for (const id of want) if (!this.isRunning(id)) this.spawnServer(this.server(id));
    await this.waitServing(want, deadlineMs);
  }

  /** Sends `signal` to server `id` (kill -9 by default) and waits until it is gone. */
  async kill(id: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const s = this.server(id);
    if (!this.isRunning(id)) return;
    signalPid(s.pid, signal);
    this.log?.info({ zk: id, pid: s.pid, signal }, 'signalled a ZooKeeper server');
    await this.waitGone([id], exitDeadlineMs);
  }

  /** SIGTERM to every running server, SIGKILL to those still running after `graceMs` (0: SIGKILL at once). */
  async stop(graceMs = stopGraceMs): Promise<void> {
    const running = this.records.filter((s) => this.isRunning(s.id)).map((s) => s.id);
    if (graceMs > 0) for (const id of running) signalPid(this.server(id).pid, 'SIGTERM');
    if (!(await this.gone(running, graceMs))) {
      for (const id of running) if (this.isRunning(id)) signalPid(this.server(id).pid, 'SIGKILL');
      await this.waitGone(running, exitDeadlineMs);
    }
    process.off('exit', this.onExit);
    this.log?.info({ servers: running.length }, 'stopped the ZooKeeper ensemble');
  }

  /** Waits until each of `ids` answers `srvr` as leader or follower; fails early when one exits. */
  async waitServing(ids: number[], deadlineMs = startDeadlineMs): Promise<void> {
    const start = Date.now();
    for (;;) {
      const exited = ids.find((id) => !this.isRunning(id));
      if (exited !== undefined) {
        const s = this.server(exited);
        throw new CairnError(ErrorCode.ProcessFailed, `ZooKeeper server ${exited} (pid ${s.pid}) exited; see ${s.log}:\n${logTail(s)}`, { server: exited, log: s.log });
      }
      const modes = await Promise.all(ids.map((id) => this.status(id)));
      if (modes.every((m) => m === 'leader' || m === 'follower')) return;
      if (Date.now() - start > deadlineMs) {
        const id = ids[modes.findIndex((m) => m !== 'leader' && m !== 'follower')];
        const s = this.server(id);
        throw new CairnError(ErrorCode.Unavailable, `ZooKeeper server ${id} is not serving after ${deadlineMs} ms; see ${s.log}:\n${logTail(s)}`, { server: id, log: s.log });
      }
      await sleep(pollMs);
    }
  }

  private async waitGone(ids: number[], deadlineMs: number): Promise<void> {
    if (!(await this.gone(ids, deadlineMs))) throw new CairnError(ErrorCode.Timeout, `ZooKeeper servers ${ids.filter((id) => this.isRunning(id)).join(', ')} still running ${deadlineMs} ms after the signal`);
  }

  /** Whether all of `ids` have exited within `deadlineMs`. */
  private async gone(ids: number[], deadlineMs: number): Promise<boolean> {
    const start = Date.now();
    for (;;) {
      if (!ids.some((id) => this.isRunning(id))) return true;
      if (Date.now() - start >= deadlineMs) return false;
      await sleep(20);
    }
  }

  private server(id: number): ZkServerInfo {
    const s = this.records.find((r) => r.id === id);
    if (s === undefined) throw new CairnError(ErrorCode.InvalidArgument, `no ZooKeeper server ${id} in this ensemble (servers ${this.records.map((r) => r.id).join(', ')})`);
    return s;
  }

  private spawnServer(s: ZkServerInfo): void {
    const install = typeof this.install === 'function' ? this.install() : this.install;
    const fd = openSync(path.join(s.dir, jvmLogFile), 'a', fileMode);
    try {
      const child = spawn(install.java, serverArgs(install, s), { cwd: s.dir, detached: this.detached, stdio: ['ignore', fd, fd] });
      if (child.pid === undefined) throw new CairnError(ErrorCode.ProcessFailed, `could not start ZooKeeper server ${s.id} (${install.java}); see ${path.join(s.dir, jvmLogFile)}`);
      if (this.detached) child.unref();
      // An 'error' event after the pid is known (none expected) must not crash the caller.
      child.on('error', (err) => this.log?.error({ zk: s.id, err }, 'ZooKeeper server process error'));
      s.pid = child.pid;
      this.children.set(s.id, child);
      this.log?.info({ zk: s.id, pid: s.pid, clientPort: s.clientPort }, 'started a ZooKeeper server');
    } finally {
      closeSync(fd);
    }
  }
}

/** Whether `s.pid` is alive and still that server's JVM (its command line names the server's zoo.cfg). */
function isServerProcess(s: ZkServerInfo): boolean {
  if (s.pid <= 0) return false;
  try {
    const args = readFileSync(`/proc/${s.pid}/cmdline`, 'utf8').split('\0');
    return args.includes(path.join(s.dir, configFile));
  } catch {
    return false;
  }
}

/**
 * A running server's mode from its `srvr` reply (undefined: no reply). Anything but a leader or a
 * follower (`This ZooKeeper instance is not currently serving requests`, no answer yet) is not serving.
 */
export function modeOf(srvrReply: string | undefined): Exclude<ZkMode, 'down'> {
  const mode = srvrReply === undefined ? undefined : /^Mode: (\w+)/m.exec(srvrReply)?.[1];
  return mode === 'leader' || mode === 'follower' ? mode : 'looking';
}

/** Signals a PID that was ours a moment ago: one that has exited since is no error. */
function signalPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

/** Sends a four-letter word (`srvr`, `ruok`, `mntr`) to 127.0.0.1:port and returns the reply. */
export function fourLetterWord(port: number, word: 'srvr' | 'ruok' | 'mntr' | 'stat', timeoutMs = wordTimeoutMs): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    const socket = connect({ host: '127.0.0.1', port });
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`no answer to '${word}' from 127.0.0.1:${port} in ${timeoutMs} ms`)));
    socket.on('connect', () => socket.end(word));
    socket.on('data', (b: Buffer) => {
      bytes += b.length;
      if (bytes > wordReplyBytesMax) socket.destroy(new Error(`the answer to '${word}' from 127.0.0.1:${port} exceeds ${wordReplyBytesMax} bytes`));
      else chunks.push(b);
    });
    socket.on('error', reject);
    socket.on('close', (hadError) => {
      if (!hadError) resolve(Buffer.concat(chunks).toString('utf8'));
    });
  });
}

/** The last lines of a server's log and, when it wrote anything, of its JVM output. */
function logTail(s: ZkServerInfo): string {
  const jvm = path.join(s.dir, jvmLogFile);
  return [tail(s.log), tail(jvm)]
    .filter((t) => t !== '')
    .join('\n  ---\n');
}

const tailBytes = 16 * 1024;

/** A log's last lines, Java stack frames left out: the exception's own line says what went wrong. */
function tail(file: string): string {
  return readEnd(file)
    .split('\n')
    .filter((l) => l.trim() !== '' && !/^\s+at /.test(l) && !/^\s+\.\.\. \d+ more/.test(l))
    .slice(-logTailLines)
    .map((l) => `  ${l}`)
    .join('\n');
}

/** The last tailBytes of a file ('' if there is none). */
function readEnd(file: string): string {
  try {
    const fd = openSync(file, 'r');
    try {
      const size = fstatSync(fd).size;
      const buf = Buffer.alloc(Math.min(size, tailBytes));
      readSync(fd, buf, 0, buf.length, size - buf.length);
      return buf.toString('utf8');
    } finally {
      closeSync(fd);
    }
  } catch {
    return '';
  }
}

function logMentions(s: ZkServerInfo, text: string): boolean {
  return [s.log, path.join(s.dir, jvmLogFile)].some((f) => readEnd(f).includes(text));
}

assert(initLimitTicks > syncLimitTicks, 'a follower gets longer to join than to keep up');

// Which cluster a command talks to: --masters, the CAIRN_MASTERS variable, or the record a local
// cluster keeps in its directory (--dir, or the default directory). The secret comes along the same way.

import { BufferPool } from '../buffer-pool.ts';
import { readFileSync, realpathSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DataClient, MasterClient } from '../client/index.ts';
import { systemClock } from '../io/system-clock.ts';
import { hostIdentity } from '../io/host-id.ts';
import { LocalReads } from '../client/local-reads.ts';
import { RpcClient, type RpcMetrics } from '../rpc/index.ts';
import { workerFrameBytesMax } from '../worker/process.ts';
import type { ZkServerInfo } from '../journal/zookeeper/ensemble.ts';
import { CairnError, ErrorCode } from '../errors.ts';
import { configError, parseMasterList, warnSecretOnCommandLine } from './config.ts';
import { callerOf, type IdentityFlags } from './identity.ts';

export interface LocalProcess {
  kind: 'master' | 'worker';
  id: number;
  address: string;
  /** /metrics and /healthz. */
  http?: string;
  pid: number;
  dir: string;
  log: string;
}

export interface LocalCluster {
  secret: string;
  createdAt: string;
  /** The masters that founded the cluster (id, address); absent in records written before they were kept. */
  founders?: [number, string][];
  /** Workers, targets per worker and replication it was made with; absent in records of metadata-only clusters made before workers. */
  shape?: { workers: number; targetsPerWorker: number; replication: number };
  /** The masters' journal; absent in records made before there was a choice: raft. */
  journal?: LocalJournal;
  /** With journal 'zookeeper': the ensemble `local up` runs for the masters, and the cluster's id in it (its chroot is /cairn/ID). */
  zookeeper?: LocalZooKeeper;
  processes: LocalProcess[];
}

export type LocalJournal = 'raft' | 'zookeeper';

export interface LocalZooKeeper {
  clusterId: string;
  connectString: string;
  servers: ZkServerInfo[];
}

export const clusterFileName = 'cluster.json';

export function defaultLocalDir(): string {
  return process.env.CAIRN_LOCAL_DIR ?? path.join(homedir(), '.cairn', 'local');
}

export function readLocalCluster(dir: string): LocalCluster | undefined {
  const file = path.join(dir, clusterFileName);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    // Another user's cluster (EACCES) is not "no cluster": saying so would let local down report success.
    throw configError(`cannot read ${file}: ${(err as Error).message}`);
  }
  const damaged = (why: string): Error =>
    configError(`${file} is damaged (${why}): it is the record of the local cluster's ports, processes and secret. Put it back from a copy; or stop the cluster's processes by hand (ps shows them with --dir ${dir}), and remove ${dir} to start over`);
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw damaged((err as Error).message);
  }
  const o = v as Partial<LocalCluster> | null;
  if (typeof o !== 'object' || o === null || typeof o.secret !== 'string' || !Array.isArray(o.processes)) throw damaged('it has no secret or no list of processes');
  for (const p of o.processes as unknown[]) {
    const q = p as Partial<LocalProcess> | null;
    const valid = typeof q === 'object' && q !== null && (q.kind === 'master' || q.kind === 'worker') && Number.isSafeInteger(q.id) && Number.isSafeInteger(q.pid) && (q.pid ?? 0) > 0 && typeof q.address === 'string' && typeof q.dir === 'string' && typeof q.log === 'string';
    if (!valid) throw damaged(`a process record is not one: ${JSON.stringify(p).slice(0, 100)}`);
  }
  return o as LocalCluster;
}

/** Where the cluster is, and (for `fs` commands) who to act as there. */
export interface TargetFlags extends IdentityFlags {
  masters?: string;
  dir?: string;
  secret?: string;
  timeoutMs?: string;
}

function resolveTarget(flags: TargetFlags): { masters: string[]; secret: string | undefined } {
  const explicit = flags.masters ?? process.env.CAIRN_MASTERS;
  const dir = flags.dir ?? defaultLocalDir();
  const local = explicit === undefined ? readLocalCluster(dir) : undefined;
  warnSecretOnCommandLine(flags, 'cairn');
  const secret = flags.secret ?? process.env.CAIRN_SECRET ?? local?.secret;
  if (explicit !== undefined) return { masters: parseMasterList(explicit), secret };
  if (local === undefined) {
    throw configError(`no cluster given: pass --masters host:port,..., set CAIRN_MASTERS, or start one with 'cairn local up' (looked in ${dir})`);
  }
  const masters = local.processes.filter((p) => p.kind === 'master');
  // A stopped local cluster is known at once from its record, rather than after the client's deadline.
  if (!masters.some((p) => isAlive(p.pid))) {
    throw new CairnError(ErrorCode.NotRunning, `the local cluster in ${dir} is not running (none of its ${masters.length} masters' processes is alive); start it with 'cairn local up --dir ${dir}'`);
  }
  return { masters: masters.map((p) => p.address), secret };
}

/**
 * Whether a process with this pid runs and is ours to signal (signal 0 sends nothing): one of
 * another user (EPERM) is not a process this user's `local up` started.
 */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // After a reboot, or a kill -9, the recorded pid may be another program's: only a process running
  // cairn's own main script is one local up started (where /proc cannot tell, the pid is trusted).
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return true;
  }
  // An empty command line is a process exiting (or exited, not yet reaped): still there, and
  // maybe still holding its ports and locks, so waiting for it to go goes on. The script may be
  // named by a link to it (npx's node_modules/.bin/cairn).
  return cmdline === '' || cmdline.split('\0').some((a) => a === cairnMainScript || (/(cairn|main\.ts)$/.test(a) && realpathOr(a) === cairnMainScript));
}

function realpathOr(p: string): string | undefined {
  try {
    return realpathSync(p);
  } catch {
    return undefined;
  }
}

/** The script every process `local up` starts runs (masters, workers, the S3 gateway, mount daemons). */
export const cairnMainScript = fileURLToPath(new URL('./main.ts', import.meta.url));

/** The longest --timeout-ms: a day (a larger one is a typo more likely than a wish). */
const timeoutMsMax = 24 * 3600 * 1000;

/** --timeout-ms: how long an operation (metadata or data) retries before it fails. */
function timeoutMsOf(flags: TargetFlags): number | undefined {
  if (flags.timeoutMs === undefined) return undefined;
  const ms = Number(flags.timeoutMs);
  if (!/^\d+$/.test(flags.timeoutMs) || ms <= 0 || ms > timeoutMsMax) throw configError(`--timeout-ms must be a whole number of milliseconds from 1 to ${timeoutMsMax} (a day), got '${flags.timeoutMs}'`);
  return ms;
}

/** How long a command waits for a leading master unless --timeout-ms says. */
const leaderWaitMsDefault = 15_000;

function connect(flags: TargetFlags): MasterClient {
  const t = resolveTarget(flags);
  return new MasterClient({ masters: t.masters, secret: t.secret, deadlineMs: timeoutMsOf(flags) ?? leaderWaitMsDefault, caller: callerOf(flags) });
}

/**
 * A pool for the chunk reads of a process that gives them back once sent on (the S3 gateway): it
 * keeps up to 64 MiB idle, in classes of 64 KiB so that a 4 MiB chunk with its frame's header takes
 * 4 MiB and 64 KiB, not 8 MiB.
 */
export function receiveBufferPool(): BufferPool {
  return new BufferPool({ idleBytesMax: 64 * 2 ** 20, classBytesMax: workerFrameBytesMax, granularityBytes: 64 * 1024 });
}

export interface ClientOptions {
  /** Bounds a chunk operation's retries (default the client's). */
  dataRetryDeadlineMs?: number;
  rpcMetrics?: RpcMetrics;
  /** Where large chunk reads are received, for a process that gives them back (RpcClientOptions.receiveBuffers). */
  receiveBuffers?: BufferPool;
  /** Read chunks whose files are on this machine from the files (client/local-reads.ts; default false). */
  localReads?: boolean;
}

/** The metadata and data clients of the flags' cluster. */
export function openClients(flags: TargetFlags, opts: ClientOptions = {}): { meta: MasterClient; data: DataClient } {
  const t = resolveTarget(flags);
  const meta = connect(flags);
  const rpc = { secret: t.secret, frameBytesMax: workerFrameBytesMax, ...(opts.rpcMetrics === undefined ? {} : { metrics: opts.rpcMetrics }), ...(opts.receiveBuffers === undefined ? {} : { receiveBuffers: opts.receiveBuffers }) };
  // Chunk operations retry as long as --timeout-ms says when given (else the data client's default).
  const retryDeadlineMs = opts.dataRetryDeadlineMs ?? timeoutMsOf(flags);
  const data = new DataClient({
    master: meta,
    connect: (a) => new RpcClient(a, rpc),
    clock: systemClock,
    ...(retryDeadlineMs === undefined ? {} : { retryDeadlineMs }),
    ...(opts.localReads === true ? { localReads: new LocalReads({ hostId: hostIdentity(), ...(opts.receiveBuffers === undefined ? {} : { buffers: opts.receiveBuffers }) }) } : {}),
  });
  return { meta, data };
}

/** The masters' addresses the flags lead to. */
export function targetMasters(flags: TargetFlags): string[] {
  return resolveTarget(flags).masters;
}

/** The cluster secret the flags lead to (for --metrics-auth), if any. */
export function targetSecret(flags: TargetFlags): string | undefined {
  return resolveTarget(flags).secret;
}

/** Runs `fn` with the metadata and data clients of the flags' cluster, closing them afterwards. */
export async function withClients(flags: TargetFlags, fn: (meta: MasterClient, data: DataClient) => Promise<void>): Promise<void> {
  const { meta, data } = openClients(flags);
  try {
    await fn(meta, data);
  } finally {
    data.close();
    meta.close();
  }
}

/** Runs `fn` with a client of the flags' cluster, closing it afterwards. */
export async function withClient(flags: TargetFlags, fn: (c: MasterClient) => Promise<void>): Promise<void> {
  const client = connect(flags);
  try {
    await fn(client);
  } finally {
    client.close();
  }
}

// Configuration of cairn processes from flags, CAIRN_* environment variables, and an optional JSON
// config file (in that order of precedence), validated with one-line errors that say what to fix.

import { readFileSync } from 'node:fs';
import { parseAddress as parseHostPort } from '../address.ts';
import { CairnError, ErrorCode } from '../errors.ts';
import { replicationMax } from '../placement/index.ts';
import type { MasterOptions } from '../master/server.ts';
import { clusterTimingDefault, offlineTimeoutPerHeartbeatMin, type ClusterTiming } from '../master/cluster-manager.ts';
import { sessionLeaseMsMin } from '../master/session-leases.ts';
import type { WorkerProcessOptions } from '../worker/process.ts';
import { chunkSizeBytesMax } from '../meta/commands.ts';

/** A master's options as flags, environment and config file give them (the process adds its logger). */
export type MasterConfig = Omit<MasterOptions, 'log' | 'onFatal'>;
/** A worker's options as flags, environment and config file give them. */
export type WorkerConfig = Omit<WorkerProcessOptions, 'log'>;

type Source = Record<string, unknown>;

export function configError(message: string): CairnError {
  return new CairnError(ErrorCode.BadOption, message);
}

/** Merges flags over environment over config file for the given keys. */
function mergeSources(flags: Source, keys: string[], env: NodeJS.ProcessEnv = process.env): Source {
  const file = typeof flags.config === 'string' ? readConfigFile(flags.config) : {};
  const out: Source = {};
  for (const key of keys) {
    const envName = `CAIRN_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
    out[key] = flags[key] ?? env[envName] ?? file[key];
  }
  return out;
}

function readConfigFile(path: string): Source {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw configError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw configError(`config file ${path} is not valid: ${(err as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw configError(`config file ${path} is not valid: not a JSON object`);
  return v as Source;
}

export function parseMasterConfig(flags: Source, env: NodeJS.ProcessEnv = process.env): MasterConfig {
  const s = mergeSources(flags, ['id', 'dir', 'listen', 'peers', 'secret', 'tickMs', 'join', 'checkpointEvery', 'checkpointKeep', 'http', 'leaseRead', 'replication', 'heartbeatMs', 'offlineTimeoutMs', 'journal', 'zk', 'zkCluster', 'zkSessionTimeoutMs', 'zkBucketEntries', 'insecure', 'replaceAfterMs', 'rebalanceMoves', 'gcDelayMs', 'restoreWaitMs', 'sessionLeaseMs', ...limitKeys, 'pendingCallsMax', 'metricsAuth'], env);
  const id = parsePositiveInt(s.id, '--id');
  if (typeof s.dir !== 'string' || s.dir === '') throw configError('--dir is required: the directory for this master\'s WAL and snapshots');
  const listen = parseAddress(s.listen, '--listen', { portZero: true });
  const join = s.join === true || s.join === 'true' || s.join === '1';
  const peers = join ? new Map<number, string>() : s.peers === undefined ? new Map([[id, listen]]) : parsePeers(s.peers);
  if (!join && peers.get(id) === undefined) throw configError(`--peers must include this master (id ${id})`);
  const secret = parseSecret(s.secret, s.insecure, 'master');
  const metricsAuth = parseMetricsAuth(s.metricsAuth, secret);
  const tickMs = s.tickMs === undefined ? undefined : parsePositiveInt(s.tickMs, '--tick-ms');
  const checkpointEvery = s.checkpointEvery === undefined ? undefined : parsePositiveInt(s.checkpointEvery, '--checkpoint-every');
  const checkpointKeep = s.checkpointKeep === undefined ? undefined : parseNonNegativeInt(s.checkpointKeep, '--checkpoint-keep');
  const http = s.http === undefined ? undefined : parseAddress(s.http, '--http', { portZero: true });
  const leaseRead = parseBool(s.leaseRead, '--lease-read');
  const replication = s.replication === undefined ? undefined : parsePositiveInt(s.replication, '--replication');
  if (replication !== undefined && replication > replicationMax) throw configError(`--replication must be 1 to ${replicationMax}, got ${replication}`);
  const timing = parseTiming(s.heartbeatMs, s.offlineTimeoutMs);
  const zookeeper = parseZooKeeper(s);
  const replaceAfterMs = s.replaceAfterMs === undefined ? undefined : parsePositiveInt(s.replaceAfterMs, '--replace-after-ms');
  if (replaceAfterMs !== undefined && replaceAfterMs < (timing ?? clusterTimingDefault).offlineTimeoutMs) {
    throw configError(`--replace-after-ms must be at least the offline timeout (${(timing ?? clusterTimingDefault).offlineTimeoutMs} ms): a worker is not even counted out before that, got ${replaceAfterMs}`);
  }
  const rebalanceMoves = s.rebalanceMoves === undefined ? undefined : parseNonNegativeInt(s.rebalanceMoves, '--rebalance-moves');
  if (rebalanceMoves !== undefined && rebalanceMoves > rebalanceMovesMax) throw configError(`--rebalance-moves must be 0 to ${rebalanceMovesMax}, got ${rebalanceMoves}`);
  const gcDelayMs = s.gcDelayMs === undefined ? undefined : parseNonNegativeInt(s.gcDelayMs, '--gc-delay-ms');
  if (gcDelayMs !== undefined && gcDelayMs > delayMsMax) throw configError(`--gc-delay-ms must be at most ${delayMsMax} (a week), got ${gcDelayMs}`);
  const restoreWaitMs = s.restoreWaitMs === undefined ? undefined : parseNonNegativeInt(s.restoreWaitMs, '--restore-wait-ms');
  if (restoreWaitMs !== undefined && restoreWaitMs > delayMsMax) throw configError(`--restore-wait-ms must be at most ${delayMsMax} (a week), got ${restoreWaitMs}`);
  const sessionLeaseMs = s.sessionLeaseMs === undefined ? undefined : parsePositiveInt(s.sessionLeaseMs, '--session-lease-ms');
  if (sessionLeaseMs !== undefined && (sessionLeaseMs < sessionLeaseMsMin || sessionLeaseMs > delayMsMax)) {
    throw configError(`--session-lease-ms must be ${sessionLeaseMsMin} (shorter would end live clients' sessions across a failover) to ${delayMsMax} (a week), got ${sessionLeaseMs}`);
  }
  const limits: MasterConfig['limits'] = { ...parseLimits(s) };
  if (s.pendingCallsMax !== undefined) limits.pendingCallsMax = parsePositiveInt(s.pendingCallsMax, '--pending-calls-max');
  return { id, dir: s.dir, listen, peers, secret, ...(metricsAuth ? { metricsAuth } : {}), tickMs, checkpointEvery, checkpointKeep, http, leaseRead, replication, ...(timing === undefined ? {} : { timing }), ...(zookeeper === undefined ? {} : { zookeeper }), ...(replaceAfterMs === undefined ? {} : { replaceAfterMs }), ...(rebalanceMoves === undefined ? {} : { rebalanceMoves }), ...(gcDelayMs === undefined ? {} : { gcDelayMs }), ...(restoreWaitMs === undefined ? {} : { restoreWaitMs }), ...(sessionLeaseMs === undefined ? {} : { sessionLeaseMs }), ...(Object.keys(limits).length === 0 ? {} : { limits }) };
}

/** Moves at once beyond this would only queue behind one another on the workers' disks and networks. */
const rebalanceMovesMax = 1024;
/** A week, for --gc-delay-ms (longer, deleted files would hold their space past any reader) and --restore-wait-ms. */
const delayMsMax = 7 * 24 * 3600 * 1000;

/** The limits masters and workers share: connections, and the memory requests may take. */
const limitKeys = ['connectionsMax', 'connectionsPerAddressMax', 'requestMemoryMib', 'requestWaitMs'];

interface SharedLimits {
  connectionsMax?: number;
  connectionsPerAddressMax?: number;
  requestBytesMax?: number;
  requestWaitMs?: number;
}

function parseLimits(s: Source): SharedLimits {
  const out: SharedLimits = {};
  if (s.requestWaitMs !== undefined) out.requestWaitMs = parsePositiveInt(s.requestWaitMs, '--request-wait-ms');
  if (s.connectionsMax !== undefined) out.connectionsMax = parsePositiveInt(s.connectionsMax, '--connections-max');
  if (s.connectionsPerAddressMax !== undefined) out.connectionsPerAddressMax = parsePositiveInt(s.connectionsPerAddressMax, '--connections-per-address-max');
  if (s.requestMemoryMib !== undefined) out.requestBytesMax = parsePositiveInt(s.requestMemoryMib, '--request-memory-mib') * 2 ** 20;
  return out;
}

/** `--journal zookeeper --zk HOST:PORT,... --zk-cluster ID`; undefined for the Raft journal (the default). */
function parseZooKeeper(s: Source): MasterConfig['zookeeper'] {
  const backend = s.journal ?? 'raft';
  if (backend !== 'raft' && backend !== 'zookeeper') throw configError(`--journal must be raft or zookeeper, got ${JSON.stringify(backend)}`);
  if (backend === 'raft') {
    if (s.zk !== undefined || s.zkCluster !== undefined || s.zkSessionTimeoutMs !== undefined || s.zkBucketEntries !== undefined) throw configError('--zk and the other --zk-* options apply to --journal zookeeper only');
    return undefined;
  }
  if (typeof s.zk !== 'string' || s.zk === '') throw configError('--journal zookeeper needs --zk: the ZooKeeper ensemble as host:port,host:port,...');
  for (const [key, flag] of [['peers', '--peers'], ['join', '--join'], ['tickMs', '--tick-ms'], ['leaseRead', '--lease-read']] as const) {
    if (s[key] !== undefined && s[key] !== false) throw configError(`${flag} applies to the Raft journal only, not to --journal zookeeper`);
  }
  for (const server of s.zk.split(',')) parseAddress(server.trim(), '--zk');
  if (typeof s.zkCluster !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(s.zkCluster)) {
    throw configError(`--journal zookeeper needs --zk-cluster: the cluster's name in ZooKeeper (1-64 letters, digits, '-' or '_'), got ${JSON.stringify(s.zkCluster)}`);
  }
  const sessionTimeoutMs = s.zkSessionTimeoutMs === undefined ? undefined : parsePositiveInt(s.zkSessionTimeoutMs, '--zk-session-timeout-ms');
  const bucketEntries = s.zkBucketEntries === undefined ? undefined : parsePositiveInt(s.zkBucketEntries, '--zk-bucket-entries');
  // getChildren of a bucket must stay well under ZooKeeper's 1 MiB reply limit (about 12 bytes a name).
  if (bucketEntries !== undefined && bucketEntries > 50_000) throw configError(`--zk-bucket-entries must be at most 50000 (a bucket's listing must fit in one ZooKeeper reply), got ${bucketEntries}`);
  return {
    connect: s.zk.split(',').map((x) => x.trim()).join(','),
    clusterId: s.zkCluster,
    ...(sessionTimeoutMs === undefined ? {} : { sessionTimeoutMs }),
    ...(bucketEntries === undefined ? {} : { bucketEntries }),
  };
}

/**
 * Worker heartbeat interval and offline timeout, each defaulting on its own. A worker stops serving
 * after half the timeout without a master's answer, so the timeout must span a few heartbeats or
 * healthy workers would flap: at least offlineTimeoutPerHeartbeatMin of them.
 */
function parseTiming(heartbeat: unknown, offline: unknown): ClusterTiming | undefined {
  if (heartbeat === undefined && offline === undefined) return undefined;
  const heartbeatMs = heartbeat === undefined ? clusterTimingDefault.heartbeatMs : parsePositiveInt(heartbeat, '--heartbeat-ms');
  const offlineTimeoutMs = offline === undefined ? clusterTimingDefault.offlineTimeoutMs : parsePositiveInt(offline, '--offline-timeout-ms');
  if (offlineTimeoutMs < offlineTimeoutPerHeartbeatMin * heartbeatMs) {
    throw configError(`--offline-timeout-ms must be at least ${offlineTimeoutPerHeartbeatMin} heartbeats (--heartbeat-ms ${heartbeatMs}): at least ${offlineTimeoutPerHeartbeatMin * heartbeatMs}, got ${offlineTimeoutMs}`);
  }
  return { heartbeatMs, offlineTimeoutMs };
}

/** `cairn worker`: --target is repeated on the command line, comma-separated in CAIRN_TARGETS, a list in the config file. */
export function parseWorkerConfig(flags: Source, env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  const s = mergeSources(flags, ['id', 'listen', 'masters', 'secret', 'http', 'domain', 'insecure', 'scrubMibPerS', 'scrubPauseMs', 'resyncMibPerS', ...limitKeys, 'readMemoryMib', 'metricsAuth', 'cacheWrites', 'bufferedWrites'], env);
  const id = parsePositiveInt(s.id, '--id');
  const listen = parseAddress(s.listen, '--listen', { portZero: true });
  if (typeof s.masters !== 'string') throw configError('--masters is required: the masters as host:port,...');
  const masters = parseMasterList(s.masters);
  const file = typeof flags.config === 'string' ? readConfigFile(flags.config) : {};
  const given = Array.isArray(flags.target) && flags.target.length > 0 ? flags.target : env.CAIRN_TARGETS !== undefined ? env.CAIRN_TARGETS.split(',') : file.targets;
  if (!Array.isArray(given) || given.length === 0 || !given.every((d) => typeof d === 'string' && d.trim() !== '')) {
    throw configError('--target is required: one data directory per target (repeat --target for more)');
  }
  const secret = parseSecret(s.secret, s.insecure, 'worker');
  const metricsAuth = parseMetricsAuth(s.metricsAuth, secret);
  const http = s.http === undefined ? undefined : parseAddress(s.http, '--http', { portZero: true });
  const domain = typeof s.domain === 'string' && s.domain !== '' ? s.domain : undefined;
  const scrub: WorkerConfig['scrub'] = {};
  if (s.scrubMibPerS !== undefined) scrub.rateBytesPerSec = parseNonNegativeInt(s.scrubMibPerS, '--scrub-mib-per-s') * 2 ** 20;
  if (s.scrubPauseMs !== undefined) scrub.pauseMs = parseNonNegativeInt(s.scrubPauseMs, '--scrub-pause-ms');
  const resyncBytesPerSec = s.resyncMibPerS === undefined ? undefined : parsePositiveInt(s.resyncMibPerS, '--resync-mib-per-s') * 2 ** 20;
  const limits: WorkerConfig['limits'] = { ...parseLimits(s) };
  if (s.readMemoryMib !== undefined) {
    limits.readBytesMax = parsePositiveInt(s.readMemoryMib, '--read-memory-mib') * 2 ** 20;
    if (limits.readBytesMax < chunkSizeBytesMax) throw configError(`--read-memory-mib must be at least ${chunkSizeBytesMax / 2 ** 20} (a read of the largest chunk), got ${JSON.stringify(s.readMemoryMib)}`);
  }
  const cacheWrites = parseBool(s.cacheWrites, '--cache-writes');
  const bufferedWrites = parseBool(s.bufferedWrites, '--buffered-writes');
  return { id, listen, masters, targets: given.map((d: string) => d.trim()), secret, ...(metricsAuth ? { metricsAuth } : {}), ...(cacheWrites ? { cacheWrites } : {}), ...(bufferedWrites ? { directWrites: false } : {}), http, domain, ...(Object.keys(scrub).length === 0 ? {} : { scrub }), ...(resyncBytesPerSec === undefined ? {} : { resyncBytesPerSec }), ...(Object.keys(limits).length === 0 ? {} : { limits }) };
}

let warnedSecretOnCommandLine = false;

/**
 * A secret given as --secret is in the process's command line, which every local user can read
 * (ps, /proc/PID/cmdline), for as long as the process runs: said once on standard error.
 */
export function warnSecretOnCommandLine(flags: { secret?: unknown }, program: string): void {
  if (typeof flags.secret !== 'string' || warnedSecretOnCommandLine) return;
  warnedSecretOnCommandLine = true;
  console.error(`${program}: warning: --secret on the command line is visible to every user of this machine (ps, /proc); set CAIRN_SECRET, or "secret" in a --config file only you can read`);
}

/**
 * The cluster secret, which authenticates every connection. Running without one takes --insecure
 * said out loud: an unset variable (`--secret "$SECRET"`) is an empty secret, and an error, never
 * a quiet switch to no authentication.
 */
function parseSecret(secret: unknown, insecure: unknown, what: string): string | undefined {
  const open = parseBool(insecure, '--insecure');
  if (secret === undefined) {
    if (open) return undefined;
    throw configError(`a ${what} needs the cluster secret: --secret, CAIRN_SECRET or "secret" in the config file (or --insecure to run without authentication, for development only)`);
  }
  if (typeof secret !== 'string' || secret.trim() === '') throw configError('the cluster secret is empty (an unset variable?): give the secret itself');
  if (open) throw configError('--insecure and a secret contradict each other: drop one');
  return secret;
}

/** --metrics-auth: /metrics asks for the cluster secret as a bearer token; without a secret there is nothing to ask for. */
export function parseMetricsAuth(v: unknown, secret: string | undefined): boolean {
  const on = parseBool(v, '--metrics-auth');
  if (on && (secret === undefined || secret === '')) throw configError('--metrics-auth makes /metrics ask for the cluster secret, and there is none (--insecure): give --secret, or drop --metrics-auth');
  return on;
}

function parseBool(v: unknown, flag: string): boolean {
  if (v === undefined || v === false || v === 'false' || v === '0' || v === '') return false;
  if (v === true || v === 'true' || v === '1') return true;
  throw configError(`${flag} must be true or false (1 or 0), got ${JSON.stringify(v)}`);
}

export function parsePositiveInt(v: unknown, flag: string): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n <= 0) throw configError(`${flag} must be a positive whole number, got ${JSON.stringify(v)}`);
  return n;
}

export function parseNonNegativeInt(v: unknown, flag: string): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < 0) throw configError(`${flag} must be a whole number (0 or more), got ${JSON.stringify(v)}`);
  return n;
}

/** host:port (see src/address.ts); port 0 only with `portZero`, where the OS may pick. */
export function parseAddress(v: unknown, flag: string, opts: { portZero?: boolean } = {}): string {
  if (typeof v !== 'string') throw configError(`${flag} is required, as host:port`);
  const parsed = parseHostPort(v, opts);
  if ('problem' in parsed) throw configError(`${flag} must be host:port, got '${v}': ${parsed.problem}`);
  return v;
}

/** "1=host:port,2=host:port" */
function parsePeers(v: unknown): Map<number, string> {
  if (typeof v !== 'string' || v.trim() === '') throw configError('--peers must list the founding masters as id=host:port,...');
  const peers = new Map<number, string>();
  for (const part of v.split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) throw configError(`--peers entry '${part}' must be id=host:port`);
    const id = parsePositiveInt(part.slice(0, eq), '--peers id');
    if (peers.has(id)) throw configError(`--peers names master ${id} twice`);
    peers.set(id, parseAddress(part.slice(eq + 1), `--peers address of ${id}`));
  }
  return peers;
}

/** Master addresses for clients: --masters, CAIRN_MASTERS, or a local cluster's record. */
export function parseMasterList(v: string): string[] {
  const list = v.split(',').map((a) => a.trim()).filter((a) => a !== '');
  for (const a of list) parseAddress(a, '--masters');
  if (list.length === 0) throw configError('--masters must list at least one host:port');
  return list;
}

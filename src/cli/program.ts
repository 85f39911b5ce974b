// The `cairn` command (started by main.ts): processes (master), a local cluster, file system and admin commands.

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Command, Option } from 'commander';
import { getFile, putFile } from '../client/index.ts';
import { CairnError, ErrorCode } from '../errors.ts';
import { createLogger } from '../log.ts';
import { startMaster } from '../master/index.ts';
import { needsRebuild } from '../master/rebuild.ts';
import { startWorkerProcess } from '../worker/process.ts';
import { registerAdminCommands } from './admin-cmd.ts';
import { cairnMainScript, defaultLocalDir, readLocalCluster, withClients } from './cluster-target.ts';
import { configError, parseAddress, parseMasterConfig, parseNonNegativeInt, parsePositiveInt, parseWorkerConfig, warnSecretOnCommandLine } from './config.ts';
import { runDemo } from './demo.ts';
import { jsonLine, printable } from './format.ts';
import { registerFsCommands, signalExitCode } from './fs-cmd.ts';
import { ensureLocalDashboard, localDown, localStatus, localUp, recordLocalMount, s3Status, startLocalS3, zooKeeperStatus, type ProcessStatus, type S3Status, type ZkServerStatus } from './local.ts';
import { registerMountCommands, spawnMountDaemonReady } from './mount-cmd.ts';
import { registerS3Command } from './s3-cmd.ts';
import type { LocalCluster, LocalJournal } from './cluster-target.ts';

/** sysexits' EX_DATAERR: the master's own data is unusable (see docs/masters.md, 'Rebuilding a master'). */
const exitDataError = 65;

/** The package's version, from package.json beside src/. */
const version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const program = new Command();
program
  .name('cairn')
  .version(version, '-V, --version', 'print the version of cairn')
  .description('cairn: a distributed file system for large files (Raft-replicated metadata masters, CRAQ-replicated chunk workers)')
  .showHelpAfterError();

function addTargetOptions(c: Command): Command {
  return c
    .option('--masters <list>', 'master addresses host:port,... (or CAIRN_MASTERS)')
    .option('--dir <path>', 'a local cluster\'s directory, used when no masters are given', defaultLocalDir())
    .option('--secret <secret>', 'the cluster secret (or CAIRN_SECRET; a local cluster\'s is found in its directory)')
    .option('--timeout-ms <ms>', 'how long an operation keeps retrying before it fails (default: 15000 when no leader answers, 60000 for a chunk read or write)');
}

program
  .command('master')
  .description('run one metadata master in the foreground')
  .option('--id <n>', 'this master\'s id (a positive integer, unique in the cluster)')
  .option('--dir <path>', 'directory for the WAL and snapshots')
  .option('--listen <host:port>', 'address to serve on (and that peers use)')
  .option('--peers <list>', 'founding masters as id=host:port,... including this one')
  .option('--join', 'join an existing cluster (then add it with `cairn admin journal add`)')
  .addOption(new Option('--secret <secret>', 'cluster secret for peer and client authentication (or CAIRN_SECRET); required'))
  .option('--insecure', 'run without a secret: no authentication, anyone who reaches the port can read and write (development only)')
  .option('--tick-ms <ms>', 'Raft tick (heartbeat every 2 ticks, election after 12-24)')
  .option('--checkpoint-every <entries>', 'snapshot the metadata after this many applied entries (default 50000)')
  .option('--checkpoint-keep <entries>', 'log entries kept behind a snapshot for lagging peers (default 5000)')
  .option('--http <host:port>', 'serve /metrics (Prometheus), /healthz and the web dashboard (at /) here')
  .option('--metrics-auth', '/metrics answers only requests with Authorization: Bearer <cluster secret> (default: open, for a scraper on a trusted network)')
  .option('--lease-read', 'answer reads on the leader\'s lease (checked in real time) instead of a heartbeat round each')
  .option('--replication <n>', 'replicas per chain the cluster manager builds from workers\' targets (default 3)')
  .option('--heartbeat-ms <ms>', 'how often workers heartbeat (default 1000)')
  .option('--offline-timeout-ms <ms>', 'a worker silent this long has its targets taken offline; at least 4 heartbeats (default 5000)')
  .option('--gc-delay-ms <ms>', 'keep a deleted file\'s chunks this long before collecting them, so readers still streaming it finish (default 60000; 0 collects at once)')
  .option('--session-lease-ms <ms>', 'a write session its client has not renewed for this long ends, as its close would have (the client died or was cut off); at least 10000 (default 120000)')
  .option('--restore-wait-ms <ms>', 'after a restore from a backup, how long a chain waits for all its members\' workers before it takes the member that served it last among those back (default 300000)')
  .option('--rebalance-moves <n>', 'chain members moving onto idle workers\' free targets at once, each resynced before its source leaves; 0 turns rebalancing off (default 2)')
  .option('--replace-after-ms <ms>', 'replace a chain member offline this long with a free target, as a decommissioned worker\'s (default: off, only decommissioned workers\' members are replaced)')
  .option('--journal <backend>', 'raft (default: the embedded Raft journal) or zookeeper')
  .option('--zk <list>', 'with --journal zookeeper: the ZooKeeper ensemble as host:port,host:port,...')
  .option('--zk-cluster <id>', 'with --journal zookeeper: the cluster\'s name in ZooKeeper (its znodes live under /cairn/<id>)')
  .option('--zk-session-timeout-ms <ms>', 'with --journal zookeeper: the ZooKeeper session timeout, which bounds failover (default 2000)')
  .option('--zk-bucket-entries <n>', 'with --journal zookeeper: log batches per bucket znode, fixed when the cluster is made (default 10000)')
  .option('--pending-calls-max <n>', 'clients\' calls (meta.mutate, meta.query, cluster.routing) in progress at once; more are refused with CAIRN_OVERLOADED (default 1024)')
  .option('--request-memory-mib <n>', 'bytes of clients\' requests held in memory at once, in MiB; a request waits for room (--request-wait-ms), then is refused with CAIRN_OVERLOADED (default 256)')
  .option('--request-wait-ms <ms>', 'how long a client\'s request waits for room in the request memory, its connection unread, before it is refused (default 1000)')
  .option('--connections-max <n>', 'RPC connections open at once; more are refused with CAIRN_OVERLOADED (default 4096)')
  .option('--connections-per-address-max <n>', 'RPC connections open at once from one IP address (default 1024)')
  .option('--config <file>', 'JSON file with any of these options')
  .action(async (flags: Record<string, unknown>) => {
    const cfg = parseMasterConfig(flags);
    warnSecretOnCommandLine(flags, 'cairn master');
    if (cfg.secret === undefined) console.error('cairn master: --insecure: running WITHOUT authentication; anyone who reaches its port can read and write');
    const log = createLogger({ role: 'master', node: cfg.id });
    const master = await startMaster({
      ...cfg,
      log,
      onFatal: (err) => {
        log.fatal({ err }, 'the journal failed; exiting so that a supervisor restarts this master from its WAL');
        // The one line `local up` and supervisors read: why this master stopped.
        console.error(`cairn: master ${cfg.id}: the journal failed, exiting (a restart recovers from the WAL): ${errorLine(err)}`);
        process.exit(70);
      },
    });
    const stop = (sig: string): void => {
      log.info({ signal: sig }, 'stopping');
      void master.stop().then(() => process.exit(0));
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });

program
  .command('worker')
  .description('run one storage worker in the foreground: one target per --target data directory')
  .option('--id <n>', 'this worker\'s id (a positive integer, unique in the cluster)')
  .option('--listen <host:port>', 'address to serve chunks on (and that clients and peers use)')
  .option('--masters <list>', 'master addresses host:port,... (or CAIRN_MASTERS)')
  .option('--target <dir>', 'a data directory: one target each (repeat for more; or CAIRN_TARGETS=a,b)', (v: string, prev: string[]) => [...prev, v], [] as string[])
  .option('--domain <name>', 'failure domain (rack, power feed): chains avoid two replicas in one')
  .addOption(new Option('--secret <secret>', 'cluster secret (or CAIRN_SECRET); required'))
  .option('--insecure', 'run without a secret: no authentication (development only)')
  .option('--http <host:port>', 'serve /metrics (Prometheus) and /healthz here')
  .option('--metrics-auth', '/metrics answers only requests with Authorization: Bearer <cluster secret> (default: open, for a scraper on a trusted network)')
  .option('--scrub-mib-per-s <n>', 're-read stored chunks at most this fast to find and repair damage (default 16; 0 turns the scrubber off)')
  .option('--scrub-pause-ms <ms>', 'pause between two full scrub passes (default 3600000)')
  .option('--resync-mib-per-s <n>', 'what this worker\'s resyncs (filling a returning or new member) send together, at most (default 64)')
  .option('--buffered-writes', 'write every chunk through the page cache (default: chunks not kept cached are written with direct I/O, O_DIRECT, where the target\'s file system has it)')
  .option('--cache-writes', 'leave every chunk it writes in the page cache (default: only on the replica clients read that chunk from; the others drop theirs once durable, so that a stream of writes reuses the memory it freed and does not push out what readers use)')
  .option('--request-memory-mib <n>', 'bytes of clients\' requests (their writes\' data) held in memory at once, in MiB; a request waits for room (--request-wait-ms), then is refused with CAIRN_OVERLOADED (default 64; a larger write goes alone)')
  .option('--request-wait-ms <ms>', 'how long a client\'s request waits for room in the request memory, its connection unread, before it is refused (default 5000)')
  .option('--read-memory-mib <n>', 'bytes of chunk reads not yet sent, in MiB; beyond, reads are refused with CAIRN_OVERLOADED (default 256, at least 64)')
  .option('--connections-max <n>', 'RPC connections open at once; more are refused with CAIRN_OVERLOADED (default 4096)')
  .option('--connections-per-address-max <n>', 'RPC connections open at once from one IP address (default 1024)')
  .option('--config <file>', 'JSON file with any of these options ("targets": [...])')
  .action(async (flags: Record<string, unknown>) => {
    const cfg = parseWorkerConfig(flags);
    warnSecretOnCommandLine(flags, 'cairn worker');
    if (cfg.secret === undefined) console.error('cairn worker: --insecure: running WITHOUT authentication; anyone who reaches its port can read and write');
    const log = createLogger({ role: 'worker', node: cfg.id });
    const worker = await startWorkerProcess({ ...cfg, log });
    const stop = (sig: string): void => {
      log.info({ signal: sig }, 'stopping');
      void worker.stop().then(() => process.exit(0));
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });

const local = program.command('local').description('a whole cluster as processes on this machine');
local
  .command('up')
  .description('start a local cluster (and restart a stopped one in the same directory: a master per master-N directory)')
  .option('--masters <n>', 'how many masters', '3')
  .option('--workers <n>', 'how many storage workers (0: metadata only)', '3')
  .option('--targets-per-worker <n>', 'data directories (targets) per worker', '2')
  .option('--replication <n>', 'replicas per chain', '3')
  .option('--dir <path>', 'cluster directory', defaultLocalDir())
  .option('--join <id>', 'also start a new, empty master with this id (one the cluster never had), which joins; then add it with `cairn admin journal add ID`')
  .option('--journal <backend>', 'the masters\' journal: raft (the embedded one, default) or zookeeper (a 3-server ensemble started beside them; docs/zookeeper.md); an existing cluster keeps its own')
  .option('--foreground', 'stay in the foreground with a status view; Ctrl-C stops the cluster')
  .option('--mount <dir>', 'also mount the cluster at this empty directory through FUSE (docs/fuse.md); `local down` unmounts it')
  .option('--s3 [host:port]', 'also start an S3 gateway (docs/s3.md) with an access key of its own, printed (and in `local status --json`); default 127.0.0.1 on a free port')
  .action(async (o: { masters: string; workers: string; targetsPerWorker: string; replication: string; dir: string; join?: string; journal?: string; foreground?: boolean; mount?: string; s3?: string | boolean }) => {
    const join = o.join === undefined ? undefined : parsePositiveInt(o.join, '--join');
    const journal = o.journal === undefined ? undefined : parseLocalJournal(o.journal);
    const cluster = await localUp({
      dir: o.dir,
      masters: parsePositiveInt(o.masters, '--masters'),
      workers: parseNonNegativeInt(o.workers, '--workers'),
      targetsPerWorker: parsePositiveInt(o.targetsPerWorker, '--targets-per-worker'),
      replication: parsePositiveInt(o.replication, '--replication'),
      ...(join === undefined ? {} : { join }),
      ...(journal === undefined ? {} : { journal }),
      log: (l) => console.log(printable(l)),
    });
    printStatus(await statusOf(cluster, o.dir));
    const dashboard = await ensureLocalDashboard(o.dir);
    if (dashboard !== undefined) console.log(`\ndashboard: ${dashboard.url}  (user ${dashboard.user}, password ${dashboard.password}; kept in ${printable(path.join(o.dir, 'dashboard.json'))})`);
    if (o.mount !== undefined) {
      const mnt = path.resolve(o.mount);
      const logFile = path.resolve(o.dir, 'mount.log');
      const { pid, http } = await spawnMountDaemonReady([...process.execArgv, cairnMainScript, 'mount', mnt, '--dir', path.resolve(o.dir), '--http', '127.0.0.1:0'], mnt, logFile);
      recordLocalMount(o.dir, { mountpoint: mnt, pid, ...(http === undefined ? {} : { http }) });
      console.log(`\nmounted at ${printable(mnt)} (daemon pid ${pid}, log ${printable(logFile)}${http === undefined ? '' : `, /metrics on http://${http}`}): cp, tar and any program can use it`);
    }
    if (o.s3 !== undefined && o.s3 !== false) {
      const listen = o.s3 === true ? '127.0.0.1:0' : parseAddress(o.s3, '--s3', { portZero: true });
      const s3 = await startLocalS3(o.dir, listen, [...process.execArgv, cairnMainScript], (l: string) => console.log(printable(l)));
      console.log(`\nS3 endpoint ${s3.endpoint}, access key ${s3.accessKeyId}, secret ${s3.secretKey} (kept in ${printable(path.join(o.dir, 's3.json'))}):`);
      console.log(`  AWS_ACCESS_KEY_ID=${s3.accessKeyId} AWS_SECRET_ACCESS_KEY=${s3.secretKey} aws --endpoint-url ${s3.endpoint} s3 ls`);
    }
    if (!o.foreground) {
      const d = printable(o.dir);
      console.log(`\ntry: npx cairn fs put ./some-file /some-file --dir ${d}; npx cairn fs get /some-file ./copy --dir ${d}; npx cairn admin targets --dir ${d}; npx cairn local down --dir ${d}`);
      return;
    }
    await foreground(o.dir);
  });
local
  .command('status')
  .description('show each process: kind, id, address, pid, alive, journal role')
  .option('--dir <path>', 'cluster directory', defaultLocalDir())
  .option('--json', 'print JSON')
  .action(async (o: { dir: string; json?: boolean }) => {
    const cluster = readLocalCluster(o.dir);
    if (cluster === undefined) throw configError(`no local cluster in ${o.dir}; start one with 'cairn local up --dir ${o.dir}'`);
    const st = await statusOf(cluster, o.dir);
    if (o.json) console.log(jsonLine(st));
    else printStatus(st);
  });
local
  .command('down')
  .description('stop a local cluster (its data stays)')
  .option('--dir <path>', 'cluster directory', defaultLocalDir())
  .action(async (o: { dir: string }) => localDown(o.dir, (l) => console.log(printable(l))));

program
  .command('demo')
  .description('run a 3-node Raft group in this process: commit entries, kill the leader, watch another take over')
  .option('--dir <path>', 'keep the nodes\' WALs in this directory (default: a temporary one, removed afterwards)')
  .action(async (opts: { dir?: string }) => {
    await runDemo({ dir: opts.dir, keep: opts.dir !== undefined, log: (line) => console.log(line) });
  });

registerFsCommands(program, addTargetOptions);
registerAdminCommands(program, addTargetOptions);
registerMountCommands(program, addTargetOptions);
registerS3Command(program, addTargetOptions);

function parseLocalJournal(value: string): LocalJournal {
  if (value !== 'raft' && value !== 'zookeeper') throw configError(`--journal must be raft or zookeeper, got '${value}'`);
  return value;
}

/** Masters and workers, then the ZooKeeper servers (kind 'zookeeper', with their mode) of a cluster on ZooKeeper. */
async function statusOf(cluster: LocalCluster, dir: string): Promise<(ProcessStatus | ZkServerStatus | S3Status)[]> {
  const [processes, zk] = await Promise.all([localStatus(cluster), zooKeeperStatus(cluster)]);
  return [...processes, ...zk, ...s3Status(dir)];
}

function printStatus(st: (ProcessStatus | ZkServerStatus | S3Status)[]): void {
  console.log('kind      id  address                pid      alive  role / targets / mode');
  // On ZooKeeper the journal's term is its epoch.
  const term = st.some((p) => p.kind === 'zookeeper') ? 'epoch' : 'term';
  for (const p of st) {
    const detail = p.kind === 's3' ? `access key ${p.accessKeyId}` : p.kind === 'zookeeper' ? p.mode : p.kind === 'worker' ? (p.targets ?? []).map((t) => `${t.targetId}:${t.state}`).join(' ') || '-' : `${p.role ?? '-'}${p.term !== undefined ? ` (${term} ${p.term}, applied ${p.appliedIndex})` : ''}`;
    console.log(`${p.kind.padEnd(9)} ${String(p.id).padEnd(3)} ${p.address.padEnd(22)} ${String(p.pid).padEnd(8)} ${String(p.alive).padEnd(6)} ${detail}`);
  }
}

/** Writes a demo file through the workers and reads it back, so a new user sees the data path work. */
async function demoRoundTrip(dir: string): Promise<void> {
  const cluster = readLocalCluster(dir);
  if (cluster?.shape === undefined || cluster.shape.workers === 0) return;
  const body = randomBytes(demoFileBytes);
  await withClients({ dir }, async (meta, data) => {
    await meta.mutate('meta.mutate', { op: 'mkdir', path: '/demo', mode: 0o755, uid: meta.caller.uid, gid: meta.caller.gid, parents: true });
    let start = performance.now();
    await putFile(meta, data, '/demo/hello.bin', [body]);
    const putMs = performance.now() - start;
    start = performance.now();
    const { chunks } = await getFile(meta, data, '/demo/hello.bin');
    const parts: Buffer[] = [];
    for await (const part of chunks) parts.push(part);
    const getMs = performance.now() - start;
    const same = Buffer.concat(parts).equals(body);
    const rate = (ms: number): string => `${(demoFileBytes / 2 ** 20 / (ms / 1000)).toFixed(0)} MiB/s`;
    console.log(`\ndemo: wrote /demo/hello.bin (${demoFileBytes / 2 ** 20} MiB, 3 replicas) in ${putMs.toFixed(0)} ms (${rate(putMs)}), read it back in ${getMs.toFixed(0)} ms (${rate(getMs)}): ${same ? 'identical' : 'DIFFERENT'}`);
    if (!same) throw new CairnError(ErrorCode.Unavailable, 'the demo file read back differs from what was written');
  });
}

const demoFileBytes = 32 * 2 ** 20;

async function foreground(dir: string): Promise<void> {
  await demoRoundTrip(dir);
  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    console.log('\nstopping the cluster...');
    await localDown(dir, (l) => console.log(printable(l)));
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
  console.log('\nCtrl-C stops the cluster. Status every 5 s:');
  for (;;) {
    await new Promise((r) => setTimeout(r, 5_000));
    if (stopping) return;
    const cluster = readLocalCluster(dir);
    if (cluster === undefined) return;
    const st = await localStatus(cluster);
    const leader = st.find((p) => p.role === 'leader');
    const zk = await zooKeeperStatus(cluster);
    const serving = zk.filter((s) => s.mode === 'leader' || s.mode === 'follower').length;
    const zkLine = zk.length === 0 ? '' : `, ZooKeeper: ${serving}/${zk.length} serving`;
    console.log(`${new Date().toISOString()}  ${st.filter((p) => p.alive).length}/${st.length} alive, leader: ${leader ? `master ${leader.id} (${zk.length === 0 ? 'term' : 'epoch'} ${leader.term}, applied ${leader.appliedIndex})` : 'none'}${zkLine}`);
  }
}

/** An error as one line: its message, names in it escaped (format.ts), and its code unless it is a bad flag's, whose message says all there is. */
function errorLine(err: unknown): string {
  const code = (err as { code?: string } | undefined)?.code;
  const message = err instanceof Error ? err.message : String(err);
  const badOption = err instanceof CairnError && code === ErrorCode.BadOption;
  return printable(`${message}${code !== undefined && !badOption ? ` (${code})` : ''}`);
}

program.parseAsync().catch((err: unknown) => {
  console.error(`cairn: ${errorLine(err)}`);
  // A master whose data must be rebuilt exits with its own status, so a supervisor can stop retrying.
  const signal = err instanceof CairnError && err.code === ErrorCode.Interrupted ? err.details?.signal : undefined;
  process.exitCode = needsRebuild(err) ? exitDataError : typeof signal === 'string' ? signalExitCode(signal) : 1;
});

// `cairn mount MOUNTPOINT` (in the foreground, or as a daemon with --daemon) and `cairn umount
// MOUNTPOINT`: the FUSE front-end (src/fuse/) over a cluster's clients.

import { execFile } from 'node:child_process';
import { homedir } from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { CairnFs, readAheadBytesMaxDefault, readAheadChunksDefault, writesBytesMaxDefault } from '../fuse/cairn-fs.ts';
import { detach, mount, mountAt, type Mounted } from '../fuse/mount.ts';
import { CairnError, ErrorCode } from '../errors.ts';
import { openClients, receiveBufferPool, targetMasters, targetSecret, type TargetFlags } from './cluster-target.ts';
import { checkOpsHttpFlags, httpOptionHelp, metricsAuthOptionHelp, startFlagsOpsHttp, type OpsHttpFlags } from './ops-http-flags.ts';
import { fuseMetrics } from '../fuse/metrics.ts';
import { processRegistry, rpcMetrics } from '../metrics.ts';
import type { HttpEndpoint } from '../ops-http.ts';
import { configError, parseNonNegativeInt, parsePositiveInt } from './config.ts';
import { printable } from './format.ts';
import { daemonStartMs, spawnDaemon } from './daemon.ts';
import { changesToHoldDefault } from '../fuse/dir-holds.ts';

interface MountFlags extends TargetFlags, OpsHttpFlags {
  daemon?: boolean;
  log?: string;
  attrTimeoutMs: string;
  entryTimeoutMs: string;
  allowOther?: boolean;
  readdirMax: string;
  readAheadChunks: string;
  readAheadMaxMib: string;
  writeMaxMib: string;
  holdAfter: string;
  localReads: boolean;
  debug?: boolean;
}

/** Failover and chain changes are waited out this long before an operation fails with EIO. */
const mountTimeoutMsDefault = '60000';

export function registerMountCommands(program: Command, addTargetOptions: (c: Command) => Command): void {
  const cmd = addTargetOptions(
    program
      .command('mount')
      .description('mount the cluster\'s namespace at MOUNTPOINT (an empty directory) through FUSE; runs until unmounted, SIGINT or SIGTERM')
      .argument('<mountpoint>')
      .option('--daemon', 'run in the background (log in --log); stop it with `cairn umount MOUNTPOINT`')
      .option('--log <file>', 'with --daemon: the daemon\'s log (default ~/.cairn/mount-<name>.log)')
      .option('--attr-timeout-ms <ms>', 'how long the kernel caches attributes (stat) before asking again; 0: never (strict close-to-open, more calls to the masters)', '1000')
      .option('--entry-timeout-ms <ms>', 'how long the kernel caches names (lookup) before asking again', '1000')
      .option('--allow-other', 'let other users use the mount (default when run as root; others need user_allow_other in /etc/fuse.conf)')
      .option('--readdir-max <n>', 'entries a directory listing may have (FUSE takes a listing as one array in memory)', '1000000')
      .option('--read-ahead-chunks <n>', 'whole chunks a sequential reader fetches ahead, counting the one it reads; 0: none', String(readAheadChunksDefault))
      .option('--read-ahead-max-mib <n>', 'MiB the read-ahead of all open files holds at most', String(readAheadBytesMaxDefault / 2 ** 20))
      .option('--write-max-mib <n>', 'MiB the writes of all open files keep in flight to the workers at most (each file 64 at most); writes past it wait', String(writesBytesMaxDefault / 2 ** 20))
      .option('--hold-after <n>', 'creates and unlinks in one directory within a second after which the mount holds the directory and answers them itself, sending them to the masters in batches (docs/fuse.md); 0: never', String(changesToHoldDefault))
      .option('--no-local-reads', 'read every chunk through a worker, also chunks whose files are on this machine (by default the mount reads those files itself; docs/fuse.md)')
      .option('--debug', 'print every FUSE request (libfuse debug output)')
      .option('--http <host:port>', httpOptionHelp)
      .option('--metrics-auth', metricsAuthOptionHelp),
  );
  cmd.options.find((o) => o.long === '--timeout-ms')?.default(mountTimeoutMsDefault);
  cmd
    .setOptionValueWithSource('timeoutMs', mountTimeoutMsDefault, 'default')
    .action(async (mountpoint: string, flags: MountFlags) => {
      // An empty argument would resolve to the working directory.
      if (mountpoint.trim() === '') throw configError('the mount point is empty: name a directory');
      if (flags.daemon) return startDaemon(mountpoint, flags);
      await runMount(mountpoint, flags);
    });

  program
    .command('umount')
    .description('unmount a cairn mount; its daemon flushes open files and exits')
    .argument('<mountpoint>')
    .option('--lazy', 'detach it even while processes use it (they see it gone)')
    .action(async (mountpoint: string, o: { lazy?: boolean }) => {
      const mnt = path.resolve(mountpoint);
      const type = await mountAt(mnt);
      if (type === undefined) throw configError(`${mnt} is not a mount point`);
      if (type !== 'fuse.cairn') throw configError(`${mnt} is a ${type} mount, not cairn's`);
      if (o.lazy) return detach(mnt);
      await new Promise<void>((resolve, reject) =>
        execFile('fusermount', ['-u', mnt], (err, _out, stderr) => {
          if (err === null) return resolve();
          const busy = /busy/i.test(stderr);
          reject(new CairnError(ErrorCode.ProcessFailed, busy ? `${mnt} is busy: a process uses it (its working directory or an open file; see 'fuser -m ${mnt}'); close them, or use --lazy` : `unmounting ${mnt} failed: ${stderr.trim() || err.message}`));
        }),
      );
    });
}

async function runMount(mountpoint: string, flags: MountFlags): Promise<void> {
  const log = (level: 'info' | 'warn' | 'error', message: string): void => console.error(`${new Date().toISOString()} ${level}: ${printable(message)}`);
  const timeoutMs = parsePositiveInt(flags.timeoutMs, '--timeout-ms');
  const secret = targetSecret(flags);
  checkOpsHttpFlags(flags, secret);
  const registry = flags.http === undefined ? undefined : processRegistry();
  const { meta, data } = openClients(flags, { dataRetryDeadlineMs: timeoutMs, receiveBuffers: receiveBufferPool(), localReads: flags.localReads, ...(registry === undefined ? {} : { rpcMetrics: rpcMetrics(registry).client }) });
  const owner = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, groups: [] };
  const attrTimeoutMs = parseNonNegativeInt(flags.attrTimeoutMs, '--attr-timeout-ms');
  const entryTimeoutMs = parseNonNegativeInt(flags.entryTimeoutMs, '--entry-timeout-ms');
  const fs = new CairnFs({
    meta,
    data,
    owner,
    readdirEntriesMax: parsePositiveInt(flags.readdirMax, '--readdir-max'),
    readAheadChunks: parseNonNegativeInt(flags.readAheadChunks, '--read-ahead-chunks'),
    readAheadBytesMax: parsePositiveInt(flags.readAheadMaxMib, '--read-ahead-max-mib') * 2 ** 20,
    writesBytesMax: parsePositiveInt(flags.writeMaxMib, '--write-max-mib') * 2 ** 20,
    // No attributes are kept past the kernel's own timeout: with 0, every getattr asks the masters.
    changedDirAttrMs: attrTimeoutMs,
    listingMs: Math.min(attrTimeoutMs, entryTimeoutMs),
    holdAfterChanges: parseNonNegativeInt(flags.holdAfter, '--hold-after'),
    log,
  });
  // Fails early, with the cluster's own error, when no master answers; says what it waits for meanwhile.
  const waiting = setTimeout(() => log('info', `waiting for a leading master (${targetMasters(flags).join(', ')}) to answer; giving up after ${timeoutMs} ms (--timeout-ms)`), 3_000);
  try {
    await meta.query('meta.query', { op: 'statfs' });
  } finally {
    clearTimeout(waiting);
  }
  let mounted: Mounted;
  let http: HttpEndpoint | undefined;
  try {
    // Before the mount, so that a port taken fails the start with nothing to unmount.
    http = registry === undefined ? undefined : await startFlagsOpsHttp(flags, secret, registry, () => ({ ok: true, mountpoint: path.resolve(mountpoint) }));
    mounted = await mount(fs, mountpoint, {
      attrTimeoutMs,
      entryTimeoutMs,
      allowOther: flags.allowOther === true || process.getuid?.() === 0,
      debug: flags.debug,
      log,
      ...(registry === undefined ? {} : { metrics: fuseMetrics(registry, fs) }),
    });
  } catch (err) {
    await http?.close();
    data.close();
    meta.close();
    throw err;
  }
  console.log(`cairn mount: ${printable(mounted.mountpoint)} mounted (pid ${process.pid})${http === undefined ? '' : `, /metrics on http://${http.address}`}; unmount with 'cairn umount ${printable(mounted.mountpoint)}' or Ctrl-C`);
  // Started by `cairn mount --daemon`: tell it the mount is up, and be on our own from now on.
  if (process.send !== undefined) {
    process.send({ mounted: mounted.mountpoint, ...(http === undefined ? {} : { http: http.address }) });
    process.disconnect?.();
  }
  await new Promise<void>((resolve) => {
    // A second signal while the mount flushes and unmounts (timeout sends one to the whole group
    // too) must not kill the daemon with its mount half gone: it is logged and waited out.
    let stopping = false;
    const stop = (why: string): void => {
      if (stopping) return log('info', `${why}: already unmounting ${mounted.mountpoint}`);
      stopping = true;
      clearInterval(watch);
      log('info', `${why}: unmounting ${mounted.mountpoint}`);
      void mounted.unmount().finally(resolve);
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
    // Unmounted from outside (cairn umount, fusermount -u): the daemon's work is done.
    const watch = setInterval(() => {
      void mountAt(mounted.mountpoint).then((t) => {
        if (t === undefined) stop('unmounted');
      });
    }, 1_000);
  });
  await http?.close();
  data.close();
  meta.close();
  console.log(`cairn mount: ${printable(mounted.mountpoint)} unmounted`);
  // fuse-native's native handles would keep the process alive after its mount is gone.
  process.exit(0);
}

/** Starts `cairn mount` (without --daemon) in the background and waits until its mount is there. */
async function startDaemon(mountpoint: string, flags: MountFlags): Promise<void> {
  const mnt = path.resolve(mountpoint);
  const logFile = path.resolve(flags.log ?? path.join(homedir(), '.cairn', `mount-${mnt.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^_/, '')}.log`));
  // It may wait for the masters as long as --timeout-ms, and should then fail with its own error.
  const startMs = Math.max(daemonStartMs, parsePositiveInt(flags.timeoutMs, '--timeout-ms') + 30_000);
  const pid = await spawnMountDaemon([...process.execArgv, ...daemonArgs(process.argv.slice(1), mountpoint, mnt)], mnt, logFile, startMs);
  console.log(`cairn mount: ${printable(mnt)} mounted by daemon pid ${pid} (log ${printable(logFile)}); unmount with 'cairn umount ${printable(mnt)}'`);
}

/**
 * This command's arguments for its daemon, without --daemon: the daemon runs in `/`, so the mount
 * point and the paths given relative to here (--dir, --log) go as absolute paths.
 */
export function daemonArgs(argv: readonly string[], mountpoint: string, mnt: string): string[] {
  const out: string[] = [];
  let mountpointSeen = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--daemon') continue;
    const flag = /^--(dir|log)(=(.*))?$/.exec(a);
    if (flag !== null && flag[2] !== undefined) out.push(`--${flag[1]}=${path.resolve(flag[3])}`);
    else if (flag !== null && i + 1 < argv.length) out.push(a, path.resolve(argv[++i]));
    else if (!mountpointSeen && i > 0 && a === mountpoint && argv.slice(0, i).includes('mount')) {
      mountpointSeen = true;
      out.push(mnt);
    } else out.push(a);
  }
  return out;
}

/**
 * Runs `node ARGS` (a `cairn mount` in the foreground) as a daemon, its output in `logFile`, and
 * resolves with its pid once it has mounted `mnt` (it says so over IPC: a stale mount there looks
 * the same in the mount table); fails if it exits first or takes too long.
 */
export async function spawnMountDaemon(args: string[], mnt: string, logFile: string, startMs?: number): Promise<number> {
  return (await spawnMountDaemonReady(args, mnt, logFile, startMs)).pid;
}

/** As spawnMountDaemon, with the address of the daemon's /metrics when it was given --http. */
export async function spawnMountDaemonReady(args: string[], mnt: string, logFile: string, startMs?: number): Promise<{ pid: number; http: string | undefined }> {
  const { pid, message } = await spawnDaemon(args, logFile, `the mount daemon for ${mnt}`, startMs);
  const http = (message as { http?: unknown } | null)?.http;
  return { pid, http: typeof http === 'string' ? http : undefined };
}

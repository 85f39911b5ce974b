// MooseFS 3.0 (Debian's packages) on this machine, for `npm run bench -- fuse` to run the same jobs
// on it as on cairn's mount: a master, 3 chunkservers and replication 3, as the issue that asked
// for the benchmark measured it, chunks fsynced as cairn's are (HDD_FSYNC_BEFORE_CLOSE), and its
// FUSE client mounted in this machine's mount namespace.
// MooseFS's chunkservers refuse a loopback address (they tell the master the address to reach them
// at), so all of it runs in a network namespace of its own, on a private address given to that
// namespace's loopback device: nothing of it is reachable from, or reaches, anything outside.

import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { aptInstall } from './cluster.ts';

/** A running MooseFS and its mount; stop() takes all of it down (and is safe to call after a failed start). */
export interface MooseFs {
  mountpoint: string;
  stop(): void;
}

const packages = ['moosefs-master', 'moosefs-chunkserver', 'moosefs-client'];
/** The namespace's own address (on its loopback device): private, seen by nothing outside it. */
const address = '10.213.0.1';
const chunkservers = 3;

/**
 * Why MooseFS cannot be measured here (undefined: it can). It needs root (a network namespace, the
 * packages), Linux's `ip` and `nsenter`, and Debian's packages, installed here when missing.
 */
export function mooseFsMissing(): string | undefined {
  if (process.platform !== 'linux') return 'it needs Linux';
  if (process.getuid?.() !== 0) return 'it needs root (a network namespace of its own, and its Debian packages)';
  for (const tool of ['ip', 'nsenter']) if (spawnSync(tool, ['-V']).error !== undefined) return `${tool} is missing (Debian iproute2, util-linux)`;
  const missing = packages.filter((p) => spawnSync('dpkg-query', ['-W', '-f=${Status}', p], { encoding: 'utf8' }).stdout !== 'install ok installed');
  if (missing.length === 0) return undefined;
  try {
    aptInstall(missing);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Starts MooseFS under `dir` and mounts it at `dir`/mnt with goal (replication) 3; throws with what failed. */
export function startMooseFs(dir: string): MooseFs {
  const netns = `cairn-bench-mfs-${process.pid}`;
  const mnt = path.join(dir, 'mnt');
  const enter = `--net=/run/netns/${netns}`;
  const inNs = (cmd: string, args: string[]): string => execFileSync('nsenter', [enter, cmd, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const started: string[] = []; // config files of the daemons started, to stop them
  const stop = (): void => {
    if (existsSync(mnt)) spawnSync('umount', ['-l', mnt]);
    for (const cfg of started.reverse()) {
      const daemon = cfg.endsWith('mfsmaster.cfg') ? 'mfsmaster' : 'mfschunkserver';
      spawnSync('nsenter', [enter, daemon, '-c', cfg, 'stop'], { stdio: 'ignore' });
    }
    spawnSync('ip', ['netns', 'del', netns], { stdio: 'ignore' });
  };
  try {
    execFileSync('ip', ['netns', 'add', netns]);
    execFileSync('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
    execFileSync('ip', ['-n', netns, 'addr', 'add', `${address}/32`, 'dev', 'lo']);
    // The master: its metadata starts as the package's empty file; the namespace is private, so
    // MooseFS's own ports cannot clash with anything.
    const master = path.join(dir, 'master');
    mkdirSync(master, { recursive: true });
    writeFileSync(path.join(master, 'metadata.mfs'), readFileSync('/var/lib/mfs/metadata.mfs.empty'));
    writeFileSync(path.join(master, 'exports.cfg'), `${address} / rw,alldirs,admin,maproot=0:0\n`);
    writeFileSync(path.join(master, 'topology.cfg'), '');
    const masterCfg = path.join(master, 'mfsmaster.cfg');
    writeFileSync(
      masterCfg,
      config({ DATA_PATH: master, EXPORTS_FILENAME: path.join(master, 'exports.cfg'), TOPOLOGY_FILENAME: path.join(master, 'topology.cfg'), MATOML_LISTEN_HOST: address, MATOCS_LISTEN_HOST: address, MATOCL_LISTEN_HOST: address }),
    );
    inNs('mfsmaster', ['-c', masterCfg, 'start']);
    started.push(masterCfg);
    for (let i = 0; i < chunkservers; i++) {
      const cs = path.join(dir, `chunkserver-${i}`);
      mkdirSync(path.join(cs, 'hdd'), { recursive: true });
      writeFileSync(path.join(cs, 'mfshdd.cfg'), `${path.join(cs, 'hdd')}\n`);
      const cfg = path.join(cs, 'mfschunkserver.cfg');
      // A chunk is fsynced before the chunkserver closes it: without it (MooseFS's default) what a
      // program fsynced is in the chunkservers' page cache only, where cairn's workers have it on disk.
      const settings = { DATA_PATH: cs, HDD_CONF_FILENAME: path.join(cs, 'mfshdd.cfg'), HDD_LEAVE_SPACE_DEFAULT: '1GiB', HDD_FSYNC_BEFORE_CLOSE: '1' };
      writeFileSync(cfg, config({ ...settings, BIND_HOST: address, MASTER_HOST: address, CSSERV_LISTEN_HOST: address, CSSERV_LISTEN_PORT: String(9422 + i) }));
      inNs('mfschunkserver', ['-c', cfg, 'start']);
      started.push(cfg);
    }
    mkdirSync(mnt, { recursive: true });
    inNs('mfsmount', [mnt, '-H', address]);
    inNs('mfssetgoal', ['-r', '3', mnt]);
    // Ready when a file written now has its 3 copies (every chunkserver registered).
    const probe = path.join(mnt, '.ready');
    writeFileSync(probe, 'ready');
    const deadline = Date.now() + 60_000;
    for (;;) {
      const copies = (inNs('mfsfileinfo', [probe]).match(/status:VALID/g) ?? []).length;
      if (copies === chunkservers) break;
      if (Date.now() > deadline) throw new Error(`a file in MooseFS has ${copies} of ${chunkservers} copies after 60 s`);
      execFileSync('sleep', ['0.5']);
    }
    unlinkSync(probe);
    return { mountpoint: mnt, stop };
  } catch (err) {
    stop();
    const e = err as Error & { stderr?: string };
    throw new Error(`MooseFS did not start: ${e.message.split('\n')[0]}${e.stderr ? ` (${e.stderr.trim().split('\n').pop()})` : ''}`);
  }
}

/** A MooseFS config file: run as root, at normal priority, with `settings`. */
function config(settings: Record<string, string>): string {
  return Object.entries({ WORKING_USER: 'root', WORKING_GROUP: 'root', NICE_LEVEL: '0', ...settings })
    .map(([k, v]) => `${k} = ${v}\n`)
    .join('');
}

// `cairn mount` under fio and a metadata load, beside the same jobs on the local disk (the limit),
// the native client (putFile/getFile) and MooseFS 3.0 (bench/moosefs.ts) in the same run, with
// MooseFS's figures from the issue that asked for this benchmark (measured on another machine of
// this kind) as a second reference. A local cluster: 3 masters, 3 workers with 2 targets each,
// replication 3, all on this machine; MooseFS gets the machine to itself after it. Beside the
// sequential writes, the disk's rate for three replicas: three writers at once on the local disk.

import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DataClient, getFile, MasterClient, putFile } from '../src/client/index.ts';
import { readLocalCluster } from '../src/cli/cluster-target.ts';
import { localDown, localUp, recordLocalMount } from '../src/cli/local.ts';
import { spawnMountDaemon } from '../src/cli/mount-cmd.ts';
import { detach, mountAt } from '../src/fuse/mount.ts';
import { systemClock } from '../src/io/system-clock.ts';
import { rootCaller } from '../src/meta/index.ts';
import { RpcClient } from '../src/rpc/index.ts';
import { workerFrameBytesMax } from '../src/worker/process.ts';
import { positiveInt } from './args.ts';
import { mooseFsMissing, startMooseFs } from './moosefs.ts';
import { ensureDebianTool, machineBusySeconds, processCpuSeconds } from './cluster.ts';
import { formatNumber, Report } from './report.ts';

export const description = 'fio (sequential 1 MiB, random 4 KiB) and create/stat/unlink through cairn mount, beside the local disk, the native client and MooseFS';

const MiB = 2 ** 20;
const mainScript = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));

/** MooseFS 3.0 (replication 3, its FUSE client) as the issue records them (a machine of this kind then). */
const moosefs: Record<string, number> = {
  'seq write 1 MiB, 1 job': 22.5,
  'seq write 1 MiB, 4 jobs': 22.5,
  'seq read 1 MiB, 1 job': 92,
  'seq read 1 MiB, 4 jobs': 194,
  'rand read 4 KiB, 4 jobs': 3095,
  'create, 4 processes': 2168,
  'stat, 4 processes': 6358,
  'unlink, 4 processes': 3502,
};

const usage = `usage: npm run bench -- fuse [options]
  --size-mib N      MiB each sequential job writes and reads (default 512)
  --seconds N       seconds of 4 KiB random reads (default 15)
  --files N         files the metadata test creates, stats and unlinks (default 10000)
  --no-moosefs      do not run the jobs on MooseFS too (it needs root; its Debian packages are installed when missing)
  --dir PATH        where the cluster and the local-disk runs live (default a new directory under ${tmpdir()})`;

export async function run(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    strict: true,
    allowNegative: true,
    options: {
      'size-mib': { type: 'string', default: '512' },
      seconds: { type: 'string', default: '15' },
      files: { type: 'string', default: '10000' },
      moosefs: { type: 'boolean', default: true },
      dir: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(usage);
    return;
  }
  const sizeMiB = positiveInt(values['size-mib'], '--size-mib');
  const seconds = positiveInt(values.seconds, '--seconds');
  const files = positiveInt(values.files, '--files');
  const dir = values.dir ?? mkdtempSync(path.join(tmpdir(), 'cairn-bench-fuse-'));
  ensureDebianTool('fio');
  const report = new Report('fuse');
  report.configure({ sizeMiBPerJob: sizeMiB, randomSeconds: seconds, files, dir, workers: 3, targetsPerWorker: 2, replication: 3 });

  const local = path.join(dir, 'local');
  mkdirSync(local, { recursive: true });
  const clusterDir = path.join(dir, 'cluster');
  const mnt = path.join(dir, 'mnt');
  mkdirSync(mnt, { recursive: true });
  console.log('starting the local cluster and the mount...');
  await localUp({ dir: clusterDir, masters: 3, workers: 3, targetsPerWorker: 2, replication: 3, log: () => undefined });
  // Recorded as `local up --mount` records its mount, so that `local down` stops it first.
  const mountPid = await spawnMountDaemon([mainScript, 'mount', mnt, '--dir', clusterDir], mnt, path.join(dir, 'mount.log'));
  recordLocalMount(clusterDir, { mountpoint: mnt, pid: mountPid });
  const watched: Watched[] = [...readLocalCluster(clusterDir)!.processes.map((p) => ({ label: `${p.kind}s`, pid: p.pid })), { label: 'mount daemon', pid: mountPid }];
  type Where = 'cairn' | 'local' | 'moosefs';
  const results = new Map<string, { cairn: number; local: number; native?: number; moosefs?: number }>();
  const cpuRows: string[][] = [];
  let mountRandCpuUs: number | undefined;
  /** The fio jobs and the metadata load in `at`; the CPU of `cpuOf` in the metadata phases. */
  const runJobs = async (where: Where, at: string, cpuOf: Watched[]): Promise<void> => {
    const sub = path.join(at, 'fio');
    mkdirSync(sub, { recursive: true });
    const put = (name: string, v: number): void => {
      const r = results.get(name) ?? { cairn: 0, local: 0 };
      r[where] = v;
      results.set(name, r);
    };
    for (const jobs of [1, 4]) {
      const per = Math.max(1, Math.floor(sizeMiB / jobs));
      put(`seq write 1 MiB, ${jobs} job${jobs === 1 ? '' : 's'}`, fio(sub, `w${jobs}`, seqWriteJob(per, jobs)).writeMiBs);
      put(`seq read 1 MiB, ${jobs} job${jobs === 1 ? '' : 's'}`, fio(sub, `w${jobs}`, seqReadJob(per, jobs)).readMiBs);
    }
    const daemonCpuBefore = where === 'cairn' ? processCpuSeconds(mountPid) : undefined;
    const rand = fio(sub, 'w4', randReadJob(Math.max(1, Math.floor(sizeMiB / 4)), seconds));
    put('rand read 4 KiB, 4 jobs', rand.readIops);
    const daemonCpuAfter = where === 'cairn' ? processCpuSeconds(mountPid) : undefined;
    if (daemonCpuBefore !== undefined && daemonCpuAfter !== undefined) mountRandCpuUs = ((daemonCpuAfter - daemonCpuBefore) * 1e6) / (rand.readIops * seconds);
    const meta = await metadataLoad(path.join(at, 'meta'), files, 4, cpuOf);
    for (const op of ['create', 'stat', 'unlink'] as const) {
      const r = meta[op];
      put(`${op}, 4 processes`, r.rate);
      if (where !== 'cairn') continue;
      const total = Object.values(r.cpuUsPerFile).reduce((a, b) => a + b, 0);
      cpuRows.push([op, ...['masters', 'workers', 'mount daemon', 'load processes'].map((l) => formatNumber(r.cpuUsPerFile[l] ?? 0)), formatNumber(total), `${(r.busyShare * 100).toFixed(0)}%`]);
    }
    rmSync(sub, { recursive: true, force: true });
  };
  let mooseMissing: string | undefined;
  let viaWorkers: { seqReadMiBs: number; randIops: number } | undefined;
  let layer: { iops: number; cpuUsPerRead: number } | undefined;
  let diskFor3: { miBs: number; how: string } | undefined;
  try {
    try {
      console.log('fio on the mount...');
      await runJobs('cairn', mnt, watched);
      console.log('fio on a second mount that reads through the workers (--no-local-reads)...');
      viaWorkers = await readsThroughWorkers(clusterDir, path.join(dir, 'mnt-workers'), path.join(dir, 'mount-workers.log'), sizeMiB, seconds);
      console.log('fio on the local disk...');
      await runJobs('local', local, []);
      console.log('the local disk\'s rate for three replicas (3 writers at once)...');
      diskFor3 = threeReplicaRate(path.join(local, 'disk3'), sizeMiB);
      console.log('the native client...');
      const native = await nativeClient(clusterDir, sizeMiB);
      results.get('seq write 1 MiB, 1 job')!.native = native.writeMiBs;
      results.get('seq read 1 MiB, 1 job')!.native = native.readMiBs;
    } finally {
      await localDown(clusterDir, () => undefined);
      if ((await mountAt(mnt)) !== undefined) await detach(mnt); // a daemon that had to be killed
    }
    console.log('fio on the FUSE layer alone (the same addon answering from memory)...');
    layer = await fuseLayer(path.join(dir, 'layer'), seconds);
    mooseMissing = values.moosefs ? mooseFsMissing() : 'not asked for (--no-moosefs)';
    if (mooseMissing === undefined) {
      console.log('starting MooseFS (a master, 3 chunkservers, replication 3)...');
      const mfs = startMooseFs(path.join(dir, 'moosefs'));
      try {
        console.log('fio on MooseFS...');
        await runJobs('moosefs', mfs.mountpoint, []);
      } finally {
        mfs.stop();
      }
    } else {
      console.log(`MooseFS not measured: ${mooseMissing}`);
    }
  } finally {
    if (values.dir === undefined) rmSync(dir, { recursive: true, force: true });
  }
  const rows: string[][] = [];
  for (const [name, r] of results) {
    const unit = name.startsWith('seq') ? 'MiB/s' : name.startsWith('rand') ? 'IOPS' : 'files/s';
    report.figure(`${name}: cairn mount`, r.cairn, unit);
    report.figure(`${name}: local disk`, r.local, unit);
    if (r.native !== undefined) report.figure(`${name}: native client`, r.native, unit);
    if (r.moosefs !== undefined) report.figure(`${name}: MooseFS`, r.moosefs, unit);
    const moose = moosefs[name];
    const ratio = (base: number | undefined): string => (base === undefined ? '' : `${(r.cairn / base).toFixed(2)}x`);
    rows.push([name, unit, formatNumber(r.cairn), formatNumber(r.local), r.native === undefined ? '' : formatNumber(r.native), r.moosefs === undefined ? '' : formatNumber(r.moosefs), ratio(r.moosefs), formatNumber(moose), ratio(moose)]);
  }
  report.table(
    `cairn mount beside the local disk, the native client and MooseFS 3.0: in this run${mooseMissing === undefined ? '' : ` (not measured: ${mooseMissing})`}, and from the issue`,
    ['job', 'unit', 'cairn mount', 'local disk', 'native client', 'MooseFS', 'cairn / MooseFS', 'MooseFS (issue)', 'cairn / issue\'s'],
    rows,
  );
  if (layer !== undefined) {
    const rand = results.get('rand read 4 KiB, 4 jobs')!;
    report.figure('rand read 4 KiB, 4 jobs: FUSE layer alone', layer.iops, 'IOPS');
    report.figure('rand read 4 KiB: FUSE layer alone, its process\'s CPU a read', layer.cpuUsPerRead, 'us');
    if (mountRandCpuUs !== undefined) report.figure('rand read 4 KiB: cairn mount daemon\'s CPU a read', mountRandCpuUs, 'us');
    // The layer's rate is the most a daemon on this addon could answer; its CPU a read, the least it spends.
    report.table('4 KiB random reads (4 jobs): the cairn mount beside the FUSE layer alone (fuse-native as cairn builds it, answering from memory: bench/fuse-layer-fs.ts)', ['through', 'IOPS', 'daemon CPU a read (us)'], [
      ['cairn mount', formatNumber(rand.cairn), mountRandCpuUs === undefined ? '' : formatNumber(mountRandCpuUs)],
      ['FUSE layer alone', formatNumber(layer.iops), formatNumber(layer.cpuUsPerRead)],
    ]);
  }
  if (viaWorkers !== undefined) {
    // The mount reads chunk files on its own machine itself (docs/fuse.md, "Local reads"): every
    // worker of this one-machine cluster is local. A mount elsewhere reads through the workers.
    const m = (name: string): number | undefined => results.get(name)?.moosefs;
    const vs = (v: number, base: number | undefined): string => (base === undefined ? '' : `${(v / base).toFixed(2)}x`);
    const seq = results.get('seq read 1 MiB, 1 job')!;
    const rand = results.get('rand read 4 KiB, 4 jobs')!;
    report.figure('seq read 1 MiB, 1 job: cairn mount through the workers (--no-local-reads)', viaWorkers.seqReadMiBs, 'MiB/s');
    report.figure('rand read 4 KiB, 4 jobs: cairn mount through the workers (--no-local-reads)', viaWorkers.randIops, 'IOPS');
    report.table('Reads with local reads (the default: this machine\'s chunk files read by the mount itself) and through the workers (--no-local-reads), as a mount on a machine without workers reads', ['job', 'unit', 'local reads', 'through the workers', 'MooseFS', 'local / MooseFS', 'workers / MooseFS'], [
      ['seq read 1 MiB, 1 job', 'MiB/s', formatNumber(seq.cairn), formatNumber(viaWorkers.seqReadMiBs), seq.moosefs === undefined ? '' : formatNumber(seq.moosefs), vs(seq.cairn, m('seq read 1 MiB, 1 job')), vs(viaWorkers.seqReadMiBs, m('seq read 1 MiB, 1 job'))],
      ['rand read 4 KiB, 4 jobs', 'IOPS', formatNumber(rand.cairn), formatNumber(viaWorkers.randIops), rand.moosefs === undefined ? '' : formatNumber(rand.moosefs), vs(rand.cairn, m('rand read 4 KiB, 4 jobs')), vs(viaWorkers.randIops, m('rand read 4 KiB, 4 jobs'))],
    ]);
  }
  if (diskFor3 !== undefined) {
    // Every byte written is stored three times on this one disk: a file system with three
    // replicas here writes at about a third of what three writers at once get from the disk.
    const rate = diskFor3.miBs;
    report.figure('seq write: the local disk\'s rate for three replicas', rate, 'MiB/s');
    const rows3 = [1, 4].map((jobs) => {
      const name = `seq write 1 MiB, ${jobs} job${jobs === 1 ? '' : 's'}`;
      const r = results.get(name)!;
      const twiceMoose = r.moosefs === undefined ? undefined : 2 * r.moosefs;
      return [name, formatNumber(r.cairn), formatNumber(rate), (r.cairn / rate).toFixed(2), r.moosefs === undefined ? '' : formatNumber(r.moosefs), twiceMoose === undefined ? '' : formatNumber(twiceMoose), twiceMoose === undefined ? '' : (twiceMoose / rate).toFixed(2)];
    });
    report.table(`Sequential writes beside the local disk's rate for three replicas (${diskFor3.how}, divided by 3), MiB/s`, ['job', 'cairn mount', 'disk / 3', 'cairn / (disk / 3)', 'MooseFS', '2x MooseFS', '2x MooseFS / (disk / 3)'], rows3);
  }
  // What bounds the metadata phases: the CPU each part used a file, and how busy the machine was
  // (the rest of the machine's CPU is the kernel's own work and anything else running).
  report.table('CPU a file in the metadata phases on the mount (us), and the machine busy', ['phase', 'masters', 'workers', 'mount daemon', 'load processes', 'sum', 'machine busy'], cpuRows);
  report.finish();
}

/** fio's jobs, the same on every file system measured: 1 MiB sequential writes (fsynced at the end) and reads of `perMiB` each, 4 KiB random reads by 4 jobs for `seconds`. */
const seqWriteJob = (perMiB: number, jobs: number): string[] => ['--rw=write', '--bs=1M', `--size=${perMiB}M`, `--numjobs=${jobs}`, '--end_fsync=1'];
const seqReadJob = (perMiB: number, jobs: number): string[] => ['--rw=read', '--bs=1M', `--size=${perMiB}M`, `--numjobs=${jobs}`];
const randReadJob = (perMiB: number, seconds: number): string[] => ['--rw=randread', '--bs=4k', `--size=${perMiB}M`, '--numjobs=4', '--time_based', `--runtime=${seconds}`];

/**
 * What the disk under `dir` gives a file system that stores every byte three times on it: a third
 * of what three fio writers at once (4 MiB blocks, `perMiB` each) get. Direct I/O, as two of
 * cairn's three replicas write (the third goes through the page cache and is fdatasynced), with 32
 * blocks in flight each: this VM's disk gives more the more it is sent (a queue of one gave 290
 * MiB/s where 32 gave 300 to 460, alternated); where the file system refuses O_DIRECT (tmpfs),
 * buffered writes with an fdatasync each. Not a hard limit: the disk's rate moves between runs.
 */
function threeReplicaRate(dir: string, perMiB: number): { miBs: number; how: string } {
  mkdirSync(dir, { recursive: true });
  const job = ['--rw=write', '--bs=4M', `--size=${perMiB}M`, '--numjobs=3', '--end_fsync=1'];
  try {
    try {
      return { miBs: fio(dir, 'disk3', [...job, '--direct=1', '--ioengine=libaio', '--iodepth=32']).writeMiBs / 3, how: 'fio, 3 jobs writing 4 MiB blocks with O_DIRECT, 32 in flight each' };
    } catch {
      return { miBs: fio(dir, 'disk3', [...job, '--fdatasync=1']).writeMiBs / 3, how: 'fio, 3 jobs writing 4 MiB blocks, an fdatasync each (O_DIRECT refused)' };
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** One fio job group in `dir`; the files are named after `name`, so a read job reads what a write job left. */
function fio(dir: string, name: string, opts: string[]): { writeMiBs: number; readMiBs: number; readIops: number } {
  const out = execFileSync('fio', [`--name=${name}`, `--directory=${dir}`, '--ioengine=psync', '--group_reporting', '--output-format=json', ...opts], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const job = (JSON.parse(out) as { jobs: { read: { bw_bytes: number; iops: number }; write: { bw_bytes: number } }[] }).jobs[0];
  return { writeMiBs: job.write.bw_bytes / MiB, readMiBs: job.read.bw_bytes / MiB, readIops: job.read.iops };
}

/**
 * A second mount of the cluster with --no-local-reads at `mnt`: fio's sequential read (1 job) and
 * 4 KiB random reads (4 jobs) of files it writes first, each read going through a worker.
 */
async function readsThroughWorkers(clusterDir: string, mnt: string, logFile: string, sizeMiB: number, seconds: number): Promise<{ seqReadMiBs: number; randIops: number }> {
  mkdirSync(mnt, { recursive: true });
  const pid = await spawnMountDaemon([mainScript, 'mount', mnt, '--dir', clusterDir, '--no-local-reads'], mnt, logFile);
  recordLocalMount(clusterDir, { mountpoint: mnt, pid }); // `local down` stops it, whatever happens here
  const sub = path.join(mnt, 'fio');
  mkdirSync(sub, { recursive: true });
  fio(sub, 'w1', seqWriteJob(sizeMiB, 1));
  const seqReadMiBs = fio(sub, 'w1', seqReadJob(sizeMiB, 1)).readMiBs;
  const per = Math.max(1, Math.floor(sizeMiB / 4));
  fio(sub, 'w4', seqWriteJob(per, 4));
  const randIops = fio(sub, 'w4', randReadJob(per, seconds)).readIops;
  rmSync(sub, { recursive: true, force: true });
  return { seqReadMiBs, randIops };
}

/**
 * fio's 4 KiB random reads (4 jobs, each its own file) through bench/fuse-layer-fs.ts mounted at
 * `dir`/mnt: the addon alone, no cairn behind it. The rate, and its process's CPU a read.
 */
async function fuseLayer(dir: string, seconds: number): Promise<{ iops: number; cpuUsPerRead: number }> {
  const mnt = path.join(dir, 'mnt');
  mkdirSync(mnt, { recursive: true });
  const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(new URL('fuse-layer-fs.ts', import.meta.url)), mnt], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout.setEncoding('utf8').on('data', (d: string) => d.includes('mounted') && resolve());
      child.once('exit', (code) => reject(new Error(`bench/fuse-layer-fs.ts exited with ${code} before it mounted`)));
    });
    const before = processCpuSeconds(child.pid!);
    const r = fio(mnt, 'layer', ['--filename_format=f$jobnum', '--rw=randread', '--bs=4k', '--size=1T', '--numjobs=4', '--time_based', `--runtime=${seconds}`]);
    const after = processCpuSeconds(child.pid!);
    if (before === undefined || after === undefined) throw new Error('cannot read the CPU time of bench/fuse-layer-fs.ts');
    return { iops: r.readIops, cpuUsPerRead: ((after - before) * 1e6) / (r.readIops * seconds) };
  } finally {
    child.kill('SIGTERM');
    await exited;
    if ((await mountAt(mnt)) !== undefined) await detach(mnt);
  }
}

/** A process whose CPU time the metadata load reports, under a label (several may share one). */
interface Watched {
  label: string;
  pid: number;
}

/** One metadata phase: files a second, and the CPU each label used a file (us), and how busy the machine was. */
interface PhaseResult {
  rate: number;
  cpuUsPerFile: Record<string, number>;
  busyShare: number;
}

/**
 * Creates (and closes), then stats, then unlinks `files` small files with `procs` processes; the
 * rate of each phase. As mdtest's barrier does, every process of a phase is started and loaded
 * first, and the phase is timed from the moment all are told to go until the last one is done:
 * Node's start (some 75 ms of CPU a process) is not counted as file system time. The CPU time of
 * the `watched` processes over each phase (from /proc), of the load's own processes (their own
 * count, without their start) and of the whole machine say what bounds it.
 */
async function metadataLoad(dir: string, files: number, procs: number, watched: Watched[]): Promise<Record<'create' | 'stat' | 'unlink', PhaseResult>> {
  mkdirSync(dir, { recursive: true });
  const per = Math.floor(files / procs);
  const phase = async (op: 'create' | 'stat' | 'unlink'): Promise<PhaseResult> => {
    const step = op === 'create' ? "fs.closeSync(fs.openSync(f,'w'))" : op === 'stat' ? 'fs.statSync(f)' : 'fs.unlinkSync(f)';
    // Says it is ready, waits for a line on stdin, runs, and prints when it finished (ms since the
    // epoch) and the CPU time its loop took (us).
    const code = `const fs=require('fs');const d=process.argv[1],p=process.argv[2],n=+process.argv[3];process.stdout.write('ready\\n');process.stdin.once('data',()=>{const c=process.cpuUsage();for(let i=0;i<n;i++){const f=d+'/'+p+'-'+i;${step}}const u=process.cpuUsage(c);process.stdout.write((performance.timeOrigin+performance.now())+' '+(u.user+u.system)+'\\n');process.exit(0)})`;
    const children = Array.from({ length: procs }, (_, i) => spawn(process.execPath, ['-e', code, dir, `p${i}`, String(per)], { stdio: ['pipe', 'pipe', 'inherit'] }));
    const lines = children.map((child) => {
      const got: string[] = [];
      let partial = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        const parts = (partial + d).split('\n');
        partial = parts.pop()!;
        for (const line of parts) got.push(line);
        child.emit('line');
      });
      const exited = new Promise<void>((resolve, reject) => child.once('exit', (c) => (c === 0 ? resolve() : reject(new Error(`${op} process exited with ${c}`)))));
      const ready = new Promise<void>((resolve) => child.on('line', () => got.length >= 1 && resolve()));
      return { got, exited, ready };
    });
    await Promise.race([Promise.all(lines.map((l) => l.ready)), Promise.all(lines.map((l) => l.exited))]);
    const before = cpuSecondsByLabel(watched);
    const machineBefore = machineSeconds();
    const start = performance.timeOrigin + performance.now();
    for (const child of children) child.stdin.end('go\n');
    await Promise.all(lines.map((l) => l.exited));
    const after = cpuSecondsByLabel(watched);
    const machineAfter = machineSeconds();
    const ends = lines.map((l) => l.got[1]?.split(' ').map(Number) ?? []);
    const end = Math.max(...ends.map((e) => e[0]));
    if (!Number.isFinite(end) || ends.some((e) => !Number.isFinite(e[1]))) throw new Error(`${op} processes did not say when they finished`);
    const done = per * procs;
    const cpuUsPerFile: Record<string, number> = {};
    for (const [label, seconds] of after) cpuUsPerFile[label] = ((seconds - (before.get(label) ?? 0)) * 1e6) / done;
    cpuUsPerFile['load processes'] = ends.reduce((sum, e) => sum + e[1], 0) / done;
    const busy = machineAfter.busy - machineBefore.busy;
    return { rate: done / ((end - start) / 1000), cpuUsPerFile, busyShare: busy / (busy + machineAfter.idle - machineBefore.idle) };
  };
  return { create: await phase('create'), stat: await phase('stat'), unlink: await phase('unlink') };
}

/** CPU seconds (user and system) of the watched processes by label; a process gone counts nothing. */
function cpuSecondsByLabel(watched: Watched[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const { label, pid } of watched) out.set(label, (out.get(label) ?? 0) + (processCpuSeconds(pid) ?? 0));
  return out;
}

/** The whole machine's busy and idle CPU seconds since boot. */
function machineSeconds(): { busy: number; idle: number } {
  const m = machineBusySeconds();
  if (m === undefined) throw new Error('cannot read /proc/stat: the metadata phases need Linux');
  return { busy: m.processes + m.interrupts + m.steal, idle: m.idle };
}

/** One stream of putFile and getFile of `sizeMiB`, the client library without the kernel in between. */
async function nativeClient(clusterDir: string, sizeMiB: number): Promise<{ writeMiBs: number; readMiBs: number }> {
  const cluster = readLocalCluster(clusterDir)!;
  const meta = new MasterClient({ masters: cluster.processes.filter((p) => p.kind === 'master').map((p) => p.address), secret: cluster.secret, caller: rootCaller });
  const data = new DataClient({ master: meta, connect: (a) => new RpcClient(a, { secret: cluster.secret, frameBytesMax: workerFrameBytesMax }), clock: systemClock });
  try {
    const block = randomBytes(MiB);
    const blocks = function* (): Generator<Buffer> {
      for (let i = 0; i < sizeMiB; i++) yield block;
    };
    let start = performance.now();
    await putFile(meta, data, '/native', blocks());
    const writeMiBs = sizeMiB / ((performance.now() - start) / 1000);
    start = performance.now();
    const { chunks } = await getFile(meta, data, '/native');
    for await (const _ of chunks);
    const readMiBs = sizeMiB / ((performance.now() - start) / 1000);
    return { writeMiBs, readMiBs };
  } finally {
    data.close();
    meta.close();
  }
}

// Data-path throughput on a local cluster (3 masters, workers with their targets, replication 3,
// every process on this machine): sequential writes and reads with 1 and 8 client streams, and
// 4 KiB random reads with latency percentiles. Beside them, the physical limits of the same
// machine: the disk's write rate with fdatasync (dd, and fio when installed) in the directory the
// targets live in, and loopback TCP between two plain Node processes. cairn's figures are printed
// as fractions of those limits, with the CPU each kind of process used in each phase.

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { DataClient, getFile, MasterClient, putFile } from '../src/client/index.ts';
import { readLocalCluster } from '../src/cli/cluster-target.ts';
import { localDown, localUp } from '../src/cli/local.ts';
import { systemClock } from '../src/io/system-clock.ts';
import { rootCaller, type InodeAttr } from '../src/meta/index.ts';
import { RpcClient } from '../src/rpc/index.ts';
import { workerFrameBytesMax } from '../src/worker/process.ts';
import { positiveInt, positiveIntList } from './args.ts';
import { processCpuSeconds } from './cluster.ts';
import { formatNumber, Report } from './report.ts';

export const description = 'sequential write/read MiB/s (1 and 8 streams) and 4 KiB random reads on a local cluster, beside dd/fio and loopback TCP';

const MiB = 2 ** 20;
const targets = { readOfTcp: 0.5, writeOfDiskPerReplica: 0.6 };

const usage = `usage: npm run bench -- io [options]
  --size BYTES        bytes written (and read) per phase across all streams (default 4 GiB; suffixes k, m, g)
  --streams LIST      client streams, comma-separated (default 1,8)
  --random-seconds N  seconds of 4 KiB random reads (default 10)
  --random-clients N  concurrent random readers (default 16)
  --workers N         storage workers (default 3)
  --targets N         targets per worker (default 2)
  --replication N     replicas per chain (default 3)
  --chunk BYTES       chunk size of the files (default 4 MiB)
  --dir PATH          where the cluster (and the dd/fio test file) lives (default a new directory under ${tmpdir()})`;

function parseSize(text: string, flag: string): number {
  const m = /^(\d+)([kmg]?)$/i.exec(text.trim());
  if (m === null) return positiveInt(text, flag);
  return Number(m[1]) * { '': 1, k: 1024, m: MiB, g: 1024 * MiB }[m[2].toLowerCase() as '' | 'k' | 'm' | 'g'];
}

export async function run(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      size: { type: 'string', default: '4g' },
      streams: { type: 'string', default: '1,8' },
      'random-seconds': { type: 'string', default: '10' },
      'random-clients': { type: 'string', default: '16' },
      workers: { type: 'string', default: '3' },
      targets: { type: 'string', default: '2' },
      replication: { type: 'string', default: '3' },
      chunk: { type: 'string', default: '4m' },
      dir: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(usage);
    return;
  }
  const size = parseSize(values.size, '--size');
  const streams = positiveIntList(values.streams, '--streams');
  const randomSeconds = positiveInt(values['random-seconds'], '--random-seconds');
  const randomClients = positiveInt(values['random-clients'], '--random-clients');
  const workers = positiveInt(values.workers, '--workers');
  const targetsPerWorker = positiveInt(values.targets, '--targets');
  const replication = positiveInt(values.replication, '--replication');
  const chunk = parseSize(values.chunk, '--chunk');
  const dir = values.dir ?? mkdtempSync(path.join(tmpdir(), 'cairn-bench-io-'));

  const report = new Report('io');
  report.configure({ sizeBytes: size, streams: streams.join(','), randomSeconds, randomClients, workers, targetsPerWorker, replication, chunkBytes: chunk, dir });

  // dd moves by a factor of two between runs on this VM: it runs before and after the cluster's
  // phases, and the ratios are taken against the faster of the two (the conservative anchor).
  const ddBefore = ddRate(dir);
  const fio = fioRate(dir);
  const tcp = await loopbackTcp(report);
  const ratios: { name: string; value: number; of: 'disk' | 'tcp' }[] = [];

  console.log('starting the local cluster...');
  await localUp({ dir, masters: 3, workers, targetsPerWorker, replication, log: (l) => console.log(`  ${l}`) });
  const cluster = readLocalCluster(dir)!;
  const meta = new MasterClient({ masters: cluster.processes.filter((p) => p.kind === 'master').map((p) => p.address), secret: cluster.secret, caller: rootCaller });
  const data = new DataClient({ master: meta, connect: (a) => new RpcClient(a, { secret: cluster.secret, frameBytesMax: workerFrameBytesMax }), clock: systemClock });
  const cpu = new CpuMeter(cluster.processes.map((p) => ({ pid: p.pid, kind: p.kind })));
  try {
    const block = randomBytes(Math.min(chunk, 4 * MiB));
    for (const n of streams) {
      const label = `${n} stream${n === 1 ? '' : 's'}`;
      const per = Math.floor(size / n / block.length) * block.length;
      cpu.start();
      let start = performance.now();
      await Promise.all(
        Array.from({ length: n }, (_, i) =>
          putFile(meta, data, `/bench-${n}-${i}`, repeat(block, per / block.length), { layout: { chunkSizeBytes: chunk } }),
        ),
      );
      const writeMs = performance.now() - start;
      const writeMiBs = (per * n) / MiB / (writeMs / 1000);
      report.figure(`sequential write, ${label}`, writeMiBs, 'MiB/s');
      report.attach(`cpu write ${n}`, cpu.stop(writeMs));
      cpu.start();
      start = performance.now();
      await Promise.all(
        Array.from({ length: n }, async (_, i) => {
          const { chunks } = await getFile(meta, data, `/bench-${n}-${i}`);
          let got = 0;
          for await (const part of chunks) got += part.length;
          if (got !== per) throw new Error(`read ${got} bytes of /bench-${n}-${i}, wrote ${per}`);
        }),
      );
      const readMs = performance.now() - start;
      const readMiBs = (per * n) / MiB / (readMs / 1000);
      report.figure(`sequential read, ${label}`, readMiBs, 'MiB/s');
      report.attach(`cpu read ${n}`, cpu.stop(readMs));
      ratios.push({ name: `${label}: write as a share of disk / ${replication} replicas`, value: writeMiBs, of: 'disk' });
      ratios.push({ name: `${label}: read as a share of loopback TCP`, value: readMiBs, of: 'tcp' });
      console.log(`  ${n} stream(s): write ${writeMiBs.toFixed(1)} MiB/s, read ${readMiBs.toFixed(1)} MiB/s; ${cpu.describe()}`);
    }

    // Random 4 KiB reads over the largest file written.
    const file = `/bench-${streams[0]}-0`;
    const attr = await meta.query<InodeAttr>('meta.query', { op: 'stat', path: file });
    const latencies: number[] = [];
    const end = performance.now() + randomSeconds * 1000;
    cpu.start();
    const started = performance.now();
    await Promise.all(
      Array.from({ length: randomClients }, async () => {
        while (performance.now() < end) {
          const offset = Math.floor(Math.random() * (attr.sizeBytes / 4096)) * 4096;
          const index = Math.floor(offset / attr.layout!.chunkSizeBytes);
          const t0 = performance.now();
          const r = await data.readChunk(attr.layout!, attr.inodeId, index, offset - index * attr.layout!.chunkSizeBytes, 4096);
          latencies.push(performance.now() - t0);
          if (!r.found || r.data.length !== 4096) throw new Error(`random read at ${offset} returned ${r.found ? r.data.length : 'nothing'}`);
        }
      }),
    );
    const randomMs = performance.now() - started;
    latencies.sort((a, b) => a - b);
    report.figure('4 KiB random reads', latencies.length / (randomMs / 1000), 'ops/s');
    report.figure('  p50 latency', latencies[Math.floor(latencies.length * 0.5)], 'ms');
    report.figure('  p99 latency', latencies[Math.floor(latencies.length * 0.99)], 'ms');
    report.attach('cpu random', cpu.stop(randomMs));
    report.figure('client peak RSS', process.memoryUsage().rss / MiB, 'MiB');
    report.note(`targets: reads >= ${targets.readOfTcp * 100}% of loopback TCP, writes >= ${targets.writeOfDiskPerReplica * 100}% of disk rate / replication`);
  } finally {
    data.close();
    meta.close();
    await localDown(dir, () => undefined);
    if (values.dir === undefined) rmSync(dir, { recursive: true, force: true });
  }
  // The cluster's files are removed first: dd then writes where they were.
  const ddDir = values.dir ?? mkdtempSync(path.join(tmpdir(), 'cairn-bench-io-dd-'));
  const ddAfter = ddRate(ddDir);
  if (values.dir === undefined) rmSync(ddDir, { recursive: true, force: true });
  const disk = Math.max(ddBefore, ddAfter);
  report.figure('disk write, dd 4 MiB blocks + fdatasync, before', ddBefore, 'MiB/s');
  report.figure('disk write, dd 4 MiB blocks + fdatasync, after', ddAfter, 'MiB/s');
  if (fio !== undefined) report.figure('disk write, fio 4 MiB blocks, fdatasync each', fio, 'MiB/s');
  else report.note("fio is not installed: the disk rate is dd's alone (apt-get install fio adds it)");
  report.note(`ratios against the faster dd run (${disk.toFixed(0)} MiB/s) and this run's loopback TCP (${tcp.toFixed(0)} MiB/s)`);
  for (const r of ratios) report.figure(r.name, r.of === 'disk' ? r.value / (disk / replication) : r.value / tcp, 'x');
  if (fio !== undefined) {
    for (const r of ratios.filter((x) => x.of === 'disk')) report.figure(`${r.name.replace('disk', 'fio')}`, r.value / (fio / replication), 'x');
  }
  report.finish();
}

function* repeat(block: Buffer, times: number): Generator<Buffer> {
  for (let i = 0; i < times; i++) yield block;
}

/** The disk's sequential write rate with one fdatasync at the end (dd, 2 GiB in 4 MiB blocks), in MiB/s. */
function ddRate(dir: string): number {
  const file = path.join(dir, 'dd.test');
  const dd = spawnSync('dd', ['if=/dev/zero', `of=${file}`, 'bs=4M', 'count=512', 'conv=fdatasync'], { encoding: 'utf8' });
  rmSync(file, { force: true });
  // dd prints its summary on stderr: "N bytes (...) copied, S s, R MB/s".
  const m = /(\d+) bytes .* copied, ([\d.]+) s/.exec(dd.stderr ?? '');
  if (dd.status !== 0 || m === null) throw new Error(`dd failed: ${dd.stderr ?? dd.error?.message}`);
  return Number(m[1]) / MiB / Number(m[2]);
}

function fioRate(dir: string): number | undefined {
  try {
    const out = execFileSync('fio', ['--name=w', `--directory=${dir}`, '--rw=write', '--bs=4M', '--size=1G', '--fdatasync=1', '--output-format=json'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    rmSync(path.join(dir, 'w.0.0'), { force: true });
    return (JSON.parse(out) as { jobs: { write: { bw: number } }[] }).jobs[0].write.bw / 1024;
  } catch {
    return undefined;
  }
}

/** One Node process sends 1 GiB in 1 MiB writes to another over loopback TCP: MiB/s. */
async function loopbackTcp(report: Report): Promise<number> {
  const total = 1024 * MiB;
  const sink = `
    const net = require('node:net');
    const srv = net.createServer((s) => { let n = 0; s.on('data', (b) => { n += b.length; if (n >= ${total}) { s.end('done'); srv.close(); } }); });
    srv.listen(0, '127.0.0.1', () => console.log(srv.address().port));`;
  const child = spawn(process.execPath, ['-e', sink], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve) => child.stdout.once('data', (b: Buffer) => resolve(Number(b.toString().trim()))));
  const net = await import('node:net');
  const buf = Buffer.alloc(MiB, 7);
  const start = performance.now();
  await new Promise<void>((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', reject);
    s.on('data', () => resolve());
    let sent = 0;
    const pump = (): void => {
      while (sent < total) {
        sent += buf.length;
        if (!s.write(buf)) {
          s.once('drain', pump);
          return;
        }
      }
    };
    s.on('connect', pump);
  });
  const rate = total / MiB / ((performance.now() - start) / 1000);
  child.kill();
  report.figure('loopback TCP, Node to Node, 1 MiB writes', rate, 'MiB/s');
  return rate;
}

/** CPU seconds each kind of process (master, worker, this client) used during a phase. */
class CpuMeter {
  private readonly procs: { pid: number; kind: string }[];
  private before = new Map<number, number>();
  private clientBefore = process.cpuUsage();
  private last: Record<string, number> = {};

  constructor(procs: { pid: number; kind: string }[]) {
    this.procs = procs;
  }

  start(): void {
    this.before = new Map(this.procs.map((p) => [p.pid, processCpuSeconds(p.pid) ?? 0]));
    this.clientBefore = process.cpuUsage();
  }

  /** Cores used per kind during the phase (CPU seconds / wall seconds). */
  stop(wallMs: number): Record<string, number> {
    const used: Record<string, number> = {};
    for (const p of this.procs) used[p.kind] = (used[p.kind] ?? 0) + ((processCpuSeconds(p.pid) ?? 0) - (this.before.get(p.pid) ?? 0));
    const c = process.cpuUsage(this.clientBefore);
    used.client = (c.user + c.system) / 1e6;
    for (const k of Object.keys(used)) used[k] = used[k] / (wallMs / 1000);
    this.last = used;
    return used;
  }

  describe(): string {
    return `cores used: ${Object.entries(this.last).map(([k, v]) => `${k} ${formatNumber(v)}`).join(', ')}`;
  }
}



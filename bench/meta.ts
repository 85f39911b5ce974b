// Metadata operations per second through 3 cairn masters (each its own process): creates (a
// journal write each), stats and readdirs of a 1000-entry directory (each behind a ReadIndex
// barrier), with 1 and 16 concurrent clients, beside etcd doing the nearest equivalents.

import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import type { Etcd3 } from 'etcd3';
import type { MasterClient } from '../src/client/master-client.ts';
import { CairnError, ErrorCode, assert } from '../src/errors.ts';
import type { ReaddirPage } from '../src/meta/namespace-state.ts';
import { MasterCluster, ProcessGroup } from '../test/cluster/process-cluster.ts';
import { EtcdMembers, findEtcd, measureLoad, sourceState, type LoadResult, type Operation } from './cluster.ts';
import { Report, formatNumber } from './report.ts';
import { nonNegativeNumber, positiveInt, positiveIntList, positiveNumber } from './args.ts';

export const description = 'creates/s, stats/s and readdirs/s (1000 entries) with 1 and 16 clients on 3 cairn masters, beside etcd';

const memberCount = 3;
const metaDir = '/meta';
const listedDir = `${metaDir}/listed`;
/** Concurrent clients that fill the listed directory before the measurements. */
const fillClients = 16;
/** Deadline of one call, cairn's and etcd's alike. */
const callTimeoutMs = 5_000;
const etcdStatValueBytes = 128;
/** Other work using more than this many cores during a measurement is worth a warning. */
const sharedMachineCoresMin = 0.1;
const targets = { statsPerSecondMin: 65_000, createsPerSecondMin: 10_000 };

type OpName = 'create' | 'stat' | 'readdir';
const opNames: OpName[] = ['create', 'stat', 'readdir'];

interface Options {
  seconds: number;
  warmupSeconds: number;
  clients: number[];
  dirEntries: number;
  anchor: boolean;
}

const usage = `usage: npm run bench -- meta [options]
  --seconds N      measured seconds per operation and concurrency (default 5)
  --warmup N       seconds of load before each measurement (default 1)
  --clients LIST   concurrent clients, comma-separated (default 1,16)
  --dir-entries N  entries of the directory that readdir lists, limit the same (default 1000, at most 1000)
  --no-anchor      skip etcd and report cairn alone`;

function parseOptions(args: string[]): Options | undefined {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      seconds: { type: 'string', default: '5' },
      warmup: { type: 'string', default: '1' },
      clients: { type: 'string', default: '1,16' },
      'dir-entries': { type: 'string', default: '1000' },
      'no-anchor': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(usage);
    return undefined;
  }
  const dirEntries = positiveInt(values['dir-entries'], '--dir-entries');
  if (dirEntries > 1000) throw new CairnError(ErrorCode.BadOption, `--dir-entries must be at most 1000 (the masters' readdir page limit), got ${dirEntries}`);
  return {
    seconds: positiveNumber(values.seconds, '--seconds'),
    warmupSeconds: nonNegativeNumber(values.warmup, '--warmup'),
    clients: positiveIntList(values.clients, '--clients'),
    dirEntries,
    anchor: !values['no-anchor'],
  };
}




function entryName(i: number): string {
  return `f${String(i).padStart(6, '0')}`;
}

/** Runs `count` operations with `concurrency` workers, each taking the next index. */
async function fill(concurrency: number, count: number, op: (i: number, worker: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, w) => {
      while (next < count) await op(next++, w);
    }),
  );
}

type Results = Map<string, LoadResult>;

function key(op: OpName, clients: number): string {
  return `${op} x${clients}`;
}

// ---- cairn -------------------------------------------------------------------------------------

async function runCairn(procs: ProcessGroup, opts: Options): Promise<Results> {
  const masters = await MasterCluster.start(procs, { count: memberCount });
  const results: Results = new Map();
  try {
    const maxClients = Math.max(fillClients, ...opts.clients);
    const clients: MasterClient[] = Array.from({ length: maxClients }, () => masters.client({ callTimeoutMs }));
    const mkdir = (p: string): Promise<unknown> => clients[0].mutate('meta.mutate', { op: 'mkdir', path: p, mode: 0o755, uid: 0, gid: 0, parents: false });
    await mkdir(metaDir);
    await mkdir(listedDir);
    await fill(fillClients, opts.dirEntries, (i, w) => clients[w].mutate('meta.mutate', { op: 'create', path: `${listedDir}/${entryName(i)}`, mode: 0o644, uid: 0, gid: 0, exclusive: true }));
    const page = await clients[0].query<ReaddirPage>('meta.query', { op: 'readdir', path: listedDir, limit: opts.dirEntries });
    assert(page.entries.length === opts.dirEntries, `readdir of ${listedDir} gave ${page.entries.length} entries, not ${opts.dirEntries}`);

    for (const n of opts.clients) {
      const createDir = `${metaDir}/created-x${n}`;
      await mkdir(createDir);
      const ops: Record<OpName, Operation> = {
        create: (w, i) => clients[w].mutate('meta.mutate', { op: 'create', path: `${createDir}/w${w}-${i}`, mode: 0o644, uid: 0, gid: 0, exclusive: true }),
        stat: (w, i) => clients[w].query('meta.query', { op: 'stat', path: `${listedDir}/${entryName((w * 7919 + i) % opts.dirEntries)}` }),
        readdir: (w) => clients[w].query('meta.query', { op: 'readdir', path: listedDir, limit: opts.dirEntries }),
      };
      for (const op of opNames) {
        console.log(`cairn: ${op} with ${n} client(s) for ${opts.warmupSeconds} + ${opts.seconds} s...`);
        results.set(key(op, n), await measureLoad(n, opts.seconds, opts.warmupSeconds, ops[op], masters.pids()));
      }
    }
    return results;
  } catch (err) {
    console.error(await masters.logTails());
    throw err;
  } finally {
    masters.closeClients();
  }
}

// ---- etcd --------------------------------------------------------------------------------------

async function runEtcd(procs: ProcessGroup, binary: string, opts: Options): Promise<Results> {
  const etcd = await EtcdMembers.start(procs, binary, memberCount);
  const results: Results = new Map();
  try {
    const client: Etcd3 = etcd.client(etcd.endpoints(), undefined, callTimeoutMs);
    const attr = 'a'.repeat(etcdStatValueBytes);
    await fill(fillClients, opts.dirEntries, (i) => client.put(`meta/listed/${entryName(i)}`).value(attr).exec());
    const listed = await client.getAll().prefix('meta/listed/').limit(opts.dirEntries).keys();
    assert(listed.length === opts.dirEntries, `etcd range gave ${listed.length} keys, not ${opts.dirEntries}`);
    for (const n of opts.clients) {
      const ops: Record<OpName, Operation> = {
        create: (w, i) => client.put(`meta/created-x${n}/w${w}-${i}`).value(attr).exec(),
        stat: (w, i) => client.get(`meta/listed/${entryName((w * 7919 + i) % opts.dirEntries)}`).string(),
        readdir: () => client.getAll().prefix('meta/listed/').limit(opts.dirEntries).keys(),
      };
      for (const op of opNames) {
        console.log(`etcd: ${op} with ${n} client(s) for ${opts.warmupSeconds} + ${opts.seconds} s...`);
        results.set(key(op, n), await measureLoad(n, opts.seconds, opts.warmupSeconds, ops[op], etcd.pids()));
      }
    }
    return results;
  } catch (err) {
    console.error(await etcd.logTails());
    throw err;
  } finally {
    etcd.closeClients();
  }
}

// ---- report ------------------------------------------------------------------------------------

const units: Record<OpName, string> = { create: 'creates/s', stat: 'stats/s', readdir: 'readdirs/s' };

function reportSystem(report: Report, label: string, results: Results): void {
  for (const [k, r] of results) {
    const op = k.split(' ')[0] as OpName;
    report.figure(`${label}: ${k}`, r.opsPerSecond, units[op]);
    report.figure(`${label}: ${k} latency p50`, r.latencyMs.p50, 'ms');
    report.figure(`${label}: ${k} latency p99`, r.latencyMs.p99, 'ms');
    if (r.errors > 0) report.figure(`${label}: ${k} failed`, r.errors, 'ops');
    for (const e of r.errorSamples) report.note(`${label} ${k} error: ${e}`);
    const cpu = Object.entries(r.cpuCores).map(([name, cores]) => `${name} ${formatNumber(cores)}`).join(', ');
    report.note(`${label} ${k}: CPU in cores: ${cpu}`);
    const others = r.cpuCores['other processes'] ?? 0;
    if (others > sharedMachineCoresMin) report.note(`${label} ${k}: other processes used ${formatNumber(others)} cores: the machine was shared, the figure is low`);
  }
}

function reportTargets(report: Report, cairn: Results, clients: number[]): void {
  const best = (op: OpName): { rate: number; n: number } => {
    const all = clients.map((n) => ({ rate: cairn.get(key(op, n))!.opsPerSecond, n }));
    return all.reduce((a, b) => (b.rate > a.rate ? b : a));
  };
  const stats = best('stat');
  const creates = best('create');
  const met = (ok: boolean): string => (ok ? 'met' : 'NOT met');
  report.note(`target: stats >= ${formatNumber(targets.statsPerSecondMin)}/s: best measured ${formatNumber(stats.rate)}/s (${stats.n} clients): ${met(stats.rate >= targets.statsPerSecondMin)}`);
  report.note(`target: creates >= ${formatNumber(targets.createsPerSecondMin)}/s: best measured ${formatNumber(creates.rate)}/s (${creates.n} clients): ${met(creates.rate >= targets.createsPerSecondMin)}`);
}

export async function run(args: string[]): Promise<void> {
  const opts = parseOptions(args);
  if (opts === undefined) return;
  const report = new Report('meta');
  report.note(`load average before the run (1, 5, 15 min): ${loadavg().map((l) => l.toFixed(2)).join(', ')} on ${cpus().length} CPUs`);
  const procs = await ProcessGroup.create('cairn-bench-meta');
  try {
    const etcd = opts.anchor ? findEtcd((l) => console.log(l)) : undefined;
    report.configure({
      source: sourceState(),
      cairn: `${memberCount} masters (cairn master, default settings), each its own process on 127.0.0.1; one MasterClient (own connection) per client`,
      create: `meta.mutate create of a new file (exclusive) in a directory per concurrency level: one journal write`,
      stat: `meta.query stat of one of the ${opts.dirEntries} files of ${listedDir}: a ReadIndex barrier on the leader, then a local read`,
      readdir: `meta.query readdir of ${listedDir} (${opts.dirEntries} entries: name, inode id, type), limit ${opts.dirEntries}: a ReadIndex barrier, then a local read`,
      etcd: etcd === undefined ? 'not run' : 'missing' in etcd ? `not run: ${etcd.missing}` : `${memberCount} members, ${etcd.version}, stock settings; one etcd3 client for all concurrent callers`,
      'etcd ops': `create = put of a new key (${etcdStatValueBytes}-byte value); stat = linearizable get of one of ${opts.dirEntries} keys (${etcdStatValueBytes}-byte values); readdir = keys-only range over the ${opts.dirEntries} keys, limit ${opts.dirEntries}`,
      clients: `${opts.clients.join(' and ')} concurrent, closed loop`,
      'measured seconds': opts.seconds,
      'warm-up seconds': opts.warmupSeconds,
      'data directories': procs.root,
    });
    const cairn = await runCairn(procs, opts);
    let anchor: Results | undefined;
    if (etcd !== undefined && 'missing' in etcd) report.note(`anchor: ${etcd.missing}; cairn's figures stand alone`);
    else if (etcd !== undefined) anchor = await runEtcd(procs, etcd.binary, opts);
    reportSystem(report, 'cairn', cairn);
    if (anchor !== undefined) {
      reportSystem(report, 'etcd', anchor);
      for (const k of cairn.keys()) report.figure(`ratio cairn / etcd: ${k}`, cairn.get(k)!.opsPerSecond / anchor.get(k)!.opsPerSecond, 'x');
      report.attach('etcd', Object.fromEntries(anchor));
    }
    reportTargets(report, cairn, opts.clients);
    report.attach('cairn', Object.fromEntries(cairn));
    report.attach('targets', targets);
    report.finish();
  } finally {
    await procs.close();
  }
}

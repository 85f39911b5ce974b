// Overload: ten times the client count of the standard benchmarks (the journal bench's 64 writers:
// 640 here), each client on its own connection, against a local cluster of 3 masters and 3 workers
// with default limits. Three phases: creates (each client keeps several in flight), a flood of
// connections from one address, and 1 MiB chunk writes. It counts what was answered, refused with
// CAIRN_OVERLOADED and failed otherwise; samples every process's RSS each second (and reads the
// kernel's peak, VmHWM, at the end) against a bound stated from the limits; checks that no process
// died; and afterwards that every answered create and write is there and no refused one is.

import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { crc32c } from '@node-rs/crc32';
import { DataClient, MasterClient } from '../src/client/index.ts';
import { readLocalCluster, type LocalProcess } from '../src/cli/cluster-target.ts';
import { localDown, localUp } from '../src/cli/local.ts';
import { systemClock } from '../src/io/system-clock.ts';
import { masterLimitsDefault } from '../src/master/index.ts';
import { rootCaller, type DirEntry, type InodeAttr, type Layout, type ReaddirPage } from '../src/meta/index.ts';
import { CairnError, ErrorCode } from '../src/errors.ts';
import { RpcClient, RpcErrorCode } from '../src/rpc/index.ts';
import { workerFrameBytesMax, workerLimitsDefault } from '../src/worker/process.ts';
import { WorkerMethod, type WriteRequest } from '../src/worker/protocol.ts';
import { sleep } from '../test/cluster/process-cluster.ts';
import { measureLoad, sourceState, type LoadResult, type WindowHooks } from './cluster.ts';
import { nonNegativeNumber, positiveInt, positiveNumber } from './args.ts';
import { formatNumber, Report } from './report.ts';

export const description = '640 clients (10x the standard 64), each on its own connection, on a local cluster with default limits: OVERLOADED refusals, peak RSS against a stated bound, no crash, no lost write';

const MiB = 2 ** 20;
/**
 * What a process needs beyond the memory its limits let requests take: the Node runtime and code,
 * its in-memory state after a run of this length (the namespace, the Raft log), sockets' buffers.
 */
const processAllowanceBytes = 384 * MiB;
/** Read buffers a worker keeps idle between reads (src/worker/replication.ts). */
const workerReadPoolIdleBytes = 128 * MiB;
/** Backoff after a refusal, doubling up to its maximum, as the client library's (master-calls.ts, data-client.ts). */
const metaBackoffMs = { min: 10, max: 200 };
const dataBackoffMs = { min: 50, max: 1_000 };
const metaCallTimeoutMs = 5_000;
const dataCallTimeoutMs = 15_000;
const verifyConcurrency = 16;
const workerCount = 3;
/** Other work using more than this many cores during a measurement is worth a warning. */
const sharedMachineCoresMin = 0.1;

interface Options {
  clients: number;
  pipeline: number;
  seconds: number;
  warmupSeconds: number;
  writeBytes: number;
  flood: number;
  phases: ReadonlySet<string>;
  dir: string | undefined;
}

const phaseNames = ['creates', 'flood', 'writes'];

const usage = `usage: npm run bench -- overload [options]
  --clients N    concurrent clients, each with its own connection (default 640: 10x the journal bench's 64 writers)
  --pipeline N   creates each client keeps in flight (default 4)
  --seconds N    measured seconds of each load phase (default 30)
  --warmup N     seconds of load before each measurement (default 2)
  --write-kib N  bytes of each chunk write, in KiB (default 1024)
  --flood N      connections one address opens at once in the flood phase (default 1500)
  --phases LIST  which phases run, comma-separated (default creates,flood,writes)
  --dir PATH     where the cluster lives (default a new directory under ${tmpdir()}, removed afterwards)`;

function parseOptions(args: string[]): Options | undefined {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      clients: { type: 'string', default: '640' },
      pipeline: { type: 'string', default: '4' },
      seconds: { type: 'string', default: '30' },
      warmup: { type: 'string', default: '2' },
      'write-kib': { type: 'string', default: '1024' },
      flood: { type: 'string', default: '1500' },
      phases: { type: 'string', default: phaseNames.join(',') },
      dir: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(usage);
    return undefined;
  }
  return {
    clients: positiveInt(values.clients, '--clients'),
    pipeline: positiveInt(values.pipeline, '--pipeline'),
    seconds: positiveNumber(values.seconds, '--seconds'),
    warmupSeconds: nonNegativeNumber(values.warmup, '--warmup'),
    writeBytes: positiveInt(values['write-kib'], '--write-kib') * 1024,
    flood: positiveInt(values.flood, '--flood'),
    phases: parsePhases(values.phases),
    dir: values.dir,
  };
}

function parsePhases(text: string): Set<string> {
  const phases = new Set(text.split(',').map((p) => p.trim()));
  for (const p of phases) if (!phaseNames.includes(p)) throw new CairnError(ErrorCode.BadOption, `--phases takes ${phaseNames.join(', ')}, got "${p}"`);
  return phases;
}

// ---- counting ----------------------------------------------------------------------------------

type Outcome = 'ok' | 'overloaded' | 'other';

/** Every operation's outcome over the whole phase, and over the measured window (hooks). */
class Tally implements WindowHooks {
  readonly all: Record<Outcome, number> = { ok: 0, overloaded: 0, other: 0 };
  private atWindowStart: Record<Outcome, number> = { ok: 0, overloaded: 0, other: 0 };
  window: Record<Outcome, number> = { ok: 0, overloaded: 0, other: 0 };
  readonly otherSamples: string[] = [];

  count(outcome: Outcome, err?: unknown): void {
    this.all[outcome]++;
    if (outcome !== 'other') return;
    const msg = `${(err as { code?: string }).code ?? ''} ${(err as Error).message ?? String(err)}`.trim();
    if (this.otherSamples.length < 5 && !this.otherSamples.includes(msg)) this.otherSamples.push(msg);
  }

  atStart(): void {
    this.atWindowStart = { ...this.all };
  }

  atEnd(): void {
    this.window = { ok: this.all.ok - this.atWindowStart.ok, overloaded: this.all.overloaded - this.atWindowStart.overloaded, other: this.all.other - this.atWindowStart.other };
  }
}

function outcomeOf(err: unknown): Outcome {
  return (err as { code?: string }).code === RpcErrorCode.Overloaded ? 'overloaded' : 'other';
}

/** Exponential backoff after consecutive refusals, with jitter over its upper half. */
class Backoff {
  private readonly range: { min: number; max: number };
  private next: number;

  constructor(range: { min: number; max: number }) {
    this.range = range;
    this.next = range.min;
  }

  async wait(): Promise<void> {
    const ms = this.next / 2 + Math.random() * (this.next / 2);
    this.next = Math.min(this.next * 2, this.range.max);
    await sleep(ms);
  }

  reset(): void {
    this.next = this.range.min;
  }
}

// ---- memory ------------------------------------------------------------------------------------

/** A process's resident set, sampled every second; VmHWM (the kernel's peak) read at the end. */
class RssSampler {
  readonly maxSampledBytes = new Map<number, number>();
  private readonly procs: LocalProcess[];
  private readonly timer: NodeJS.Timeout;

  constructor(procs: LocalProcess[]) {
    this.procs = procs;
    this.sample();
    this.timer = setInterval(() => this.sample(), 1_000);
  }

  private sample(): void {
    for (const p of this.procs) {
      const rss = statusBytes(p.pid, 'VmRSS');
      if (rss !== undefined) this.maxSampledBytes.set(p.pid, Math.max(rss, this.maxSampledBytes.get(p.pid) ?? 0));
    }
  }

  stop(): void {
    clearInterval(this.timer);
    this.sample();
  }
}

/** A field of /proc/PID/status in bytes (Linux); undefined once the process is gone. */
function statusBytes(pid: number, field: 'VmRSS' | 'VmHWM'): number | undefined {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m === null ? undefined : Number(m[1]) * 1024;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

// ---- phases ------------------------------------------------------------------------------------

interface MetaPhase {
  load: LoadResult;
  tally: Tally;
  acked: string[];
  refused: string[];
  /** CAIRN_NOT_LEADER answers: leadership moved, and the client went to the new leader. */
  redirects: number;
}

/** Creates, `pipeline` in flight per client, each client on its own connection to the leader (it follows a new one). */
async function metaPhase(opts: Options, leader: string, secret: string, pids: Record<string, number>): Promise<MetaPhase> {
  const conns = Array.from({ length: opts.clients }, () => ({ address: leader, rpc: new RpcClient(leader, { secret }) }));
  let redirects = 0;
  const follow = (client: number, err: unknown): void => {
    const to = (err as { details?: { leader?: { address?: unknown } } }).details?.leader?.address;
    if ((err as { code?: string }).code !== ErrorCode.NotLeader) return;
    redirects++;
    if (typeof to !== 'string' || to === conns[client].address) return;
    conns[client].rpc.close();
    conns[client] = { address: to, rpc: new RpcClient(to, { secret }) };
  };
  const tally = new Tally();
  const acked: string[] = [];
  const refused: string[] = [];
  const loops = opts.clients * opts.pipeline;
  const seqs = new Array<number>(loops).fill(0);
  const backoffs = Array.from({ length: loops }, () => new Backoff(metaBackoffMs));
  try {
    const load = await measureLoad(loops, opts.seconds, opts.warmupSeconds, async (w, n) => {
      const client = w % opts.clients;
      const lane = Math.floor(w / opts.clients);
      const p = `/ov/c${client}/l${lane}-${n}`;
      try {
        await conns[client].rpc.call('meta.mutate', { op: 'create', path: p, mode: 0o644, uid: 0, gid: 0, exclusive: true, caller: rootCaller, clientId: `ov-${client}-${lane}`, seq: ++seqs[w] }, { timeoutMs: metaCallTimeoutMs });
      } catch (err) {
        follow(client, err);
        const outcome = outcomeOf(err);
        tally.count(outcome, err);
        if (outcome === 'overloaded') refused.push(p);
        await backoffs[w].wait();
        throw err;
      }
      tally.count('ok');
      acked.push(p);
      backoffs[w].reset();
    }, pids, tally);
    return { load, tally, acked, refused, redirects };
  } finally {
    for (const c of conns) c.rpc.close();
  }
}

/** `count` connections from this address to one server, opened at once, each making one call. */
async function floodPhase(count: number, address: string, secret: string): Promise<Tally> {
  const conns = Array.from({ length: count }, () => new RpcClient(address, { secret }));
  const tally = new Tally();
  try {
    await Promise.all(conns.map((c) => c.call('master.ping', {}, { timeoutMs: 30_000 }).then(() => tally.count('ok'), (err: unknown) => tally.count(outcomeOf(err), err))));
    return tally;
  } finally {
    for (const c of conns) c.close();
  }
}

interface FileOf {
  inodeId: number;
  layout: Layout;
}

interface Written {
  file: FileOf;
  index: number;
  crc: number;
}

interface DataPhase {
  load: LoadResult;
  tally: Tally;
  acked: Written[];
  refused: Written[];
}

/** One chunk write at a time per client, to its own file's chunks in turn, on its own connections to the heads. */
async function dataPhase(opts: Options, data: DataClient, files: FileOf[], secret: string, pids: Record<string, number>): Promise<DataPhase> {
  const routing = await data.routing();
  const conns = files.map(() => new Map<string, RpcClient>());
  const connTo = (client: number, address: string): RpcClient => {
    let c = conns[client].get(address);
    if (c === undefined) conns[client].set(address, (c = new RpcClient(address, { secret, frameBytesMax: workerFrameBytesMax })));
    return c;
  };
  // One buffer per client, stamped with (client, index) before each write: every chunk is distinct.
  const base = randomBytes(opts.writeBytes);
  const buffers = files.map(() => Buffer.from(base));
  const tally = new Tally();
  const acked: Written[] = [];
  const refused: Written[] = [];
  const backoffs = files.map(() => new Backoff(dataBackoffMs));
  try {
    const load = await measureLoad(files.length, opts.seconds, opts.warmupSeconds, async (w, index) => {
      const file = files[w];
      const buf = buffers[w];
      buf.writeUInt32BE(w, 0);
      buf.writeUInt32BE(index, 4);
      const crc = crc32c(buf);
      const chainId = data.chainOf(routing, file.layout, index);
      const head = routing.writeMembers(chainId)[0];
      const body: WriteRequest = { chainId, chainVersion: routing.chain(chainId)!.version, inodeId: file.inodeId, index, offset: 0, crc32c: crc, writeId: randomBytes(8).toString('hex') };
      try {
        await connTo(w, routing.workerAddress(head.workerId)!).call(WorkerMethod.write, body, { payload: buf, timeoutMs: dataCallTimeoutMs });
      } catch (err) {
        const outcome = outcomeOf(err);
        tally.count(outcome, err);
        if (outcome === 'overloaded') refused.push({ file, index, crc });
        await backoffs[w].wait();
        throw err;
      }
      tally.count('ok');
      acked.push({ file, index, crc });
      backoffs[w].reset();
    }, pids, tally);
    return { load, tally, acked, refused };
  } finally {
    for (const m of conns) for (const c of m.values()) c.close();
  }
}

// ---- verification ------------------------------------------------------------------------------

/** Runs `fn` over `items` with `concurrency` at a time. */
async function forEachLimited<T>(items: T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < items.length) await fn(items[next++]);
  }));
}

/** Every name in a directory, page by page. */
async function listAll(meta: MasterClient, dir: string): Promise<string[]> {
  const names: string[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await meta.query<ReaddirPage>('meta.query', { op: 'readdir', path: dir, limit: 1000, ...(after === undefined ? {} : { after }) });
    names.push(...page.entries.map((e: DirEntry) => `${dir}/${e.name}`));
    if (page.next === undefined) return names;
    after = page.next;
  }
}

interface Check {
  ackedPresent: number;
  ackedMissing: number;
  refusedPresent: number;
  /** Present but never answered (a timed-out call that took effect): allowed, reported. */
  unanswered: number;
}

async function checkCreates(meta: MasterClient, clients: number, phase: MetaPhase): Promise<Check> {
  const present = new Set<string>();
  await forEachLimited(Array.from({ length: clients }, (_, c) => `/ov/c${c}`), verifyConcurrency, async (dir) => {
    // The phase's files are named l<lane>-<n>; the data phase's one file per client is not one of them.
    for (const p of await listAll(meta, dir)) if (p.startsWith(`${dir}/l`)) present.add(p);
  });
  const acked = new Set(phase.acked);
  const ackedPresent = phase.acked.filter((p) => present.has(p)).length;
  return {
    ackedPresent,
    ackedMissing: phase.acked.length - ackedPresent,
    refusedPresent: phase.refused.filter((p) => present.has(p)).length,
    unanswered: [...present].filter((p) => !acked.has(p)).length,
  };
}

async function checkWrites(data: DataClient, opts: Options, phase: DataPhase): Promise<Check & { wrong: number }> {
  const check = { ackedPresent: 0, ackedMissing: 0, refusedPresent: 0, unanswered: 0, wrong: 0 };
  await forEachLimited(phase.acked, verifyConcurrency, async (w) => {
    const r = await data.readChunk(w.file.layout, w.file.inodeId, w.index, 0, opts.writeBytes);
    if (!r.found) check.ackedMissing++;
    else if (crc32c(r.data) !== w.crc) check.wrong++;
    else check.ackedPresent++;
  });
  await forEachLimited(phase.refused, verifyConcurrency, async (w) => {
    if ((await data.readChunk(w.file.layout, w.file.inodeId, w.index, 0, opts.writeBytes)).found) check.refusedPresent++;
  });
  return check;
}

// ---- the run -----------------------------------------------------------------------------------

async function leaderOf(masters: string[], secret: string): Promise<string> {
  for (let attempt = 0; attempt < 100; attempt++) {
    for (const a of masters) {
      const c = new RpcClient(a, { secret });
      try {
        const r = await c.call<{ isLeader: boolean }>('master.ping', {}, { timeoutMs: 2_000 });
        if (r.body.isLeader) return a;
      } catch {
        // not answering: ask the next
      } finally {
        c.close();
      }
    }
    await sleep(100);
  }
  throw new Error('no master says it leads');
}

function reportPhase(report: Report, label: string, load: LoadResult, tally: Tally): void {
  const w = tally.window;
  report.figure(`${label}: answered`, w.ok / load.seconds, 'ops/s');
  report.figure(`${label}: refused with CAIRN_OVERLOADED`, w.overloaded / load.seconds, 'ops/s');
  report.figure(`${label}: other errors`, w.other, 'ops');
  report.figure(`${label}: latency of answered p50`, load.latencyMs.p50, 'ms');
  report.figure(`${label}: latency of answered p99`, load.latencyMs.p99, 'ms');
  report.figure(`${label}: latency of answered max`, load.latencyMs.max, 'ms');
  report.note(`${label}: whole phase (warm-up and tail included): ${tally.all.ok} answered, ${tally.all.overloaded} refused, ${tally.all.other} other errors`);
  for (const e of tally.otherSamples) report.note(`${label}: other error: ${e}`);
  const cpu = Object.entries(load.cpuCores).map(([name, cores]) => `${name} ${formatNumber(cores)}`).join(', ');
  report.note(`${label}: CPU in cores: ${cpu}`);
  const others = load.cpuCores['other processes'] ?? 0;
  if (others > sharedMachineCoresMin) report.note(`${label}: other processes used ${formatNumber(others)} cores: the machine was shared`);
}

export async function run(args: string[]): Promise<void> {
  const opts = parseOptions(args);
  if (opts === undefined) return;
  const report = new Report('overload');
  report.note(`load average before the run (1, 5, 15 min): ${loadavg().map((l) => l.toFixed(2)).join(', ')} on ${cpus().length} CPUs`);
  const dir = opts.dir ?? mkdtempSync(path.join(tmpdir(), 'cairn-bench-overload-'));
  const masterBoundBytes = masterLimitsDefault.requestBytesMax + processAllowanceBytes;
  // A worker's forwards are writes the other workers took as heads: at most their request memory.
  const forwardsBoundBytes = (workerCount - 1) * workerLimitsDefault.requestBytesMax;
  const workerBoundBytes = workerLimitsDefault.requestBytesMax + forwardsBoundBytes + workerLimitsDefault.readBytesMax + workerReadPoolIdleBytes + processAllowanceBytes;
  report.configure({
    source: sourceState(),
    cluster: '3 masters (Raft journal) and 3 workers x 2 targets, replication 3 (2 chains), `cairn local up` with default settings and limits, each its own process on 127.0.0.1',
    'master limits': `pendingCallsMax ${masterLimitsDefault.pendingCallsMax}, request memory ${masterLimitsDefault.requestBytesMax / MiB} MiB (wait ${masterLimitsDefault.requestWaitMs} ms), connections ${masterLimitsDefault.connectionsMax} (${masterLimitsDefault.connectionsPerAddressMax} per address)`,
    'worker limits': `request memory ${workerLimitsDefault.requestBytesMax / MiB} MiB for clients' requests (wait ${workerLimitsDefault.requestWaitMs} ms), read memory ${workerLimitsDefault.readBytesMax / MiB} MiB, connections ${workerLimitsDefault.connectionsMax} (${workerLimitsDefault.connectionsPerAddressMax} per address)`,
    clients: `${opts.clients}, each with its own connection(s): 10x the journal bench's 64 writers`,
    'phase 1, creates': `each client keeps ${opts.pipeline} creates in flight (${opts.clients * opts.pipeline} offered at once) on its connection to the leader; raw meta.mutate, no retries; a refusal or error backs off ${metaBackoffMs.min}..${metaBackoffMs.max} ms, the next create takes a new name, CAIRN_NOT_LEADER sends the client to the new leader`,
    'phase 2, flood': `${opts.flood} connections from 127.0.0.1 to the leader at once, one master.ping each`,
    'phase 3, writes': `each client writes ${opts.writeBytes / 1024} KiB chunks of its own file, one at a time, straight to the chain's head; a refusal or error backs off ${dataBackoffMs.min}..${dataBackoffMs.max} ms and the next write takes the next chunk`,
    'measured seconds': opts.seconds,
    'warm-up seconds': opts.warmupSeconds,
    'memory bound, master': `${masterBoundBytes / MiB} MiB RSS: request memory + ${processAllowanceBytes / MiB} MiB for the runtime and state`,
    'memory bound, worker': `${workerBoundBytes / MiB} MiB RSS: request memory + forwards (the other ${workerCount - 1} workers' request memory) + read memory + ${workerReadPoolIdleBytes / MiB} MiB idle read buffers + ${processAllowanceBytes / MiB} MiB`,
    'data directory': dir,
  });

  console.log('starting the local cluster...');
  await localUp({ dir, masters: 3, workers: workerCount, targetsPerWorker: 2, replication: 3, log: (l) => console.log(`  ${l}`) });
  const cluster = readLocalCluster(dir)!;
  const procs = cluster.processes;
  const pids = Object.fromEntries(procs.map((p) => [`${p.kind} ${p.id}`, p.pid]));
  const rss = new RssSampler(procs);
  const meta = new MasterClient({ masters: procs.filter((p) => p.kind === 'master').map((p) => p.address), secret: cluster.secret, deadlineMs: 60_000, caller: rootCaller });
  const data = new DataClient({ master: meta, connect: (a) => new RpcClient(a, { secret: cluster.secret, frameBytesMax: workerFrameBytesMax }), clock: systemClock });
  try {
    await meta.mutate('meta.mutate', { op: 'mkdir', path: '/ov', mode: 0o755, uid: 0, gid: 0 });
    await forEachLimited(Array.from({ length: opts.clients }, (_, c) => c), verifyConcurrency, async (c) => {
      await meta.mutate('meta.mutate', { op: 'mkdir', path: `/ov/c${c}`, mode: 0o755, uid: 0, gid: 0 });
    });
    const masters = procs.filter((p) => p.kind === 'master').map((p) => p.address);
    const checks: boolean[] = [];
    const phases: Record<string, unknown> = {};

    if (opts.phases.has('creates')) {
      console.log(`phase 1: ${opts.clients} clients x ${opts.pipeline} creates for ${opts.warmupSeconds} + ${opts.seconds} s...`);
      const creates = await metaPhase(opts, await leaderOf(masters, cluster.secret), cluster.secret, pids);
      reportPhase(report, 'creates', creates.load, creates.tally);
      if (creates.redirects > 0) report.note(`creates: ${creates.redirects} answered CAIRN_NOT_LEADER (leadership moved during the phase; counted among other errors, the client followed it)`);
      console.log('verifying every answered create...');
      const check = await checkCreates(meta, opts.clients, creates);
      report.figure('creates: answered and present', check.ackedPresent, `of ${creates.acked.length}`);
      report.figure('creates: answered but missing (lost)', check.ackedMissing, 'files');
      report.figure('creates: refused but present', check.refusedPresent, 'files');
      report.note(`creates: ${check.unanswered} files present whose create had no answer (timed out, or in flight at the end)`);
      checks.push(check.ackedMissing === 0 && check.refusedPresent === 0);
      phases.creates = { load: creates.load, whole: creates.tally.all, window: creates.tally.window, check };
      // Let the leader see this phase's connections close, so that the flood finds the places they held.
      await sleep(1_000);
    }

    if (opts.phases.has('flood')) {
      console.log(`phase 2: ${opts.flood} connections at once...`);
      const flood = await floodPhase(opts.flood, await leaderOf(masters, cluster.secret), cluster.secret);
      const after = await meta.query<InodeAttr>('meta.query', { op: 'stat', path: '/ov' });
      report.figure('flood: connections answered', flood.all.ok, 'connections');
      report.figure('flood: connections refused with CAIRN_OVERLOADED', flood.all.overloaded, 'connections');
      report.figure('flood: other errors', flood.all.other, 'connections');
      for (const e of flood.otherSamples) report.note(`flood: other error: ${e}`);
      report.note(`flood: the leader answered a stat afterwards (/ov, inode ${after.inodeId})`);
      phases.flood = flood.all;
    }

    if (opts.phases.has('writes')) {
      console.log('phase 3: files for the writers...');
      const files: FileOf[] = new Array(opts.clients);
      await forEachLimited(Array.from({ length: opts.clients }, (_, c) => c), verifyConcurrency, async (c) => {
        const p = `/ov/c${c}/data`;
        await meta.mutate('meta.mutate', { op: 'create', path: p, mode: 0o644, uid: 0, gid: 0, exclusive: true });
        const attr = await meta.query<InodeAttr>('meta.query', { op: 'stat', path: p });
        files[c] = { inodeId: attr.inodeId, layout: attr.layout! };
      });
      console.log(`phase 3: ${opts.clients} clients writing ${opts.writeBytes / 1024} KiB chunks for ${opts.warmupSeconds} + ${opts.seconds} s...`);
      const writes = await dataPhase(opts, data, files, cluster.secret, pids);
      reportPhase(report, 'writes', writes.load, writes.tally);
      report.figure('writes: answered bytes', (writes.tally.window.ok * opts.writeBytes) / MiB / writes.load.seconds, 'MiB/s');
      console.log('verifying every answered write...');
      const check = await checkWrites(data, opts, writes);
      report.figure('writes: answered and present with their checksum', check.ackedPresent, `of ${writes.acked.length}`);
      report.figure('writes: answered but missing or different (lost)', check.ackedMissing + check.wrong, 'chunks');
      report.figure('writes: refused but present', check.refusedPresent, 'chunks');
      checks.push(check.ackedMissing + check.wrong === 0 && check.refusedPresent === 0);
      phases.writes = { load: writes.load, whole: writes.tally.all, window: writes.tally.window, check };
    }

    rss.stop();
    const dead = procs.filter((p) => !alive(p.pid));
    const rows: string[][] = [];
    let overBound = 0;
    for (const p of procs) {
      const bound = p.kind === 'master' ? masterBoundBytes : workerBoundBytes;
      const sampled = rss.maxSampledBytes.get(p.pid) ?? NaN;
      const peak = statusBytes(p.pid, 'VmHWM') ?? sampled;
      if (!(peak <= bound)) overBound++;
      rows.push([`${p.kind} ${p.id}`, formatNumber(sampled / MiB), formatNumber(peak / MiB), formatNumber(bound / MiB), peak <= bound ? 'yes' : 'NO', alive(p.pid) ? 'yes' : 'NO']);
    }
    report.table('memory (MiB) and liveness of each process over the whole run (verification included)', ['process', 'max RSS sampled each second', 'peak RSS (VmHWM)', 'bound', 'under bound', 'alive'], rows);
    report.figure('processes over their memory bound', overBound, 'processes');
    report.figure('processes that died', dead.length, 'processes');
    report.figure('bench client peak RSS', (statusBytes(process.pid, 'VmHWM') ?? NaN) / MiB, 'MiB');
    const verdict = dead.length === 0 && overBound === 0 && checks.every((ok) => ok);
    report.note(`verdict: ${verdict ? 'every process alive and under its bound; nothing answered was lost, nothing refused took effect' : 'FAILED: see the figures above'}`);
    report.attach('phases', phases);
    report.attach('rssBytes', Object.fromEntries(procs.map((p) => [`${p.kind} ${p.id}`, { sampledMax: rss.maxSampledBytes.get(p.pid), peak: statusBytes(p.pid, 'VmHWM') }])));
  } finally {
    rss.stop();
    data.close();
    meta.close();
    await localDown(dir, () => undefined);
    if (opts.dir === undefined) rmSync(dir, { recursive: true, force: true });
  }
  report.finish();
}

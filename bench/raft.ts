// Committed entries per second through a 3-node Raft cluster driven synchronously in one process,
// with no disk and no network: what the core itself costs per entry, batched and unbatched, beside
// a plain byte-copy loop as the anchor (there is no external anchor for an in-memory core).

import { parseArgs } from 'node:util';
import { CairnError, ErrorCode, assert } from '../src/errors.ts';
import { Raft, type RaftConfig } from '../src/raft/raft.ts';
import { snapshotBytes } from '../src/raft/snapshot-data.ts';
import { EntryType, Role, type Entry, type NodeId } from '../src/raft/types.ts';
import { Prng } from '../src/sim/prng.ts';
import { Report } from './report.ts';
import { positiveInt } from './args.ts';

export const description = 'committed entries/s through a 3-node in-memory Raft cluster (no disk), batched vs one-per-cycle, with a copy-loop anchor';

const voterIds: NodeId[] = [1, 2, 3];
/** A round that has not settled after this many ready cycles is a livelock, not a slow run. */
const settleCyclesMax = 10_000;
const electionTicksMax = 1_000;
/** Entries kept behind a compaction, as a driver keeps some for slightly lagging followers. */
const compactKeepEntries = 1_000;
/** Distinct payloads proposed in turn: the core never copies entry data, so reuse is fair. */
const payloadPoolSize = 256;
const bytesPerMB = 1e6;
const anchorWarmups = 3;
const anchorTrialsMin = 5;
/** The anchor copies this many times the batched trial's entries, so that a trial outlasts a GC pause. */
const anchorEntriesFactor = 5;

interface Options {
  entries: number;
  trials: number;
  warmupEntries: number;
  batchEntries: number;
  unbatchedEntries: number;
  entryBytes: number;
  compactEveryEntries: number;
  /** Passed to RaftConfig when set: lower it to watch CAIRN_BUSY back-pressure at work. */
  uncommittedBytesMax: number | undefined;
  seed: number;
}

const usage = `usage: npm run bench -- raft [options]
  --entries N            committed entries per trial, batched (default 200000)
  --unbatched-entries N  committed entries per trial, one proposal per round (default 200000)
  --trials N             measured trials of each configuration; the median is reported (default 3)
  --warmup N             entries committed before the trials of each configuration (default 50000)
  --batch N              proposals per round in the batched run (default 256)
  --entry-bytes N        payload bytes per entry (default 128)
  --compact-every N      compact each log when this many entries are applied past its start (default 10000)
  --uncommitted-bytes-max N  the leader's back-pressure limit (default: RaftConfig's)
  --seed N               seed of the election randomness and payloads (default 1)`;

function parseOptions(args: string[]): Options | undefined {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      entries: { type: 'string', default: '200000' },
      'unbatched-entries': { type: 'string', default: '200000' },
      trials: { type: 'string', default: '3' },
      warmup: { type: 'string', default: '50000' },
      batch: { type: 'string', default: '256' },
      'entry-bytes': { type: 'string', default: '128' },
      'compact-every': { type: 'string', default: '10000' },
      'uncommitted-bytes-max': { type: 'string' },
      seed: { type: 'string', default: '1' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(usage);
    return undefined;
  }
  return {
    entries: positiveInt(values.entries, '--entries'),
    unbatchedEntries: positiveInt(values['unbatched-entries'], '--unbatched-entries'),
    trials: positiveInt(values.trials, '--trials'),
    warmupEntries: positiveInt(values.warmup, '--warmup'),
    batchEntries: positiveInt(values.batch, '--batch'),
    entryBytes: positiveInt(values['entry-bytes'], '--entry-bytes'),
    compactEveryEntries: positiveInt(values['compact-every'], '--compact-every'),
    uncommittedBytesMax: values['uncommitted-bytes-max'] === undefined ? undefined : positiveInt(values['uncommitted-bytes-max'], '--uncommitted-bytes-max'),
    seed: positiveInt(values.seed, '--seed'),
  };
}


/** What the driver saw during one measured phase. */
interface PhaseStats {
  rounds: number;
  cycles: number;
  readies: number;
  messages: number;
  leaderReadiesWithEntries: number;
  leaderEntries: number;
  leaderReadiesWithCommitted: number;
  leaderCommitted: number;
  busyRejections: number;
}

function emptyStats(): PhaseStats {
  return {
    rounds: 0,
    cycles: 0,
    readies: 0,
    messages: 0,
    leaderReadiesWithEntries: 0,
    leaderEntries: 0,
    leaderReadiesWithCommitted: 0,
    leaderCommitted: 0,
    busyRejections: 0,
  };
}

/**
 * Three Raft nodes and the driver loop of each: ready, persist (nothing: in memory), deliver the
 * messages straight into the receivers' `step`, apply the committed entries, advance.
 */
class Cluster {
  readonly nodes: Raft[];
  /** Indexed by node id (ids are 1..3): arrays keep the driver's own cost out of the figures. */
  private readonly byId: Raft[] = [];
  private readonly appliedIndex: number[] = [];
  private readonly compactEveryEntries: number;
  private readonly emptySnapshot = snapshotBytes(new Uint8Array(0));
  leaderId: NodeId = 0;
  /** Payload entries the leader has applied (not the empty entry a new leader appends). */
  leaderAppliedEntries = 0;
  leaderAppliedBytes = 0;
  stats = emptyStats();

  constructor(opts: Options) {
    const prng = new Prng(opts.seed);
    this.compactEveryEntries = opts.compactEveryEntries;
    this.nodes = voterIds.map((id) => {
      const rng = prng.fork();
      const config: RaftConfig = { id, voters: voterIds, rand: (n) => rng.int(n) };
      if (opts.uncommittedBytesMax !== undefined) config.uncommittedBytesMax = opts.uncommittedBytesMax;
      return new Raft(config);
    });
    for (const n of this.nodes) {
      this.byId[n.id] = n;
      this.appliedIndex[n.id] = n.status().applied;
    }
  }

  /** Ticks every node until exactly one leader is known to all and has committed in its term. */
  elect(): void {
    for (let t = 0; t < electionTicksMax; t++) {
      for (const n of this.nodes) n.tick();
      this.settle();
      const leaders = this.nodes.filter((n) => n.role === Role.Leader);
      if (leaders.length !== 1) continue;
      const leader = leaders[0];
      if (this.nodes.every((n) => n.leader === leader.id) && leader.log.term(leader.log.committed) === leader.term) {
        this.leaderId = leader.id;
        return;
      }
    }
    throw new Error(`no stable leader after ${electionTicksMax} ticks`);
  }

  leader(): Raft {
    return this.byId[this.leaderId];
  }

  /** Proposes up to `count` entries on the leader, stopping early on CAIRN_BUSY back-pressure. */
  propose(count: number, payloads: Uint8Array[], next: number): number {
    const leader = this.leader();
    for (let i = 0; i < count; i++) {
      try {
        leader.propose(payloads[(next + i) % payloads.length]);
      } catch (err) {
        if (err instanceof CairnError && err.code === ErrorCode.Busy) {
          this.stats.busyRejections++;
          return i;
        }
        throw err;
      }
    }
    return count;
  }

  /** Runs ready cycles on all nodes until none has anything to do. */
  settle(): void {
    for (let c = 0; c < settleCyclesMax; c++) {
      if (!this.cycle()) return;
    }
    throw new Error(`cluster did not settle within ${settleCyclesMax} cycles`);
  }

  private cycle(): boolean {
    let active = false;
    for (const node of this.nodes) {
      if (!node.hasReady()) continue;
      active = true;
      const rd = node.ready();
      for (const m of rd.messages) this.byId[m.to].step(m);
      this.apply(node, rd.committed);
      node.advance();
      this.count(node, rd.entries.length, rd.committed.length, rd.messages.length);
    }
    if (active) this.stats.cycles++;
    return active;
  }

  private apply(node: Raft, committed: Entry[]): void {
    let applied = this.appliedIndex[node.id];
    const isLeader = node.id === this.leaderId;
    for (const e of committed) {
      // Not assert(): its template message would be built for every entry of the hot loop.
      if (e.index !== applied + 1) throw new Error(`invariant violated: node ${node.id} applies ${e.index} after ${applied}`);
      applied = e.index;
      if (isLeader && e.type === EntryType.Normal && e.data.length > 0) {
        this.leaderAppliedEntries++;
        this.leaderAppliedBytes += e.data.length;
      }
    }
    this.appliedIndex[node.id] = applied;
  }

  private count(node: Raft, entries: number, committed: number, messages: number): void {
    const s = this.stats;
    s.readies++;
    s.messages += messages;
    if (node.id !== this.leaderId) return;
    if (entries > 0) {
      s.leaderReadiesWithEntries++;
      s.leaderEntries += entries;
    }
    if (committed > 0) {
      s.leaderReadiesWithCommitted++;
      s.leaderCommitted += committed;
    }
  }

  /** Snapshots and truncates each log once it holds `compactEveryEntries` applied entries, as a driver would. */
  maybeCompact(): void {
    for (const n of this.nodes) {
      const applied = this.appliedIndex[n.id];
      if (applied - n.log.offsetIndex >= this.compactEveryEntries) n.compact(applied, this.emptySnapshot, compactKeepEntries);
    }
  }

  /** Every node applied the same prefix: the run committed what it claims. */
  checkConverged(): void {
    const leaderApplied = this.appliedIndex[this.leaderId];
    for (const n of this.nodes) {
      const applied = this.appliedIndex[n.id];
      assert(applied === leaderApplied, `node ${n.id} applied ${applied}, leader ${leaderApplied}`);
      assert(n.log.committed === applied, `node ${n.id} committed ${n.log.committed} but applied ${applied}`);
    }
  }
}

interface Trial {
  seconds: number;
  /** User plus system CPU time of the whole process (GC threads included): steadier than wall time on a shared machine. */
  cpuSeconds: number;
  entriesPerSecond: number;
  payloadBytes: number;
  stats: PhaseStats;
}

interface PhaseResult {
  label: string;
  entriesPerTrial: number;
  trials: Trial[];
  /** The median trial by throughput. */
  median: Trial;
  heapUsedBytes: number;
}

/** Rounds of: propose up to `batch` entries on the leader, then cycle until quiet. */
function drive(cluster: Cluster, entries: number, batch: number, payloads: Uint8Array[]): void {
  const target = cluster.leaderAppliedEntries + entries;
  let proposed = cluster.leaderAppliedEntries;
  while (cluster.leaderAppliedEntries < target) {
    const n = cluster.propose(Math.min(batch, target - proposed), payloads, proposed);
    // Each round settles, so nothing is uncommitted when the next one proposes: one always fits.
    assert(n > 0, 'the leader refused every proposal of a round');
    proposed += n;
    cluster.settle();
    cluster.stats.rounds++;
    cluster.maybeCompact();
  }
  assert(cluster.leaderAppliedEntries === target, `applied ${cluster.leaderAppliedEntries} entries, wanted ${target}`);
}

/** One cluster per configuration: elect, warm up, then time `trials` runs of `entries` each. */
function runPhase(label: string, opts: Options, entries: number, batch: number, payloads: Uint8Array[]): PhaseResult {
  const cluster = new Cluster(opts);
  cluster.elect();
  drive(cluster, opts.warmupEntries, batch, payloads);
  const trials: Trial[] = [];
  for (let t = 0; t < opts.trials; t++) {
    cluster.stats = emptyStats();
    const bytesBefore = cluster.leaderAppliedBytes;
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    drive(cluster, entries, batch, payloads);
    const seconds = (performance.now() - started) / 1000;
    const cpuSeconds = cpuSecondsSince(cpuBefore);
    cluster.checkConverged();
    trials.push({ seconds, cpuSeconds, entriesPerSecond: entries / seconds, payloadBytes: cluster.leaderAppliedBytes - bytesBefore, stats: cluster.stats });
  }
  return { label, entriesPerTrial: entries, trials, median: median(trials), heapUsedBytes: process.memoryUsage().heapUsed };
}

function cpuSecondsSince(before: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(before);
  return (d.user + d.system) / 1e6;
}

function median(trials: Trial[]): Trial {
  const sorted = [...trials].sort((a, b) => a.entriesPerSecond - b.entriesPerSecond);
  return sorted[Math.floor(sorted.length / 2)];
}

/**
 * The reference loop: each payload is copied into three replica logs (a byte ring and an array of
 * entry records each), then an apply pass reads one byte of every record, in rounds of `batch`.
 */
function runAnchorOnce(entries: number, batch: number, payloads: Uint8Array[], entryBytes: number): Trial & { checksum: number } {
  const ringEntries = 8192;
  const rings = voterIds.map(() => new Uint8Array(ringEntries * entryBytes));
  const logs: { index: number; term: number; offset: number }[][] = voterIds.map(() => []);
  let checksum = 0;
  let slot = 0;
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  for (let index = 1; index <= entries; ) {
    const end = Math.min(index + batch, entries + 1);
    for (; index < end; index++) {
      const payload = payloads[index % payloads.length];
      const offset = slot * entryBytes;
      slot = (slot + 1) % ringEntries;
      for (let r = 0; r < rings.length; r++) {
        rings[r].set(payload, offset);
        logs[r].push({ index, term: 1, offset });
      }
    }
    for (let r = 0; r < rings.length; r++) {
      const ring = rings[r];
      for (const rec of logs[r]) checksum = (checksum + ring[rec.offset] + rec.index) | 0;
      logs[r].length = 0;
    }
  }
  const seconds = (performance.now() - started) / 1000;
  return { seconds, cpuSeconds: cpuSecondsSince(cpuBefore), entriesPerSecond: entries / seconds, payloadBytes: entries * entryBytes, stats: emptyStats(), checksum };
}

function runAnchor(opts: Options, payloads: Uint8Array[]): PhaseResult & { checksum: number } {
  // A trial lasts tens of milliseconds: warm up through the optimizing tier and take more trials.
  for (let w = 0; w < anchorWarmups; w++) runAnchorOnce(opts.warmupEntries, opts.batchEntries, payloads, opts.entryBytes);
  const anchorEntries = opts.entries * anchorEntriesFactor;
  let checksum = 0;
  const trials: Trial[] = [];
  for (let t = 0; t < Math.max(opts.trials, anchorTrialsMin); t++) {
    const { checksum: c, ...trial } = runAnchorOnce(anchorEntries, opts.batchEntries, payloads, opts.entryBytes);
    checksum ^= c; // used, so the loop cannot be optimized away
    trials.push(trial);
  }
  return { label: 'anchor', entriesPerTrial: anchorEntries, trials, median: median(trials), heapUsedBytes: process.memoryUsage().heapUsed, checksum };
}

function makePayloads(seed: number, entryBytes: number): Uint8Array[] {
  const prng = new Prng(seed ^ 0x5eed);
  return Array.from({ length: payloadPoolSize }, () => {
    const p = new Uint8Array(entryBytes);
    for (let i = 0; i < p.length; i++) p[i] = prng.int(256);
    return p;
  });
}

function cpuPerEntry(r: PhaseResult): number {
  return r.median.cpuSeconds / r.entriesPerTrial;
}

function reportThroughput(report: Report, r: PhaseResult, what: string): void {
  const m = r.median;
  const rates = r.trials.map((t) => t.entriesPerSecond);
  report.figure(`${r.label}: ${what} entries (median)`, m.entriesPerSecond, 'entries/s');
  report.figure(`${r.label}: ${what} entries (min of ${rates.length})`, Math.min(...rates), 'entries/s');
  report.figure(`${r.label}: ${what} entries (max of ${rates.length})`, Math.max(...rates), 'entries/s');
  report.figure(`${r.label}: payload (median)`, m.payloadBytes / bytesPerMB / m.seconds, 'MB/s');
  report.figure(`${r.label}: wall time per entry (median)`, (m.seconds * 1e6) / r.entriesPerTrial, 'µs/entry');
  report.figure(`${r.label}: CPU time per entry (median trial)`, (m.cpuSeconds * 1e6) / r.entriesPerTrial, 'µs/entry');
}

function reportPhase(report: Report, r: PhaseResult): void {
  reportThroughput(report, r, 'committed');
  const s = r.median.stats;
  const label = r.label;
  report.figure(`${label}: mean batch (entries appended per leader Ready)`, s.leaderEntries / s.leaderReadiesWithEntries, 'entries/Ready');
  report.figure(`${label}: mean entries committed per leader Ready`, s.leaderCommitted / s.leaderReadiesWithCommitted, 'entries/Ready');
  report.figure(`${label}: Readies (all nodes) per entry`, s.readies / r.entriesPerTrial, 'Readies/entry');
  report.figure(`${label}: messages per entry`, s.messages / r.entriesPerTrial, 'messages/entry');
  report.figure(`${label}: ready cycles per round`, s.cycles / s.rounds, 'cycles/round');
  report.figure(`${label}: CAIRN_BUSY rejections`, s.busyRejections, 'proposals');
  report.figure(`${label}: heap used after the trials (no forced GC)`, r.heapUsedBytes / 2 ** 20, 'MiB');
  report.attach(label, r);
}

export function run(args: string[]): void {
  const opts = parseOptions(args);
  if (opts === undefined) return;
  const report = new Report('raft');
  report.configure({
    cluster: '3 voters, default RaftConfig limits, pre-vote and check-quorum on',
    transport: 'in-process: messages passed by reference straight into step(), no encoding',
    storage: 'none: Ready entries and hard state are not persisted',
    'entry payload bytes': opts.entryBytes,
    'batched: proposals per round': `${opts.batchEntries} (one propose() call each, all before the next Ready)`,
    'batched: entries per trial': opts.entries,
    'unbatched: proposals per round': 1,
    'unbatched: entries per trial': opts.unbatchedEntries,
    'trials per configuration': opts.trials,
    'warm-up entries per configuration': opts.warmupEntries,
    'anchor: entries per trial': `${opts.entries * anchorEntriesFactor}, at least ${anchorTrialsMin} trials`,
    'compact every (entries)': opts.compactEveryEntries,
    'uncommitted bytes max': opts.uncommittedBytesMax ?? 'RaftConfig default',
    'entries kept after compaction': compactKeepEntries,
    round: 'propose on the leader (stop at CAIRN_BUSY), then ready/deliver/apply/advance on every node until quiet',
    ticks: 'only to elect the leader; none while measuring',
    seed: opts.seed,
  });
  report.note(
    'no external anchor exists for an in-memory consensus core; the anchor is a plain loop copying the same payloads ' +
      'into 3 replica arrays (memcpy-like), run in this process: compare the ratios across machines, not the raw figures',
  );

  const payloads = makePayloads(opts.seed, opts.entryBytes);
  const anchor = runAnchor(opts, payloads);
  const batched = runPhase('batched', opts, opts.entries, opts.batchEntries, payloads);
  const unbatched = runPhase('unbatched', opts, opts.unbatchedEntries, 1, payloads);

  reportPhase(report, batched);
  reportPhase(report, unbatched);
  reportThroughput(report, anchor, 'copied');
  const anchorRate = anchor.median.entriesPerSecond;
  report.figure('ratio batched / anchor (wall time)', batched.median.entriesPerSecond / anchorRate, 'x');
  report.figure('ratio unbatched / anchor (wall time)', unbatched.median.entriesPerSecond / anchorRate, 'x');
  report.figure('ratio batched / anchor (CPU time)', cpuPerEntry(anchor) / cpuPerEntry(batched), 'x');
  report.figure('ratio unbatched / anchor (CPU time)', cpuPerEntry(anchor) / cpuPerEntry(unbatched), 'x');
  report.figure('what batching buys: batched / unbatched (wall time)', batched.median.entriesPerSecond / unbatched.median.entriesPerSecond, 'x');
  report.figure('max resident set size', process.resourceUsage().maxRSS / 1024, 'MiB');
  report.attach('anchor', anchor);
  report.finish();
}

// How even a chain table is: chains per worker, per position, and per pair of workers, and the
// chains that break the worker or domain rule. formatBalance prints it for `cairn admin chains --balance`.

import { toCluster, type PlacementTarget } from './cluster.ts';

export interface Range {
  min: number;
  max: number;
}

export interface ChainBalance {
  chains: number;
  /** The longest chain's length. */
  replication: number;
  /** Workers with a target in some chain; the ranges below are over these. */
  workers: number;
  /** Workers with targets but none in a chain. */
  idleWorkers: number;
  domains: number;
  domainRule: boolean;
  chainsPerWorker: Range;
  /** Per position (0 = head): how many chains each worker heads, and so on. */
  positions: Range[];
  /** The largest (max - min) of one worker's counts over the positions. */
  positionSpreadMax: number;
  /** Pairs of workers that could share a chain: both in some chain, in different groups. */
  pairs: number;
  pairShares: Range;
  /** Chains with two targets on one worker. */
  workerViolations: number;
  /** Chains with two workers in one failure domain while the domain rule holds. */
  domainViolations: number;
  /** Target ids in chains that the targets do not list, or listed in two chains. */
  unknownTargets: number;
  repeatedTargets: number;
}

function range(values: Iterable<number>): Range {
  let min = Infinity;
  let max = -Infinity;
  for (const x of values) {
    if (x < min) min = x;
    if (x > max) max = x;
  }
  return min === Infinity ? { min: 0, max: 0 } : { min, max };
}

export function chainBalance(chains: readonly (readonly number[])[], targets: readonly PlacementTarget[]): ChainBalance {
  const replication = chains.reduce((m, c) => Math.max(m, c.length), 0);
  const cluster = toCluster(targets, Math.max(1, Math.min(replication, 16)));
  const v = cluster.workers.length;
  const index = new Map(cluster.workers.map((w, i) => [w.workerId, i]));
  const counts = new Int32Array(v);
  const positions = Array.from({ length: replication }, () => new Int32Array(v));
  const pairs = new Uint32Array(v * v);
  const seen = new Set<number>();
  let unknownTargets = 0;
  let repeatedTargets = 0;
  let workerViolations = 0;
  let domainViolations = 0;
  for (const chain of chains) {
    const ws: number[] = [];
    chain.forEach((t, p) => {
      if (seen.has(t)) repeatedTargets++;
      seen.add(t);
      const workerId = cluster.workerOfTarget.get(t);
      if (workerId === undefined) return void unknownTargets++;
      const w = index.get(workerId)!;
      counts[w]++;
      positions[p][w]++;
      ws.push(w);
    });
    if (new Set(ws).size < ws.length) workerViolations++;
    if (cluster.domainRule && new Set(ws.map((w) => cluster.workers[w].group)).size < ws.length) domainViolations++;
    for (let a = 0; a < ws.length; a++) for (let b = a + 1; b < ws.length; b++) if (ws[a] !== ws[b]) pairs[Math.min(ws[a], ws[b]) * v + Math.max(ws[a], ws[b])]++;
  }
  const used = [...counts.keys()].filter((w) => counts[w] > 0);
  const shares: number[] = [];
  for (let i = 0; i < used.length; i++) {
    for (let j = i + 1; j < used.length; j++) {
      const [a, b] = [used[i], used[j]];
      if (cluster.workers[a].group !== cluster.workers[b].group) shares.push(pairs[a * v + b]);
    }
  }
  return {
    chains: chains.length,
    replication,
    workers: used.length,
    idleWorkers: v - used.length,
    domains: cluster.domainCount,
    domainRule: cluster.domainRule,
    chainsPerWorker: range(used.map((w) => counts[w])),
    positions: positions.map((pos) => range(used.map((w) => pos[w]))),
    positionSpreadMax: Math.max(0, ...used.map((w) => { const r = range(positions.map((pos) => pos[w])); return r.max - r.min; })),
    pairs: shares.length,
    pairShares: range(shares),
    workerViolations,
    domainViolations,
    unknownTargets,
    repeatedTargets,
  };
}

function positionName(p: number, r: number): string {
  if (p === 0) return 'head';
  if (p === r - 1) return 'tail';
  return r === 3 ? 'middle' : `middle ${p}`;
}

/** A short table: each measure's min and max over workers (or pairs of workers). */
export function formatBalance(b: ChainBalance): string {
  const rows: [string, Range][] = [['chains per worker', b.chainsPerWorker], ...b.positions.map((r, p): [string, Range] => [`  as ${positionName(p, b.replication)}`, r]), [`pair shares (${b.pairs} pairs)`, b.pairShares]];
  const width = Math.max(...rows.map(([name]) => name.length));
  const lines = [
    `${b.chains} chains of ${b.replication} over ${b.workers} workers${b.idleWorkers > 0 ? ` (${b.idleWorkers} idle)` : ''}, ${b.domains} failure domains (domain rule ${b.domainRule ? 'on' : 'off'})`,
    `${''.padEnd(width)}  ${'min'.padStart(5)}  ${'max'.padStart(5)}`,
    ...rows.map(([name, r]) => `${name.padEnd(width)}  ${String(r.min).padStart(5)}  ${String(r.max).padStart(5)}`),
    `position spread per worker (max - min): ${b.positionSpreadMax}`,
  ];
  const problems = [
    [b.workerViolations, 'chains with two targets on one worker'],
    [b.domainViolations, 'chains with two workers in one failure domain'],
    [b.unknownTargets, 'unknown targets'],
    [b.repeatedTargets, 'targets in two chains'],
  ] as const;
  for (const [n, what] of problems) if (n > 0) lines.push(`${n} ${what}`);
  return lines.join('\n');
}

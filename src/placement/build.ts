// Chain-table generation: buildChains makes a table from targets, extendChains adds chains from
// targets no chain holds yet without touching the existing ones. See docs/placement.md.

import { CairnError, ErrorCode, assert } from '../errors.ts';
import { toCluster, type Cluster, type PlacementTarget } from './cluster.ts';
import { greedyChains, type Shape } from './greedy.ts';
import { improvePairs, pairTarget } from './improve.ts';
import { balancePositions } from './positions.ts';
import { PlacementPrng } from './prng.ts';

export const UnusedReason = {
  /** Fewer than r workers (or failure domains) have free targets: no chain can be made. */
  TooFewWorkers: 'too-few-workers',
  /** Its worker is already in every chain made; a chain holds a worker once. */
  WorkerInEveryChain: 'worker-in-every-chain',
  /** Its failure domain is already in every chain made; a chain holds a domain once. */
  DomainInEveryChain: 'domain-in-every-chain',
  /** Left over: the other free targets were too few to make one more chain with it. */
  Remainder: 'remainder',
} as const;
export type UnusedReason = (typeof UnusedReason)[keyof typeof UnusedReason];

export interface UnusedTarget {
  targetId: number;
  reason: UnusedReason;
}

export interface ChainPlan {
  /** Each chain: r target ids, head first. extendChains: the existing chains unchanged, then the new ones. */
  chains: number[][];
  /** Targets in no chain, by target id. */
  unused: UnusedTarget[];
  /** Whether chains span distinct failure domains (at least r domains exist). */
  domainRule: boolean;
}

export interface PlacementOptions {
  /** Seeds the local search; the same seed and input give the same table. */
  seed?: number;
  /** Local-search moves tried at most (the work bound). */
  movesMax?: number;
}

/** Local-search budget: enough to find the small exact designs, bounded for large clusters. */
export const movesMaxDefault = 1_000_000;
const defaultSeed = 0x5eed;

export function buildChains(targets: readonly PlacementTarget[], replication: number, opts: PlacementOptions = {}): ChainPlan {
  return plan([], targets, replication, opts);
}

/** Adds chains made only of targets no existing chain holds; existing chains come back unchanged, first. */
export function extendChains(existing: readonly (readonly number[])[], targets: readonly PlacementTarget[], replication: number, opts: PlacementOptions = {}): ChainPlan {
  return plan(existing, targets, replication, opts);
}

function checkOptions(opts: PlacementOptions): { seed: number; movesMax: number } {
  const seed = opts.seed ?? defaultSeed;
  const movesMax = opts.movesMax ?? movesMaxDefault;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffff_ffff) throw new CairnError(ErrorCode.BadOption, `seed ${seed} is not an integer in 0..2^32-1`);
  if (!Number.isSafeInteger(movesMax) || movesMax < 0) throw new CairnError(ErrorCode.BadOption, `movesMax ${movesMax} is not a non-negative integer`);
  return { seed, movesMax };
}

/** The target ids existing chains hold; each at most once. */
function heldTargets(existing: readonly (readonly number[])[]): Set<number> {
  if (!Array.isArray(existing)) throw new CairnError(ErrorCode.InvalidArgument, 'existing chains is not an array');
  const held = new Set<number>();
  existing.forEach((chain, i) => {
    if (!Array.isArray(chain)) throw new CairnError(ErrorCode.InvalidArgument, `existing chain ${i} is not an array`);
    for (const t of chain) {
      if (held.has(t)) throw new CairnError(ErrorCode.InvalidArgument, `target ${t} is in two existing chains`, { targetId: t });
      held.add(t);
    }
  });
  return held;
}

function plan(existing: readonly (readonly number[])[], targets: readonly PlacementTarget[], replication: number, opts: PlacementOptions): ChainPlan {
  const { seed, movesMax } = checkOptions(opts);
  const cluster = toCluster(targets, replication);
  const held = heldTargets(existing);
  const index = new Map(cluster.workers.map((w, i) => [w.workerId, i]));
  const freeTargets = cluster.workers.map((w) => w.targets.filter((t) => !held.has(t.targetId)));
  const shape = newShape(cluster, freeTargets);
  const chainCounts = new Int32Array(shape.workerCount);
  let incidences = 0;
  for (const chain of existing) {
    const ws = chain.filter((t) => cluster.workerOfTarget.has(t)).map((t) => index.get(cluster.workerOfTarget.get(t)!)!);
    for (let a = 0; a < ws.length; a++) {
      chainCounts[ws[a]]++;
      for (let b = 0; b < a; b++) addPair(shape, ws[a], ws[b]);
    }
    incidences += (ws.length * (ws.length - 1)) / 2;
  }
  const members = greedyChains(shape);
  for (const w of members) chainCounts[w]++;
  incidences += (members.length / replication) * ((replication * (replication - 1)) / 2);
  const target = pairTarget(incidences, eligiblePairs(shape, chainCounts));
  const limits = { movesMax, stallMovesMax: Math.max(50_000, 100 * members.length), roundsMax: 4 };
  improvePairs(shape, members, 0, target, new PlacementPrng(seed), limits);
  balancePositions(members, replication, shape.workerCount);
  return {
    chains: [...existing.map((c) => [...c]), ...assignTargets(members, replication, freeTargets)],
    unused: unusedTargets(cluster, shape, members, freeTargets),
    domainRule: cluster.domainRule,
  };
}

function newShape(cluster: Cluster, freeTargets: PlacementTarget[][]): Shape {
  const v = cluster.workers.length;
  return {
    workerCount: v,
    replication: cluster.replication,
    group: Int32Array.from(cluster.workers, (w) => w.group),
    groupCount: cluster.groupCount,
    free: Int32Array.from(freeTargets, (ts) => ts.length),
    freeCapacities: freeTargets.map((ts) => ts.map((t) => t.capacityBytes)),
    pairs: new Uint16Array(v * v),
  };
}

function addPair(shape: Shape, a: number, b: number): void {
  const v = shape.workerCount;
  if (a === b) return;
  shape.pairs[a * v + b]++;
  shape.pairs[b * v + a]++;
}

/** Pairs of workers that are in some chain, in different groups: the pairs that can share a chain. */
function eligiblePairs(shape: Shape, chainCounts: Int32Array): number {
  let n = 0;
  for (let a = 0; a < shape.workerCount; a++) {
    for (let b = a + 1; b < shape.workerCount; b++) {
      if (chainCounts[a] > 0 && chainCounts[b] > 0 && shape.group[a] !== shape.group[b]) n++;
    }
  }
  return n;
}

/** Each worker's free targets, largest first, go to its chains in chain order. */
function assignTargets(members: Int32Array, r: number, freeTargets: PlacementTarget[][]): number[][] {
  const next = new Int32Array(freeTargets.length);
  const chains: number[][] = [];
  for (let c = 0; c < members.length / r; c++) {
    const chain: number[] = [];
    for (let i = 0; i < r; i++) {
      const w = members[c * r + i];
      const t = freeTargets[w][next[w]++];
      assert(t !== undefined, 'a worker is in no more chains than it has free targets');
      chain.push(t.targetId);
    }
    chains.push(chain);
  }
  return chains;
}

function unusedTargets(cluster: Cluster, shape: Shape, members: Int32Array, freeTargets: PlacementTarget[][]): UnusedTarget[] {
  const chains = members.length / cluster.replication;
  const inChains = new Int32Array(shape.workerCount);
  const groupInChains = new Int32Array(shape.groupCount);
  for (const w of members) {
    inChains[w]++;
    groupInChains[shape.group[w]]++;
  }
  const unused: UnusedTarget[] = [];
  freeTargets.forEach((ts, w) => {
    let reason: UnusedReason = UnusedReason.Remainder;
    if (chains === 0) reason = UnusedReason.TooFewWorkers;
    else if (inChains[w] === chains) reason = UnusedReason.WorkerInEveryChain;
    else if (cluster.domainRule && groupInChains[shape.group[w]] === chains) reason = UnusedReason.DomainInEveryChain;
    for (const t of ts.slice(inChains[w])) unused.push({ targetId: t.targetId, reason });
  });
  return unused.sort((a, b) => a.targetId - b.targetId);
}

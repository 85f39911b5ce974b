// Greedy chain construction over worker indices: as many chains as the free targets allow, each
// picking, slot by slot, the worker that shares the fewest chains with those already picked.

import { assert } from '../errors.ts';

/** The shape a construction works on: workers by index, their groups and free targets, and pair counts so far. */
export interface Shape {
  workerCount: number;
  replication: number;
  /** Per worker: the group a chain may hold only once (domain or worker). */
  group: Int32Array;
  groupCount: number;
  /** Per worker: targets not yet in a chain. */
  free: Int32Array;
  /** Per worker: capacities of its free targets, largest first (a tie-break only). */
  freeCapacities: number[][];
  /** workerCount x workerCount: chains each pair shares, existing chains included. */
  pairs: Uint16Array;
}

/** The most chains r distinct groups can make: the largest b with sum(min(cap, b)) >= r b. */
export function maxChains(groupCaps: Int32Array, replication: number): number {
  let total = 0;
  for (const c of groupCaps) total += c;
  let lo = 0;
  let hi = Math.floor(total / replication);
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    let sum = 0;
    for (const c of groupCaps) sum += Math.min(c, mid);
    if (sum >= replication * mid) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

function groupCapacities(shape: Shape): Int32Array {
  const caps = new Int32Array(shape.groupCount);
  for (let w = 0; w < shape.workerCount; w++) caps[shape.group[w]] += shape.free[w];
  return caps;
}

/**
 * How many of the next chain's groups must come from the groups that have a free target for
 * every chain left: with b chains left and slack = sum(min(cap, b)) - r b, a chain that takes
 * fewer than (that count - slack) of them leaves too few targets for the rest.
 */
function mustTakeFull(caps: Int32Array, chainsLeft: number, replication: number): number {
  let full = 0;
  let sum = 0;
  for (const c of caps) {
    if (c >= chainsLeft) full++;
    sum += Math.min(c, chainsLeft);
  }
  const slack = sum - replication * chainsLeft;
  assert(slack >= 0, 'the chains left are still feasible');
  return full - slack;
}

/** Builds the chains; returns their members, flat (chain i is [i*r, (i+1)*r)), and updates `shape`. */
export function greedyChains(shape: Shape): Int32Array {
  const { workerCount: v, replication: r, group, free, pairs } = shape;
  const caps = groupCapacities(shape);
  const count = maxChains(caps, r);
  const members = new Int32Array(count * r);
  const groupTaken = new Uint8Array(shape.groupCount);
  const taken = new Int32Array(shape.freeCapacities.map(() => 0));
  for (let k = 0; k < count; k++) {
    const chainsLeft = count - k;
    const need = mustTakeFull(caps, chainsLeft, r);
    let haveFull = 0;
    for (let slot = 0; slot < r; slot++) {
      const onlyFull = need - haveFull >= r - slot;
      let best = -1;
      let bestMax = 0;
      let bestSum = 0;
      for (let w = 0; w < v; w++) {
        const g = group[w];
        if (free[w] === 0 || groupTaken[g] === 1 || (onlyFull && caps[g] < chainsLeft)) continue;
        let max = 0;
        let sum = 0;
        for (let s = 0; s < slot; s++) {
          const p = pairs[w * v + members[k * r + s]];
          sum += p;
          if (p > max) max = p;
        }
        if (best === -1 || better(shape, caps, taken, w, max, sum, best, bestMax, bestSum)) {
          best = w;
          bestMax = max;
          bestSum = sum;
        }
      }
      assert(best !== -1, 'a feasible chain always has a candidate for each slot');
      members[k * r + slot] = best;
      groupTaken[group[best]] = 1;
      if (caps[group[best]] >= chainsLeft) haveFull++;
    }
    for (let slot = 0; slot < r; slot++) {
      const w = members[k * r + slot];
      groupTaken[group[w]] = 0;
      caps[group[w]]--;
      free[w]--;
      taken[w]++;
      for (let s = 0; s < slot; s++) {
        const u = members[k * r + s];
        pairs[w * v + u]++;
        pairs[u * v + w]++;
      }
    }
  }
  return members;
}

/** Fewer shared chains first, then the fuller group and worker, then the larger next target, then the lower index. */
function better(shape: Shape, caps: Int32Array, taken: Int32Array, w: number, max: number, sum: number, best: number, bestMax: number, bestSum: number): boolean {
  if (max !== bestMax) return max < bestMax;
  const gw = caps[shape.group[w]];
  const gb = caps[shape.group[best]];
  if (gw !== gb) return gw > gb;
  if (shape.free[w] !== shape.free[best]) return shape.free[w] > shape.free[best];
  if (sum !== bestSum) return sum < bestSum;
  const cw = shape.freeCapacities[w][taken[w]] ?? 0;
  const cb = shape.freeCapacities[best][taken[best]] ?? 0;
  return cw > cb;
}

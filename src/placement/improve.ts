// Local search that evens out how many chains each pair of workers shares: swap two workers
// between two chains (each keeps its chain count) when that lowers, or keeps, the sum of squared
// pair counts, with a little annealing to leave local minima. Bounded by a move budget.

import type { PlacementPrng } from './prng.ts';
import type { Shape } from './greedy.ts';

export interface ImproveLimits {
  /** Moves tried at most. */
  movesMax: number;
  /** A round ends after this many moves without a new best; the next starts again from the best. */
  stallMovesMax: number;
  roundsMax: number;
}

/** Where the search aims: the least sum of squares, and the pair count above which a pair is too hot. */
export interface PairTarget {
  floor: number;
  hot: number;
}

/** Proposals look this many times for a member in a too-hot pair before taking any member. */
const hotTries = 8;
/** Worsening by 2 (the least a swap can) is accepted with probability e^-10 at first, less later. */
const temperatureMax = 0.2;

/** Sum of squared pair counts over all pairs (each counted once). */
export function pairSquares(pairs: Uint16Array, v: number): number {
  let s = 0;
  for (let a = 0; a < v; a++) for (let b = a + 1; b < v; b++) s += pairs[a * v + b] ** 2;
  return s;
}

/** The least sum of squares `incidences` pair incidences can have over `eligible` pairs (all counts within 1), and the top count then. */
export function pairTarget(incidences: number, eligible: number): PairTarget {
  if (eligible === 0) return { floor: 0, hot: 0 };
  const f = Math.floor(incidences / eligible);
  const k = incidences - f * eligible;
  return { floor: (eligible - k) * f * f + k * (f + 1) * (f + 1), hot: k > 0 ? f + 1 : f };
}

class Swapper {
  readonly shape: Shape;
  readonly members: Int32Array;
  private readonly r: number;
  private readonly v: number;

  constructor(shape: Shape, members: Int32Array) {
    this.shape = shape;
    this.members = members;
    this.r = shape.replication;
    this.v = shape.workerCount;
  }

  /** Whether worker `w` may take slot `i` of chain `c`: its group is not elsewhere in the chain. */
  fits(c: number, i: number, w: number): boolean {
    const g = this.shape.group[w];
    for (let k = 0; k < this.r; k++) {
      if (k !== i && this.shape.group[this.members[c * this.r + k]] === g) return false;
    }
    return true;
  }

  /** Whether the worker in slot `i` of chain `c` shares more than `hot` chains with another member. */
  isHot(c: number, i: number, hot: number): boolean {
    const x = this.members[c * this.r + i];
    for (let k = 0; k < this.r; k++) {
      if (k !== i && this.shape.pairs[x * this.v + this.members[c * this.r + k]] > hot) return true;
    }
    return false;
  }

  /** Moves worker x out of chain c (slot i) and worker y in; returns the change in the sum of squares. */
  replace(c: number, i: number, y: number): number {
    const { pairs } = this.shape;
    const x = this.members[c * this.r + i];
    let delta = 0;
    for (let k = 0; k < this.r; k++) {
      if (k === i) continue;
      const a = this.members[c * this.r + k];
      const px = pairs[x * this.v + a];
      pairs[x * this.v + a] = pairs[a * this.v + x] = px - 1;
      const py = pairs[y * this.v + a];
      pairs[y * this.v + a] = pairs[a * this.v + y] = py + 1;
      delta += 2 * (py - px) + 2;
    }
    this.members[c * this.r + i] = y;
    return delta;
  }
}

/** Improves `members` in place (pair counts in `shape.pairs` follow); `first` is the first chain it may change. */
export function improvePairs(shape: Shape, members: Int32Array, first: number, target: PairTarget, prng: PlacementPrng, limits: ImproveLimits): void {
  const r = shape.replication;
  const chains = members.length / r;
  if (chains - first < 2 || r < 2) return;
  const sw = new Swapper(shape, members);
  const search: Search = { score: pairSquares(shape.pairs, shape.workerCount), best: 0, bestMembers: members.slice(), moves: 0 };
  search.best = search.score;
  for (let round = 0; round < limits.roundsMax && search.best > target.floor && search.moves < limits.movesMax; round++) {
    if (search.score !== search.best) restore(sw, search);
    anneal(sw, search, first, target, prng, limits, temperatureMax * (1 + round));
  }
  if (search.score !== search.best) restore(sw, search);
}

interface Search {
  score: number;
  best: number;
  bestMembers: Int32Array;
  moves: number;
}

/** One annealing round: runs until the floor, the move budget, or a stall. */
function anneal(sw: Swapper, search: Search, first: number, target: PairTarget, prng: PlacementPrng, limits: ImproveLimits, heat: number): void {
  const { members } = sw;
  const r = sw.shape.replication;
  const chains = members.length / r;
  for (let sinceBest = 0; search.moves < limits.movesMax && search.best > target.floor && sinceBest < limits.stallMovesMax; sinceBest++) {
    const move = search.moves++;
    let a = first + prng.int(chains - first);
    let i = prng.int(r);
    for (let tries = 0; tries < hotTries && !sw.isHot(a, i, target.hot); tries++) {
      a = first + prng.int(chains - first);
      i = prng.int(r);
    }
    const b = first + prng.int(chains - first);
    const j = prng.int(r);
    const x = members[a * r + i];
    const y = members[b * r + j];
    if (a === b || x === y || !sw.fits(a, i, y) || !sw.fits(b, j, x)) continue;
    const delta = sw.replace(a, i, y) + sw.replace(b, j, x);
    const temperature = heat * (1 - move / limits.movesMax);
    if (delta <= 0 || prng.float() < Math.exp(-delta / temperature)) {
      search.score += delta;
      if (search.score < search.best) {
        search.best = search.score;
        search.bestMembers = members.slice();
        sinceBest = -1;
      }
    } else {
      sw.replace(b, j, y);
      sw.replace(a, i, x);
    }
  }
}

/** Puts the best members back, keeping the pair counts in step. */
function restore(sw: Swapper, search: Search): void {
  const { bestMembers } = search;
  search.score = search.best;
  const r = sw.shape.replication;
  for (let c = 0; c < bestMembers.length / r; c++) {
    for (let i = 0; i < r; i++) {
      if (sw.members[c * r + i] !== bestMembers[c * r + i]) sw.replace(c, i, bestMembers[c * r + i]);
    }
  }
}

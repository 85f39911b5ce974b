// Orders each chain's members so that every worker is head, middle and tail as evenly as possible:
// a proper r-edge-colouring (colour = position) of the bipartite graph chains x worker-parts,
// where each worker is split into parts of at most r of its chains. König: such a colouring
// exists, so each part holds each position at most once and each worker's counts differ by <= 1.

import { assert } from '../errors.ts';

class Colouring {
  /** Per node (chains first, then worker parts) and colour: the edge with that colour, or -1. */
  private readonly at: Int32Array;
  readonly colour: Int32Array;
  private readonly r: number;
  private readonly endA: Int32Array;
  private readonly endB: Int32Array;

  constructor(nodes: number, endA: Int32Array, endB: Int32Array, r: number) {
    this.r = r;
    this.endA = endA;
    this.endB = endB;
    this.at = new Int32Array(nodes * r).fill(-1);
    this.colour = new Int32Array(endA.length).fill(-1);
  }

  private freeColour(node: number): number {
    for (let c = 0; c < this.r; c++) if (this.at[node * this.r + c] === -1) return c;
    throw new Error('invariant violated: a node has more edges than colours');
  }

  private set(e: number, c: number): void {
    this.colour[e] = c;
    this.at[this.endA[e] * this.r + c] = e;
    this.at[this.endB[e] * this.r + c] = e;
  }

  private unset(e: number): void {
    const c = this.colour[e];
    this.at[this.endA[e] * this.r + c] = -1;
    this.at[this.endB[e] * this.r + c] = -1;
  }

  /** Colours edge e; swaps an alpha/beta alternating path out of the way when needed. */
  add(e: number): void {
    const u = this.endA[e];
    const w = this.endB[e];
    const alpha = this.freeColour(u);
    if (this.at[w * this.r + alpha] !== -1) {
      const beta = this.freeColour(w);
      const path: number[] = [];
      let node = w;
      let c = alpha;
      for (let f = this.at[node * this.r + c]; f !== -1; f = this.at[node * this.r + c]) {
        path.push(f);
        node = this.endA[f] === node ? this.endB[f] : this.endA[f];
        c = c === alpha ? beta : alpha;
      }
      for (const f of path) this.unset(f);
      for (const f of path) this.set(f, this.colour[f] === alpha ? beta : alpha);
      assert(this.at[u * this.r + alpha] === -1, 'an alternating path from a worker never reaches the chain');
    }
    this.set(e, alpha);
  }
}

/** Reorders each chain of `members` (flat, r per chain) in place; workers are indices below `workerCount`. */
export function balancePositions(members: Int32Array, r: number, workerCount: number): void {
  const chains = members.length / r;
  const seen = new Int32Array(workerCount);
  const partOf = new Int32Array(workerCount);
  const endA = new Int32Array(members.length);
  const endB = new Int32Array(members.length);
  let parts = 0;
  for (let e = 0; e < members.length; e++) {
    const w = members[e];
    if (seen[w] % r === 0) partOf[w] = parts++;
    seen[w]++;
    endA[e] = Math.floor(e / r);
    endB[e] = chains + partOf[w];
  }
  const col = new Colouring(chains + parts, endA, endB, r);
  for (let e = 0; e < members.length; e++) col.add(e);
  const ordered = new Int32Array(members.length).fill(-1);
  for (let e = 0; e < members.length; e++) {
    const slot = endA[e] * r + col.colour[e];
    assert(ordered[slot] === -1, 'each chain holds each position once');
    ordered[slot] = members[e];
  }
  members.set(ordered);
}

// A tiny seeded PRNG (mulberry32 over a splitmix32-mixed seed) for placement's shuffles and local
// search: placement is a pure function of its input, so its only randomness is a seed.

/** Mixes a 32-bit seed so that neighbouring seeds (inode ids) start far-apart streams. */
function splitmix32(seed: number): number {
  let z = (seed + 0x9e3779b9) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

export class PlacementPrng {
  private state: number;

  constructor(seed: number) {
    this.state = splitmix32(seed >>> 0);
  }

  /** The next unsigned 32-bit value (mulberry32). */
  u32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** An integer in [0, n), for n <= 2^21 (the product stays an exact double). */
  int(n: number): number {
    return Math.floor((this.u32() * n) / 4294967296);
  }

  /** A float in [0, 1). */
  float(): number {
    return this.u32() / 4294967296;
  }
}

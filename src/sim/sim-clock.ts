// A node's clock in the simulation: virtual time seen through an oscillator that runs slightly fast
// or slow (a fixed rate per node, within driftBound), from an origin of its own, so code that
// compares clocks across nodes or assumes they agree is caught. Timers fire on the node's own
// scale, through the node (so they wait while it is stalled and die with it).

import type { Clock, Timer } from '../io/index.ts';
import type { Prng } from './prng.ts';

/** How far a node's clock rate may stray from true time; the leader lease is sized for it. */
export const clockDriftBound = 0.05;
/** Wall-clock origin of every simulated node: a fixed date, so traces do not depend on the real one. */
const wallOriginMs = Date.UTC(2026, 0, 1);

export interface ClockHost {
  nowMs(): number;
  /** Runs `fn` after `ms` of virtual time on the node, unless its process died meanwhile. */
  later(ms: number, fn: () => void): void;
}

export class SimClock implements Clock {
  readonly rate: number;
  private readonly host: ClockHost;
  private readonly originMs: number;
  private readonly prng: Prng;

  /** `driftBound`: the bound this run states (the lease is sized for it), clockDriftBound unless a seed widens it. */
  constructor(host: ClockHost, rate: number, originMs: number, prng: Prng, driftBound = clockDriftBound) {
    if (!(Math.abs(rate - 1) <= driftBound)) throw new RangeError(`clock rate ${rate} strays more than ${driftBound} from 1`);
    this.host = host;
    this.rate = rate;
    this.originMs = originMs;
    this.prng = prng;
  }

  now(): number {
    return this.originMs + this.host.nowMs() * this.rate;
  }

  wallNow(): number {
    return Math.floor(wallOriginMs + this.now());
  }

  after(ms: number, fn: () => void): Timer {
    let live = true;
    this.host.later(this.virtual(ms), () => {
      if (live) fn();
    });
    return { cancel: () => (live = false) };
  }

  every(ms: number, fn: () => void): Timer {
    let live = true;
    // The next run is set up only after this one: a stalled node's interval fires once on resume.
    const next = (): void =>
      this.host.later(this.virtual(ms), () => {
        if (!live) return;
        fn();
        next();
      });
    next();
    return { cancel: () => (live = false) };
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.after(ms, resolve));
  }

  randomInt(n: number): number {
    return this.prng.int(n);
  }

  /** Local milliseconds in virtual ones: a fast clock's timers fire early. */
  private virtual(ms: number): number {
    return Math.max(0, ms) / this.rate;
  }
}

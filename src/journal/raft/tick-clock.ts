// The real times of a Raft core's recent ticks. The core measures its leader lease in ticks, and
// ticks stop while the event loop stalls (a long GC, a big synchronous checkpoint, SIGSTOP) while
// followers' clocks run on: before a lease read, the driver checks the lease against real time.

export class TickClock {
  private readonly times: Float64Array;
  private count = 0;
  private readonly tickMs: number;
  private readonly now: () => number;

  constructor(tickMs: number, keepTicks: number, now: () => number) {
    this.tickMs = tickMs;
    this.times = new Float64Array(keepTicks);
    this.now = now;
  }

  /** Records a tick; call it together with the core's tick(). */
  tick(): void {
    this.times[this.count % this.times.length] = this.now();
    this.count++;
  }

  /**
   * Whether less than `windowTicks` ticks' worth of real time has passed since the tick `ticksAgo`
   * ticks back (0 is the latest). False for ticks older than the clock remembers.
   */
  within(ticksAgo: number, windowTicks: number): boolean {
    if (!Number.isInteger(ticksAgo) || ticksAgo < 0 || ticksAgo >= this.count || ticksAgo >= this.times.length) return false;
    const at = this.times[(this.count - 1 - ticksAgo) % this.times.length];
    return this.now() - at < windowTicks * this.tickMs;
  }
}

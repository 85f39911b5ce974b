// Time as cairn's processes see it: a monotonic clock for timeouts and leases, the wall clock for
// the times stamped into metadata, and timers. Production passes systemClock; the simulator passes
// virtual clocks that run at slightly different rates, as real oscillators do.

export interface Timer {
  cancel(): void;
  /** Real timers: the process may exit while this one waits (background work a process outlives). */
  unref?(): void;
}

export interface Clock {
  /** Monotonic milliseconds (arbitrary origin): for timeouts and leases, never stamped anywhere. */
  now(): number;
  /** Milliseconds since the Unix epoch: the times stamped into metadata. */
  wallNow(): number;
  /** Runs `fn` once after `ms`. */
  after(ms: number, fn: () => void): Timer;
  /** Runs `fn` every `ms` until cancelled. */
  every(ms: number, fn: () => void): Timer;
  sleep(ms: number): Promise<void>;
  /** A random integer in [0, n): randomness comes with the clock, so a simulation can seed both. */
  randomInt(n: number): number;
}

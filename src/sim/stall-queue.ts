// What arrives at a simulated process while it is stalled (paused by the OS, a long GC): kept in
// the order the process will run it when the stall ends, by rank (timers before client requests
// before the rest, as Node runs timers before I/O), then by arrival.

export class StallQueue {
  private until = 0;
  private work: { rank: number; run: () => void }[] = [];

  stalled(now: number): boolean {
    return now < this.until;
  }

  begin(now: number, ms: number): void {
    this.until = now + ms;
  }

  /** Runs `fn` now, or keeps it for when the stall ends. */
  runOrQueue(now: number, fn: () => void, rank: number): void {
    if (!this.stalled(now)) {
      fn();
      return;
    }
    const at = this.work.findIndex((w) => w.rank > rank);
    this.work.splice(at === -1 ? this.work.length : at, 0, { rank, run: fn });
  }

  /** The stall is over: the work that piled up, in the order it runs. */
  end(): (() => void)[] {
    this.until = 0;
    const work = this.work;
    this.work = [];
    return work.map((w) => w.run);
  }

  /** The process died: nothing it had piled up runs. */
  clear(): void {
    this.until = 0;
    this.work = [];
  }
}

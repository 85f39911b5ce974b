// The simulator's clock and agenda: events ordered by (virtual time, sequence number), so that
// ties break the same way on every run.

interface Event {
  timeMs: number;
  seq: number;
  run: () => void;
}

export class EventQueue {
  private heap: Event[] = [];
  private seq = 0;
  nowMs = 0;

  at(timeMs: number, run: () => void): void {
    this.push({ timeMs: Math.max(timeMs, this.nowMs), seq: this.seq++, run });
  }

  after(delayMs: number, run: () => void): void {
    this.at(this.nowMs + delayMs, run);
  }

  size(): number {
    return this.heap.length;
  }

  /** Runs the next event; returns false when none is due at or before `untilMs`. */
  runNext(untilMs: number): boolean {
    const top = this.heap[0];
    if (top === undefined || top.timeMs > untilMs) return false;
    this.pop();
    this.nowMs = top.timeMs;
    top.run();
    return true;
  }

  private push(e: Event): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && less(h[l], h[m])) m = l;
      if (r < h.length && less(h[r], h[m])) m = r;
      if (m === i) return;
      [h[i], h[m]] = [h[m], h[i]];
      i = m;
    }
  }
}

function less(a: Event, b: Event): boolean {
  return a.timeMs < b.timeMs || (a.timeMs === b.timeMs && a.seq < b.seq);
}

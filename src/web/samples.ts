// The dashboard's live charts: once a second the leader turns running totals (bytes workers read
// and wrote, over the last few seconds; journal entries applied and the metadata latency
// histogram, over the last second) into rates and quantiles, and keeps the last few minutes. Pure:
// the caller reads the totals.

export interface Sample {
  atMs: number;
  readBytesPerS: number;
  writtenBytesPerS: number;
  /** Journal entries applied per second: metadata changes. */
  entriesPerS: number;
  /** Metadata operations answered per second, and their latency quantiles over the last interval (null: none). */
  metaOpsPerS: number;
  metaP50Ms: number | null;
  metaP99Ms: number | null;
}

/** Cumulative bucket counts of a latency histogram in seconds (le → count), as Prometheus keeps them. */
export type Buckets = Map<number, number>;

export interface Totals {
  /** Per worker (a restarted worker counts from 0 again). */
  workers: Map<number, { bytesRead: number; bytesWritten: number }>;
  appliedIndex: number;
  metaLatency: Buckets | undefined;
}

export const samplesKeptMax = 300;
/**
 * Workers' byte counts arrive with heartbeats (one a second, not in step with the sampler): a
 * rate over one second would swing between 0 and double. They are taken over this window.
 */
export const bytesWindowMs = 3000;

export class Sampler {
  /** Recent observations, oldest first, reaching back at least bytesWindowMs. */
  private readonly seen: { atMs: number; totals: Totals }[] = [];
  private readonly list: Sample[] = [];

  /** Adds the sample since the previous observation; the first only sets the baseline. */
  observe(atMs: number, totals: Totals): Sample | undefined {
    const prev = this.seen.at(-1);
    if (prev !== undefined && atMs <= prev.atMs) return undefined;
    this.seen.push({ atMs, totals });
    while (this.seen.length > 2 && atMs - this.seen[1].atMs >= bytesWindowMs) this.seen.shift();
    if (prev === undefined) return undefined;
    const seconds = (atMs - prev.atMs) / 1000;
    const windowSeconds = (atMs - this.seen[0].atMs) / 1000;
    let read = 0;
    let written = 0;
    // Step by step, so that a worker that restarted within the window is seen to.
    for (let i = 1; i < this.seen.length; i++) {
      for (const [id, now] of this.seen[i].totals.workers) {
        const was = this.seen[i - 1].totals.workers.get(id);
        read += grown(was?.bytesRead, now.bytesRead);
        written += grown(was?.bytesWritten, now.bytesWritten);
      }
    }
    const latency = bucketDelta(prev.totals.metaLatency, totals.metaLatency);
    const ops = latency === undefined ? 0 : Math.max(0, ...latency.values());
    const sample: Sample = {
      atMs,
      readBytesPerS: read / windowSeconds,
      writtenBytesPerS: written / windowSeconds,
      entriesPerS: Math.max(0, totals.appliedIndex - prev.totals.appliedIndex) / seconds,
      metaOpsPerS: ops / seconds,
      metaP50Ms: latency === undefined ? null : quantileMs(latency, 0.5),
      metaP99Ms: latency === undefined ? null : quantileMs(latency, 0.99),
    };
    this.list.push(sample);
    if (this.list.length > samplesKeptMax) this.list.shift();
    return sample;
  }

  recent(): Sample[] {
    return [...this.list];
  }

  /** Forgets the totals seen (a new baseline at the next look), keeping the samples made. */
  restart(): void {
    this.seen.length = 0;
  }
}

/** Growth of a counter; a counter that went back restarted from 0. */
function grown(before: number | undefined, now: number): number {
  if (before === undefined) return 0;
  return now >= before ? now - before : now;
}

function bucketDelta(before: Buckets | undefined, now: Buckets | undefined): Buckets | undefined {
  if (before === undefined || now === undefined) return undefined;
  const out: Buckets = new Map();
  for (const [le, n] of now) out.set(le, Math.max(0, n - (before.get(le) ?? 0)));
  return out;
}

/** The q-quantile in milliseconds, interpolated within its bucket as Prometheus's histogram_quantile does; null with no observations. */
export function quantileMs(buckets: Buckets, q: number): number | null {
  const sorted = [...buckets].sort((a, b) => a[0] - b[0]);
  const total = sorted.at(-1)?.[1] ?? 0;
  if (total === 0) return null;
  const rank = q * total;
  let lowerLe = 0;
  let lowerCount = 0;
  for (const [le, count] of sorted) {
    if (count >= rank) {
      // Above the highest finite bound there is nothing to interpolate to: answer that bound.
      if (!Number.isFinite(le)) return lowerLe * 1000;
      const within = count - lowerCount;
      const fraction = within === 0 ? 0 : (rank - lowerCount) / within;
      return (lowerLe + (le - lowerLe) * fraction) * 1000;
    }
    lowerLe = le;
    lowerCount = count;
  }
  return lowerLe * 1000;
}

// Which chunks of a file were ever written, as sorted, disjoint half-open ranges of chunk indexes
// flattened into one array: [start0, end0, start1, end1, ...]. A reader asks the workers only for
// chunks in the ranges and reads the others as holes (zeros); a chunk in the ranges that no
// replica holds is lost data (EIO), never zeros. A file written in order has one range.
//
// A file written in too many separate places stops being tracked (null): its absent chunks then
// read as holes, as a file system without this record would; docs/data-path.md says so.

/** Separately written regions a file may have before it stops being tracked. */
export const chunkRangesMax = 4096;

/** Whether `ranges` is well formed: even length, each start < end, sorted, not touching, in 0..2^32. */
export function rangesProblem(ranges: readonly unknown[]): string | undefined {
  if (ranges.length % 2 !== 0) return 'an odd number of bounds';
  if (ranges.length > 2 * chunkRangesMax) return `more than ${chunkRangesMax} ranges`;
  let last = -1;
  for (let i = 0; i < ranges.length; i += 2) {
    const start = ranges[i];
    const end = ranges[i + 1];
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end)) return `bounds at ${i} are not integers`;
    const s = start as number;
    const e = end as number;
    if (s < 0 || e > 2 ** 32 || s >= e) return `range ${s}..${e} is empty or out of 0..2^32`;
    if (s <= last) return `range ${s}..${e} overlaps or touches the one before`;
    last = e;
  }
  return undefined;
}

/** The union of two range lists, or null when it has more than chunkRangesMax ranges. */
export function mergeRanges(a: readonly number[], b: readonly number[]): number[] | null {
  const pairs: [number, number][] = [];
  for (let i = 0, j = 0; i < a.length || j < b.length; ) {
    const takeA = j >= b.length || (i < a.length && a[i] <= b[j]);
    const s = takeA ? a[i] : b[j];
    const e = takeA ? a[i + 1] : b[j + 1];
    if (takeA) i += 2;
    else j += 2;
    const top = pairs[pairs.length - 1];
    if (top !== undefined && s <= top[1]) top[1] = Math.max(top[1], e);
    else pairs.push([s, e]);
  }
  return pairs.length > chunkRangesMax ? null : pairs.flat();
}

/** The ranges cut to chunks below `endChunk`. */
export function trimRanges(a: readonly number[], endChunk: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < a.length && a[i] < endChunk; i += 2) out.push(a[i], Math.min(a[i + 1], endChunk));
  return out;
}

/** Whether chunk `index` is in the ranges (binary search over the starts). */
export function inRanges(a: readonly number[], index: number): boolean {
  let lo = 0;
  let hi = a.length / 2 - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (index < a[2 * mid]) hi = mid - 1;
    else if (index >= a[2 * mid + 1]) lo = mid + 1;
    else return true;
  }
  return false;
}

/** The chunk indexes the ranges hold, from `from` on, in order. */
export function* indexesIn(ranges: readonly number[], from = 0): Generator<number> {
  for (let r = 0; r < ranges.length; r += 2) for (let i = Math.max(from, ranges[r]); i < ranges[r + 1]; i++) yield i;
}

/** Builds ranges from chunk indexes in any order (a writer's record of what it wrote). */
export class RangeSet {
  private ranges: number[] | null = [];

  add(index: number): void {
    if (this.ranges === null || inRanges(this.ranges, index)) return;
    this.ranges = mergeRanges(this.ranges, [index, index + 1]);
  }

  /** The ranges, or null when there were too many to track. */
  toArray(): number[] | null {
    return this.ranges === null ? null : [...this.ranges];
  }
}

// Binary search over sorted arrays, shared by the namespace's paged readdir and the snapshot reader.

/** The number of elements of ascending `sorted` that are <= `x`: the index of the first one greater. */
export function upperBound<T extends number | string>(sorted: readonly T[], x: T): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// The record of which chunks of a file were written (src/meta/chunk-ranges.ts), against a plain set.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { chunkRangesMax, inRanges, mergeRanges, RangeSet, rangesProblem, trimRanges } from '../../src/meta/chunk-ranges.ts';

function toSet(r: readonly number[]): Set<number> {
  const s = new Set<number>();
  for (let i = 0; i < r.length; i += 2) for (let x = r[i]; x < r[i + 1]; x++) s.add(x);
  return s;
}

function fromSet(xs: Iterable<number>): number[] {
  const r = new RangeSet();
  for (const x of xs) r.add(x);
  return r.toArray()!;
}

const indexes = fc.array(fc.nat(200), { maxLength: 60 });

test('property: ranges built from any indexes are well formed and hold exactly those indexes', () => {
  fc.assert(
    fc.property(indexes, (xs) => {
      const r = fromSet(xs);
      assert.equal(rangesProblem(r), undefined);
      assert.deepEqual([...toSet(r)].sort((a, b) => a - b), [...new Set(xs)].sort((a, b) => a - b));
      for (let x = 0; x <= 201; x++) assert.equal(inRanges(r, x), xs.includes(x), `index ${x}`);
    }),
  );
});

test('property: merge is union, trim cuts', () => {
  fc.assert(
    fc.property(indexes, indexes, fc.nat(210), (a, b, cut) => {
      const ra = fromSet(a);
      const rb = fromSet(b);
      const m = mergeRanges(ra, rb)!;
      assert.equal(rangesProblem(m), undefined);
      assert.deepEqual(toSet(m), new Set([...a, ...b]));
      assert.deepEqual(toSet(trimRanges(m, cut)), new Set([...a, ...b].filter((x) => x < cut)));
    }),
  );
});

test('malformed ranges are refused; too many stop being tracked', () => {
  assert.match(rangesProblem([1]) ?? '', /odd/);
  assert.match(rangesProblem([3, 3]) ?? '', /empty/);
  assert.match(rangesProblem([0, 2, 2, 4]) ?? '', /touches/);
  assert.match(rangesProblem([4, 6, 0, 2]) ?? '', /overlaps/);
  assert.match(rangesProblem([0, 2 ** 32 + 1]) ?? '', /out of/);
  assert.match(rangesProblem([0.5, 2]) ?? '', /not integers/);
  const r = new RangeSet();
  for (let i = 0; i < chunkRangesMax; i++) r.add(2 * i);
  assert.equal(r.toArray()!.length, 2 * chunkRangesMax);
  r.add(2 * chunkRangesMax);
  assert.equal(r.toArray(), null, 'one region too many: untracked');
});

// The pool of large reusable buffers (src/buffer-pool.ts): size classes, reuse, the idle cap,
// and that a buffer given back twice is never handed to two readers.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BufferPool } from '../../src/buffer-pool.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

test('take rounds up to a power-of-two class of at least 64 KiB and reuses what was given back', () => {
  const pool = new BufferPool({ idleBytesMax: 16 * MiB, classBytesMax: 4 * MiB });
  const a = pool.take(1);
  assert.equal(a.length, 64 * KiB);
  const b = pool.take(3 * MiB + 1);
  assert.equal(b.length, 4 * MiB);
  pool.give(b);
  assert.equal(pool.idleBytesNow, 4 * MiB);
  assert.equal(pool.take(4 * MiB), b, 'the same class is reused');
  assert.notEqual(pool.take(4 * MiB), b, 'and not handed out twice');
  assert.equal(pool.take(5 * MiB).length, 5 * MiB, 'above the largest class: exactly the size, not pooled');
});

test('a buffer given back twice is pooled once; foreign buffers and views are ignored; idle memory is capped', () => {
  const pool = new BufferPool({ idleBytesMax: 2 * MiB, classBytesMax: 4 * MiB });
  const a = pool.take(MiB);
  pool.give(a);
  pool.give(a);
  assert.equal(pool.idleBytesNow, MiB);
  const first = pool.take(MiB);
  const second = pool.take(MiB);
  assert.equal(first, a);
  assert.notEqual(second, a, 'the double give did not hand it out again');
  pool.give(Buffer.alloc(100));
  pool.give(first.subarray(0, 64 * KiB));
  assert.equal(pool.idleBytesNow, 0);
  pool.give(first);
  pool.give(second);
  assert.equal(pool.idleBytesNow, 2 * MiB);
  pool.give(Buffer.allocUnsafeSlow(MiB));
  assert.equal(pool.idleBytesNow, 2 * MiB, 'the cap holds');
});

test('with a granularity, classes are its multiples: a chunk with a frame header takes one step more, not twice', () => {
  const pool = new BufferPool({ idleBytesMax: 16 * MiB, classBytesMax: 8 * MiB, granularityBytes: 64 * KiB });
  assert.equal(pool.take(1).length, 64 * KiB);
  const b = pool.take(4 * MiB + 100);
  assert.equal(b.length, 4 * MiB + 64 * KiB);
  pool.give(b);
  assert.equal(pool.take(4 * MiB + 60 * KiB), b, 'a size in the same class reuses it');
  assert.equal(pool.bytesFor(4 * MiB), 4 * MiB);
});

test('with an allocator, its buffers (views of larger ones) are reused, and nothing else of their size is taken back', () => {
  const made: Buffer[] = [];
  const pool = new BufferPool({ idleBytesMax: 8 << 20, classBytesMax: 4 << 20, granularityBytes: 1 << 20, allocate: (bytes) => {
    const b = Buffer.allocUnsafeSlow(bytes + 4096).subarray(100, 100 + bytes);
    made.push(b);
    return b;
  } });
  const a = pool.take(1_500_000);
  assert.equal(a.byteLength, 2 << 20);
  assert.equal(made.length, 1);
  pool.give(a);
  assert.equal(pool.take(2 << 20), a, 'reused');
  // A view of the same size it did not make, and a whole buffer of it, are left to the GC.
  pool.give(Buffer.allocUnsafeSlow((2 << 20) + 4096).subarray(0, 2 << 20));
  pool.give(Buffer.allocUnsafeSlow(2 << 20));
  assert.equal(pool.idleBytesNow, 0);
  assert.notEqual(pool.take(2 << 20), a);
  assert.equal(made.length, 2, 'a new one from the allocator');
  // Past the largest class: the allocator's, exactly the bytes asked, not kept.
  const big = pool.take(5 << 20);
  assert.equal(big.byteLength, 5 << 20);
  assert.equal(made.length, 3);
  pool.give(big);
  assert.equal(pool.idleBytesNow, 0);
});

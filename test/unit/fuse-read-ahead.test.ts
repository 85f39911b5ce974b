// The mount's read-ahead (src/fuse/read-ahead.ts): sequential reads are served from whole chunks
// fetched ahead, random reads are left to the caller, and the memory it holds stays in its budget.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ChunkReadAhead, ReadAheadBudget } from '../../src/fuse/read-ahead.ts';

const chunkSizeBytes = 1000;

/** A file of `size` bytes whose byte i is i % 251, with the chunk fetches it saw. */
function fixture(size: number, opts: { chunksAhead?: number; budgetBytes?: number; fail?: (index: number) => boolean } = {}) {
  const content = Buffer.alloc(size);
  for (let i = 0; i < size; i++) content[i] = i % 251;
  const fetched: number[] = [];
  /** Chunk indexes whose buffers were given back, in order. */
  const released: number[] = [];
  const budget = new ReadAheadBudget(opts.budgetBytes ?? 1_000_000);
  let sizeBytes = size;
  const ra = new ChunkReadAhead({
    chunkSizeBytes,
    sizeBytes: () => sizeBytes,
    chunksAhead: opts.chunksAhead ?? 3,
    budget,
    fetch: async (index) => {
      fetched.push(index);
      await new Promise((r) => setImmediate(r));
      if (opts.fail?.(index) === true) throw new Error(`chunk ${index} failed`);
      return { data: content.subarray(index * chunkSizeBytes, Math.min(sizeBytes, (index + 1) * chunkSizeBytes)), release: () => released.push(index) };
    },
  });
  return { content, fetched, released, budget, ra, resize: (n: number) => (sizeBytes = n) };
}

test('a sequential reader gets exact bytes from whole chunks fetched ahead, each once', async () => {
  const f = fixture(10_500);
  const into = Buffer.alloc(300);
  for (let pos = 0; pos < 10_500; pos += 300) {
    const n = await f.ra.read(pos, 300, into);
    assert.equal(n, Math.min(300, 10_500 - pos));
    assert.deepEqual(into.subarray(0, n), f.content.subarray(pos, pos + n));
    assert.ok(f.budget.used <= 4 * chunkSizeBytes, `holds ${f.budget.used} bytes`);
  }
  assert.deepEqual(f.fetched, [...Array(11).keys()]);
  f.ra.clear();
  assert.equal(f.budget.used, 0);
});

test('the first read fetches the chunks ahead at once', async () => {
  const f = fixture(10_000, { chunksAhead: 4 });
  await f.ra.read(0, 100, Buffer.alloc(100));
  assert.deepEqual(f.fetched, [0, 1, 2, 3]);
});

test('a read that is not sequential is left to the caller and fetches nothing', async () => {
  const f = fixture(10_000);
  await f.ra.read(0, 100, Buffer.alloc(100));
  f.fetched.length = 0;
  assert.equal(f.ra.read(7_500, 100, Buffer.alloc(100)), undefined);
  assert.deepEqual(f.fetched, []);
});

test('the budget bounds what every reader holds; past it reads are left to the caller', async () => {
  const budget = 2_500;
  const a = fixture(10_000, { budgetBytes: budget });
  const b = new ChunkReadAhead({ chunkSizeBytes, sizeBytes: () => 10_000, chunksAhead: 3, budget: a.budget, fetch: async () => ({ data: Buffer.alloc(chunkSizeBytes), release: () => undefined }) });
  assert.equal(await a.ra.read(0, 100, Buffer.alloc(100)), 100);
  assert.equal(a.budget.used, 2_000); // a third chunk would pass the budget
  assert.equal(b.read(0, 100, Buffer.alloc(100)), undefined);
  a.ra.clear();
  assert.equal(await b.read(0, 100, Buffer.alloc(100)), 100);
  assert.ok(a.budget.used <= budget);
});

test('a failed fetch fails the read, is forgotten, and the next read asks again', async () => {
  let failing = true;
  const f = fixture(5_000, { fail: (i) => i === 1 && failing });
  await f.ra.read(0, 1_000, Buffer.alloc(1_000));
  await assert.rejects(f.ra.read(1_000, 500, Buffer.alloc(500))!, /chunk 1 failed/);
  failing = false;
  const into = Buffer.alloc(500);
  assert.equal(await f.ra.read(1_000, 500, into), 500);
  assert.deepEqual(into, f.content.subarray(1_000, 1_500));
  assert.equal(f.fetched.filter((i) => i === 1).length, 2);
});

test('a chunk fetched before the file shrank ends the read where its bytes end', async () => {
  const f = fixture(3_000);
  await f.ra.read(0, 100, Buffer.alloc(100));
  f.resize(1_500);
  f.ra.clear();
  const into = Buffer.alloc(1_000);
  assert.equal(await f.ra.read(0, 1_000, into), 1_000);
  assert.equal(await f.ra.read(1_000, 1_000, into), 500);
  assert.equal(f.ra.read(1_500, 100, into), undefined);
});

test('reads in any order of sequential windows return the file\'s bytes, within the budget', async () => {
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 1, max: 8_000 }), fc.array(fc.record({ seq: fc.boolean(), at: fc.nat(8_000), len: fc.integer({ min: 1, max: 2_500 }) }), { maxLength: 40 }), async (size, reads) => {
      const f = fixture(size, { budgetBytes: 3_000 });
      let next = 0;
      for (const r of reads) {
        const pos = r.seq ? next : r.at % size;
        const into = Buffer.alloc(r.len);
        const n = await f.ra.read(pos, r.len, into);
        if (n === undefined) continue;
        assert.deepEqual(into.subarray(0, n), f.content.subarray(pos, pos + n));
        assert.equal(n, Math.min(r.len, size - pos));
        assert.ok(f.budget.used <= 3_000);
        next = pos + n;
      }
      f.ra.clear();
      assert.equal(f.budget.used, 0);
    }),
  );
});

test('each fetched chunk is given back once; a chunk dropped while a read copies out of it only after that read', async () => {
  const f = fixture(10_500);
  const into = Buffer.alloc(300);
  for (let pos = 0; pos < 10_500; pos += 300) await f.ra.read(pos, 300, into);
  f.ra.clear();
  const settled = (): Promise<unknown> => new Promise((r) => setImmediate(r)); // a chunk goes back once its fetch has settled
  await settled();
  assert.deepEqual([...f.released].sort((a, b) => a - b), f.fetched, 'every chunk once');

  // Chunk 0 arrives late: a read of it waits while a read further on drops it.
  const content = Buffer.alloc(4_000, 7);
  const released: number[] = [];
  let arrive0: (() => void) | undefined;
  const ra = new ChunkReadAhead({
    chunkSizeBytes,
    sizeBytes: () => content.length,
    chunksAhead: 3,
    budget: new ReadAheadBudget(1_000_000),
    fetch: async (index) => {
      if (index === 0) await new Promise<void>((r) => (arrive0 = r));
      return { data: content.subarray(index * chunkSizeBytes, (index + 1) * chunkSizeBytes), release: () => released.push(index) };
    },
  });
  const first = Buffer.alloc(500);
  const waiting = ra.read(0, 500, first)!;
  await new Promise((r) => setImmediate(r));
  assert.equal(await ra.read(2_000, 500, Buffer.alloc(500)), 500); // chunk 0 is behind the reader now: dropped
  await settled();
  assert.deepEqual(released, [], 'not given back while a read still waits to copy out of it');
  arrive0!();
  assert.equal(await waiting, 500);
  assert.deepEqual(first, content.subarray(0, 500));
  await settled();
  assert.deepEqual(released, [0], 'given back once that read is done');
  ra.clear();
  await settled();
  assert.deepEqual([...released].sort(), [0, 1, 2, 3]);
});

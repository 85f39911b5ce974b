// Tests of the segmented WAL on a real file system: reopen, rolling, release, torn-tail repair
// and corruption that no torn write explains.

import assert from 'node:assert/strict';
import { appendFile, mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import { nodeDisk } from '../../src/io/node-disk.ts';
import type { Entry, HardState, SnapshotMeta } from '../../src/raft/types.ts';
import fc from 'fast-check';
import { decodeRecords, replayLog, replayRecords, termAt } from '../../src/journal/raft/wal-record.ts';
import type { LogShape, WalRecord } from '../../src/journal/raft/wal-record.ts';
import { Wal } from '../../src/journal/raft/wal.ts';
import type { WalOptions } from '../../src/journal/raft/wal.ts';

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-wal-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function entries(from: number, to: number, term: number, dataBytes = 8): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push({ index: i, term, type: 0, data: new Uint8Array(dataBytes).fill(i & 0xff) });
  return out;
}

const hs = (term: number, vote: number, commit: number): HardState => ({ term, vote, commit });
const meta = (index: number, term: number): SnapshotMeta => ({ index, term, conf: { voters: [1, 2, 3], learners: [] } });

async function segmentFiles(dir: string): Promise<string[]> {
  return (await readdir(path.join(dir, 'wal'))).filter((n) => n.endsWith('.wal')).sort().map((n) => path.join(dir, 'wal', n));
}

/** Opens, runs `body`, closes; the state is what a later reopen must reproduce. */
async function withWal(dir: string, body: (wal: Wal) => Promise<void>, opts?: WalOptions): Promise<void> {
  const { wal } = await Wal.open(nodeDisk, dir, opts);
  try {
    await body(wal);
  } finally {
    await wal.close();
  }
}

async function reopen(dir: string, opts?: WalOptions) {
  const result = await Wal.open(nodeDisk, dir, opts);
  await result.wal.close();
  return result;
}

const corruptCode = (err: Error & { code?: string }) => err.code === 'CAIRN_WAL_CORRUPT';

test('a fresh log is empty, and saves survive a reopen', async (t) => {
  const dir = await tempDir(t);
  const first = await Wal.open(nodeDisk, dir);
  assert.deepEqual(first.state, { hardState: hs(0, 0, 0), entries: [] });
  assert.equal(first.repair, undefined);
  await first.wal.save(hs(1, 1, 0), entries(1, 3, 1));
  await first.wal.save(undefined, entries(4, 5, 1));
  await first.wal.save(hs(1, 1, 4), []);
  await first.wal.close();

  const { state, repair } = await reopen(dir);
  assert.equal(repair, undefined);
  assert.deepEqual(state, { hardState: hs(1, 1, 4), entries: entries(1, 5, 1) });
});

test('each save costs one sync; an empty save costs nothing', async (t) => {
  const dir = await tempDir(t);
  await withWal(dir, async (wal) => {
    const before = wal.stats();
    await wal.save(hs(1, 0, 0), entries(1, 100, 1));
    await wal.save(undefined, []);
    const after = wal.stats();
    assert.equal(after.syncs - before.syncs, 1);
    assert.ok(after.bytesWritten > before.bytesWritten);
    await wal.save(undefined, []);
    assert.deepEqual(wal.stats(), after);
  });
});

test('a conflicting suffix is replaced across a reopen', async (t) => {
  const dir = await tempDir(t);
  await withWal(dir, async (wal) => {
    await wal.save(hs(1, 1, 0), entries(1, 5, 1));
    await wal.save(hs(2, 2, 2), entries(3, 4, 2));
  });
  const { state } = await reopen(dir);
  assert.deepEqual(state.entries, [...entries(1, 2, 1), ...entries(3, 4, 2)]);
});

test('invalid saves are refused before anything reaches the disk', async (t) => {
  const dir = await tempDir(t);
  await withWal(dir, async (wal) => {
    await wal.save(hs(2, 1, 3), entries(1, 3, 2));
    const written = wal.stats().bytesWritten;
    const code = (expected: string) => (err: Error & { code?: string }) => err.code === expected;
    await assert.rejects(wal.save(undefined, entries(5, 6, 2)), code('CAIRN_WAL_BAD_APPEND'));
    await assert.rejects(wal.save(hs(1, 1, 3), []), code('CAIRN_WAL_BAD_APPEND'));
    await assert.rejects(wal.save(hs(2, 1, 2), []), code('CAIRN_WAL_BAD_APPEND'));
    await assert.rejects(wal.save(hs(2, 3, 3), []), code('CAIRN_WAL_BAD_APPEND'), 'a second vote in one term');
    await assert.rejects(wal.save(undefined, entries(4, 4, 1)), code('CAIRN_WAL_BAD_APPEND'), 'term going backwards');
    assert.equal(wal.stats().bytesWritten, written);
    await wal.save(hs(3, 0, 3), entries(4, 4, 3));
  });
  const { state } = await reopen(dir);
  assert.deepEqual(state, { hardState: hs(3, 0, 3), entries: [...entries(1, 3, 2), ...entries(4, 4, 3)] });
});

test('concurrent saves are applied in call order', async (t) => {
  const dir = await tempDir(t);
  await withWal(dir, async (wal) => {
    await Promise.all([1, 2, 3, 4, 5].map((i) => wal.save(hs(1, 1, i - 1), entries(i, i, 1))));
  });
  const { state } = await reopen(dir);
  assert.deepEqual(state, { hardState: hs(1, 1, 4), entries: entries(1, 5, 1) });
});

test('segments roll at segmentBytesMax and each starts with the state so far', async (t) => {
  const dir = await tempDir(t);
  const opts = { segmentBytesMax: 512 };
  await withWal(
    dir,
    async (wal) => {
      await wal.saveSnapshotMeta(meta(0, 0));
      for (let i = 1; i <= 30; i++) await wal.save(hs(1, 1, i - 1), entries(i, i, 1, 100));
      assert.equal(wal.stats().segments, (await segmentFiles(dir)).length);
    },
    opts,
  );
  const files = await segmentFiles(dir);
  assert.ok(files.length >= 5, `${files.length} segments`);
  for (const file of files) {
    const bytes = await readFile(file);
    assert.ok(bytes.length <= 512, `${file} has ${bytes.length} bytes`);
    const { records } = decodeRecords(bytes);
    assert.equal(records[0].kind, 'hardState');
    assert.equal(records[1].kind, 'snapshot');
  }
  assert.deepEqual((await reopen(dir, opts)).state, { hardState: hs(1, 1, 29), entries: entries(1, 30, 1, 100), snapshot: meta(0, 0) });
});

test('a batch larger than a segment gets a segment of its own', async (t) => {
  const dir = await tempDir(t);
  const opts = { segmentBytesMax: 256 };
  await withWal(dir, (wal) => wal.save(hs(1, 1, 0), entries(1, 10, 1, 100)), opts);
  assert.deepEqual((await reopen(dir, opts)).state.entries, entries(1, 10, 1, 100));
});

test('releaseTo deletes segments a snapshot covers, and a reopen still yields the state', async (t) => {
  const dir = await tempDir(t);
  const opts = { segmentBytesMax: 512 };
  await withWal(
    dir,
    async (wal) => {
      for (let i = 1; i <= 30; i++) await wal.save(hs(1, 1, i), entries(i, i, 1, 100));
      await assert.rejects(wal.releaseTo(10), (err: Error & { code?: string }) => err.code === 'CAIRN_WAL_BAD_RELEASE');
      await wal.saveSnapshotMeta(meta(20, 1));
      for (let i = 31; i <= 40; i++) await wal.save(hs(2, 2, i), entries(i, i, 2, 100));
      const before = (await segmentFiles(dir)).length;
      const deleted = await wal.releaseTo(20);
      assert.ok(deleted > 0);
      assert.equal((await segmentFiles(dir)).length, before - deleted);
      assert.equal(wal.stats().segments, before - deleted);
    },
    opts,
  );
  const { state } = await reopen(dir, opts);
  assert.deepEqual(state, {
    hardState: hs(2, 2, 40),
    entries: [...entries(21, 30, 1, 100), ...entries(31, 40, 2, 100)],
    snapshot: meta(20, 1),
  });
});

test('releaseTo at any snapshot index keeps what replay needs', async (t) => {
  for (const segmentBytesMax of [256, 700]) {
    for (let snapIndex = 1; snapIndex <= 30; snapIndex += 7) {
      for (const snapTerm of [1, 2]) {
        const label = `segmentBytesMax ${segmentBytesMax}, snapshot (${snapIndex}, ${snapTerm})`;
        const dir = await tempDir(t);
        const opts = { segmentBytesMax };
        // A snapshot of another term than the stored entry replaces the whole log after it.
        const tail = snapTerm === 1 ? entries(snapIndex + 1, 30, 1, 100) : [];
        const next = snapIndex + tail.length + 1;
        let deleted = 0;
        await withWal(
          dir,
          async (wal) => {
            for (let i = 1; i <= 30; i++) await wal.save(hs(1, 1, 0), entries(i, i, 1, 100));
            await wal.saveSnapshotMeta(meta(snapIndex, snapTerm));
            deleted += await wal.releaseTo(snapIndex);
            for (let i = next; i < next + 10; i++) await wal.save(hs(2, 2, 0), entries(i, i, 2, 100));
            deleted += await wal.releaseTo(snapIndex);
          },
          opts,
        );
        const { state } = await reopen(dir, opts);
        const expected = [...tail, ...entries(next, next + 9, 2, 100)];
        assert.deepEqual(state, { hardState: hs(2, 2, 0), entries: expected, snapshot: meta(snapIndex, snapTerm) }, label);
        if (snapIndex >= 15) assert.ok(deleted > 0, `${label}: nothing released`);
      }
    }
  }
});

test('releaseTo never deletes the current segment', async (t) => {
  const dir = await tempDir(t);
  await withWal(dir, async (wal) => {
    await wal.save(hs(1, 1, 3), entries(1, 3, 1));
    await wal.saveSnapshotMeta(meta(3, 1));
    assert.equal(await wal.releaseTo(3), 0);
  });
  assert.deepEqual((await reopen(dir)).state, { hardState: hs(1, 1, 3), entries: [], snapshot: meta(3, 1) });
});

test('garbage appended to the last segment is cut off and reported', async (t) => {
  const dir = await tempDir(t);
  await withWal(dir, (wal) => wal.save(hs(1, 1, 2), entries(1, 3, 1)));
  const [file] = await segmentFiles(dir);
  const goodBytes = (await stat(file)).size;
  await appendFile(file, Buffer.from('this is not a frame at all'));

  const { state, repair } = await reopen(dir);
  assert.deepEqual(state, { hardState: hs(1, 1, 2), entries: entries(1, 3, 1) });
  assert.deepEqual(repair && { ...repair, problem: repair.problem.replace(/ \(.*/, '') }, {
    segment: file,
    truncatedBytes: 26,
    problem: `oversized frame at offset ${goodBytes}`,
  });
  assert.equal((await stat(file)).size, goodBytes);
  assert.equal((await reopen(dir)).repair, undefined, 'the repair is durable');
});

test('a last segment cut mid-record loses only the torn batch, and appending resumes', async (t) => {
  const dir = await tempDir(t);
  await withWal(dir, async (wal) => {
    await wal.save(hs(1, 1, 0), entries(1, 3, 1));
    await wal.save(hs(1, 1, 3), entries(4, 6, 1));
  });
  const [file] = await segmentFiles(dir);
  await truncate(file, (await stat(file)).size - 5);

  const { wal, state, repair } = await Wal.open(nodeDisk, dir);
  assert.deepEqual(state, { hardState: hs(1, 1, 0), entries: entries(1, 6, 1) });
  assert.match(repair!.problem, /^short frame at offset/);
  await wal.save(hs(1, 1, 7), entries(7, 7, 1));
  await wal.close();
  assert.deepEqual((await reopen(dir)).state, { hardState: hs(1, 1, 7), entries: entries(1, 7, 1) });
});

test('an empty last segment, as after a crash while creating it, gets its header back', async (t) => {
  const dir = await tempDir(t);
  const opts = { segmentBytesMax: 256 };
  await withWal(dir, (wal) => wal.save(hs(1, 1, 1), entries(1, 2, 1, 100)), opts);
  const files = await segmentFiles(dir);
  await writeFile(path.join(dir, 'wal', `${(files.length).toString(16).padStart(16, '0')}.wal`), '');
  const { wal, state } = await Wal.open(nodeDisk, dir, opts);
  assert.deepEqual(state, { hardState: hs(1, 1, 1), entries: entries(1, 2, 1, 100) });
  await wal.close();
  const last = (await segmentFiles(dir)).at(-1)!;
  assert.equal(decodeRecords(await readFile(last)).records[0].kind, 'hardState');
});

/** A one-segment log of 20 batches (entries, then the hard state); its file and the state it holds. */
async function oneSegment(dir: string): Promise<{ file: string; bytes: Buffer }> {
  await withWal(dir, async (wal) => {
    for (let i = 1; i <= 20; i++) await wal.save(hs(2, 1, i - 1), entries(i, i, 2, 100));
  });
  const [file] = await segmentFiles(dir);
  return { file, bytes: await readFile(file) };
}

/** Overwrites `count` bytes of `file` at `offset` with their complement, as `dd` of other data would. */
async function overwrite(file: string, offset: number, count: number): Promise<Buffer> {
  const bytes = await readFile(file);
  for (let i = offset; i < offset + count; i++) bytes[i] ^= 0xff;
  await writeFile(file, bytes);
  return bytes;
}

test('damage in the middle of the last segment, with valid records after it, is corruption: nothing is cut', async (t) => {
  const dir = await tempDir(t);
  const { file, bytes } = await oneSegment(dir);
  // In an entry's data, then across a frame header (so the length itself is wrong).
  const frameAt = decodeRecords(bytes.subarray(0, Math.floor(bytes.length / 2))).validBytes;
  for (const offset of [Math.floor(bytes.length / 2), frameAt - 4]) {
    await writeFile(file, bytes);
    const damaged = await overwrite(file, offset, 8);
    await assert.rejects(Wal.open(nodeDisk, dir), (err: Error & { code?: string }) => {
      assert.ok(corruptCode(err), err.message);
      assert.ok(err.message.includes(file), err.message);
      const at = Number(/damaged at offset (\d+)/.exec(err.message)?.[1]);
      assert.ok(at <= offset && offset < at + 200, `damage at ${offset}, reported at ${at}: ${err.message}`);
      assert.match(err.message, /a valid record follows at offset \d+/);
      assert.match(err.message, /rebuild it from its peers/);
      assert.doesNotMatch(err.message, /\n/);
      return true;
    });
    assert.deepEqual(await readFile(file), damaged, `offset ${offset}: the segment is left exactly as it was`);
  }
});

test('damage in the last batch with nothing valid after it is a torn tail: cut off as before', async (t) => {
  const dir = await tempDir(t);
  await withWal(dir, async (wal) => {
    await wal.save(hs(1, 1, 0), entries(1, 3, 1, 100));
    await wal.save(undefined, entries(4, 6, 1, 100));
  });
  const [file] = await segmentFiles(dir);
  const size = (await stat(file)).size;
  await overwrite(file, size - 200, 8);
  const { state, repair } = await reopen(dir);
  assert.deepEqual(state, { hardState: hs(1, 1, 0), entries: entries(1, 3, 1, 100) });
  assert.ok(repair !== undefined && repair.truncatedBytes > 200, JSON.stringify(repair));
  assert.equal((await stat(file)).size, size - repair.truncatedBytes);
});

test('a flipped bit in the very last frame is a torn tail: cut off', async (t) => {
  const dir = await tempDir(t);
  const { file, bytes } = await oneSegment(dir);
  const damaged = Buffer.from(bytes);
  damaged[damaged.length - 3] ^= 0x10;
  await writeFile(file, damaged);
  const { state, repair } = await reopen(dir);
  // The last frame is the last batch's hard state: its entries stay, the hard state before it wins.
  assert.deepEqual(state, { hardState: hs(2, 1, 18), entries: entries(1, 20, 2, 100) });
  assert.match(repair!.problem, /^crc mismatch at offset/);
  assert.deepEqual(await readFile(file), bytes.subarray(0, bytes.length - repair!.truncatedBytes));
});

/** A log of 20 entries in 512-byte segments (at least three); its options and segment files. */
async function smallSegments(dir: string): Promise<{ opts: WalOptions; files: string[] }> {
  const opts = { segmentBytesMax: 512 };
  await withWal(dir, async (wal) => {
    for (let i = 1; i <= 20; i++) await wal.save(hs(1, 1, i), entries(i, i, 1, 100));
  }, opts);
  return { opts, files: await segmentFiles(dir) };
}

test('corruption in a middle segment throws CAIRN_WAL_CORRUPT naming the file and offset', async (t) => {
  const dir = await tempDir(t);
  const { opts, files } = await smallSegments(dir);
  assert.ok(files.length >= 3);
  const bytes = await readFile(files[1]);
  bytes[bytes.length - 10] ^= 0x40;
  await writeFile(files[1], bytes);
  await assert.rejects(Wal.open(nodeDisk, dir, opts), (err: Error & { code?: string }) => {
    assert.ok(corruptCode(err));
    assert.ok(err.message.includes(files[1]), err.message);
    const at = Number(/damaged at offset (\d+) \(crc mismatch\)/.exec(err.message)?.[1]);
    assert.ok(at <= bytes.length - 10 && at > 0, err.message);
    assert.match(err.message, /not the last segment.*rebuild it from its peers/);
    assert.doesNotMatch(err.message, /\n/);
    return true;
  });
  assert.deepEqual(await readFile(files[1]), bytes, 'a middle segment is never truncated');
});

test('a missing middle segment throws CAIRN_WAL_CORRUPT', async (t) => {
  const dir = await tempDir(t);
  const { opts, files } = await smallSegments(dir);
  await rm(files[1]);
  await assert.rejects(Wal.open(nodeDisk, dir, opts), corruptCode);
});

test('a closed log refuses work, and bad options are refused', async (t) => {
  const dir = await tempDir(t);
  const { wal } = await Wal.open(nodeDisk, dir);
  await wal.close();
  await wal.close();
  await assert.rejects(wal.save(hs(1, 0, 0), []), (err: Error & { code?: string }) => err.code === 'CAIRN_WAL_CLOSED');
  await assert.rejects(Wal.open(nodeDisk, dir, { segmentBytesMax: 10 }), (err: Error & { code?: string }) => err.code === 'CAIRN_WAL_BAD_OPTION');
});

/** One step of the model test, drawn as plain numbers and turned into a valid call below. */
type Step = { op: 'append' | 'hardState' | 'snapshot' | 'release' | 'reopen'; a: number; b: number; c: number };

const stepArb = fc.record(
  {
    op: fc.constantFrom('append', 'append', 'append', 'append', 'hardState', 'snapshot', 'release', 'release', 'reopen'),
    a: fc.nat(1000),
    b: fc.nat(1000),
    c: fc.nat(1000),
  },
  { noNullPrototype: true },
) as fc.Arbitrary<Step>;

test('property: any mix of saves, snapshots, releases and reopens replays to the model', async (t) => {
  const root = await tempDir(t);
  let run = 0;
  let released = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(stepArb, { minLength: 1, maxLength: 80, size: 'large' }), fc.constantFrom(150, 300, 1000), async (steps, segmentBytesMax) => {
      const dir = path.join(root, String(run++));
      const opts = { segmentBytesMax };
      const written: WalRecord[] = [];
      let { wal } = await Wal.open(nodeDisk, dir, opts);
      let term = 1;
      try {
        for (const step of steps) {
          const { shape } = replayLog(written);
          if (step.op === 'append') {
            const start = appendStart(shape, step.a);
            if (step.b % 4 === 0) term++;
            const batch = entries(start, start + (step.b % 4), term, step.c % 200);
            await wal.save(undefined, batch);
            written.push({ kind: 'entries', entries: batch });
          } else if (step.op === 'hardState') {
            const current = replayLog(written).state.hardState;
            const next = hs(term, current.term === term ? current.vote : 1 + (step.a % 3), current.commit + (step.b % 3));
            await wal.save(next, []);
            written.push({ kind: 'hardState', hardState: next });
          } else if (step.op === 'snapshot') {
            const snap = snapshotFor(shape, step.a, step.b);
            await wal.saveSnapshotMeta(snap);
            written.push({ kind: 'snapshot', meta: snap });
            term = Math.max(term, snap.term);
          } else if (step.op === 'release' && shape.snapshot) {
            const index = step.b % 2 === 0 ? shape.snapshot.index : step.a % (shape.snapshot.index + 1);
            released += await wal.releaseTo(index);
          } else if (step.op === 'reopen') {
            await wal.close();
            const opened = await Wal.open(nodeDisk, dir, opts);
            wal = opened.wal;
            assert.deepEqual(opened.state, replayRecords(written));
          }
        }
      } finally {
        await wal.close();
      }
      const { state } = await reopen(dir, opts);
      assert.deepEqual(state, replayRecords(written));
    }),
    { numRuns: Number(process.env.CAIRN_WAL_PROPERTY_RUNS ?? 60) },
  );
  assert.ok(released > 10, `only ${released} segments released in all runs: the test does not exercise releaseTo`);
});

/** A valid first index for an append: anywhere from the log's start (or the snapshot) to its end. */
function appendStart(shape: LogShape, pick: number): number {
  const low = shape.snapshot ? shape.snapshot.index + 1 : 1;
  const first = Math.max(low, shape.lastIndex >= shape.firstIndex ? shape.firstIndex : low);
  const next = Math.max(first, shape.lastIndex + 1);
  return first + (pick % (next - first + 1));
}

/** A snapshot at or after the current one: usually of a stored entry, sometimes of another history. */
function snapshotFor(shape: LogShape, pick: number, kind: number): SnapshotMeta {
  const low = shape.snapshot?.index ?? 0;
  const high = Math.max(low, shape.lastIndex) + 2;
  const index = low + (pick % (high - low + 1));
  const known = termAt(shape, index);
  const term = known === undefined || kind % 5 === 0 ? (known ?? 1) + 1 + (kind % 2) : known;
  return meta(index, term);
}

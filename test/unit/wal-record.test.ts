// Tests of the pure WAL record codec: framing, torn-tail detection and replay semantics.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { crc32c } from '@node-rs/crc32';
import fc from 'fast-check';
import type { Entry, EntryType, HardState, SnapshotMeta } from '../../src/raft/types.ts';
import {
  decodeRecords,
  encodeRecords,
  entriesRecords,
  frameHeaderBytes,
  recordBytesMax,
  replayRecords,
} from '../../src/journal/raft/wal-record.ts';
import type { WalRecord } from '../../src/journal/raft/wal-record.ts';

function entry(index: number, term: number, text = `e${index}`, type: EntryType = 0): Entry {
  return { index, term, type, data: new TextEncoder().encode(text) };
}

function entries(from: number, to: number, term: number): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push(entry(i, term));
  return out;
}

const meta = (index: number, term: number): SnapshotMeta => ({ index, term, conf: { voters: [1, 2, 3], learners: [4] } });
const hs = (term: number, vote: number, commit: number): HardState => ({ term, vote, commit });

const sample: WalRecord[] = [
  { kind: 'hardState', hardState: hs(3, 2, 7) },
  { kind: 'entries', entries: [entry(1, 1), entry(2, 1, '', 1), entry(3, 2, 'x'.repeat(300))] },
  { kind: 'snapshot', meta: meta(2, 1) },
  { kind: 'hardState', hardState: hs(Number.MAX_SAFE_INTEGER, 2 ** 40, 2 ** 32 + 5) },
  { kind: 'entries', entries: [entry(2 ** 33, 2 ** 32, 'big index')] },
  { kind: 'snapshot', meta: { index: 2 ** 35, term: 9, conf: { voters: [], learners: [] } } },
];

test('every record kind round-trips, including values above 2^32', () => {
  for (const record of sample) {
    const decoded = decodeRecords(encodeRecords([record]));
    assert.deepEqual(decoded, { records: [record], validBytes: encodeRecords([record]).length, tornBytes: 0 });
  }
  const all = encodeRecords(sample);
  assert.deepEqual(decodeRecords(all).records, sample);
  assert.deepEqual(decodeRecords(new Uint8Array(0)), { records: [], validBytes: 0, tornBytes: 0 });
});

test('decoded entry data are views into the input, not copies', () => {
  const buf = encodeRecords([sample[1]]);
  const [record] = decodeRecords(buf).records;
  assert.equal(record.kind, 'entries');
  if (record.kind !== 'entries') return;
  assert.equal(record.entries[2].data.buffer, buf.buffer);
  assert.equal(Object.getPrototypeOf(record.entries[2].data), Uint8Array.prototype);
});

test('encode rejects numbers that do not fit the format', () => {
  for (const bad of [-1, 1.5, 2 ** 53, Number.NaN]) {
    assert.throws(() => encodeRecords([{ kind: 'hardState', hardState: hs(bad, 0, 0) }]), /safe integer/);
  }
  assert.throws(() => encodeRecords([{ kind: 'entries', entries: [{ ...entry(1, 1), type: 7 as EntryType }] }]), /entry type/);
});

test('a record above recordBytesMax is refused, and entriesRecords splits a batch to fit', () => {
  const huge = new Uint8Array(recordBytesMax);
  assert.throws(
    () => encodeRecords([{ kind: 'entries', entries: [{ index: 1, term: 1, type: 0, data: huge }] }]),
    (err: Error & { code?: string }) => err.code === 'CAIRN_WAL_RECORD_TOO_LARGE',
  );
  const half = huge.subarray(0, recordBytesMax / 2);
  const batch = [1, 2, 3].map((index) => ({ index, term: 1, type: 0 as const, data: half }));
  const records = entriesRecords(batch);
  assert.deepEqual(
    records.map((r) => (r.kind === 'entries' ? r.entries.map((e) => e.index) : [])),
    [[1], [2], [3]],
  );
  assert.deepEqual(entriesRecords(entries(1, 3, 1)), [{ kind: 'entries', entries: entries(1, 3, 1) }]);
});

test('a buffer cut at every offset of the last record keeps exactly the whole records before it', () => {
  const head = encodeRecords(sample.slice(0, -1));
  const full = encodeRecords(sample);
  for (let cut = head.length; cut < full.length; cut++) {
    const decoded = decodeRecords(full.subarray(0, cut));
    assert.deepEqual(decoded.records, sample.slice(0, -1), `cut at ${cut}`);
    assert.equal(decoded.validBytes, head.length, `cut at ${cut}`);
    assert.equal(decoded.tornBytes, cut - head.length, `cut at ${cut}`);
    assert.equal(decoded.problem !== undefined, cut > head.length, `cut at ${cut}`);
  }
});

test('a flipped bit anywhere in the last record is detected', () => {
  const head = encodeRecords(sample.slice(0, 2));
  const full = encodeRecords(sample.slice(0, 3));
  for (let byte = head.length; byte < full.length; byte++) {
    for (let bit = 0; bit < 8; bit++) {
      const damaged = Buffer.from(full);
      damaged[byte] ^= 1 << bit;
      const decoded = decodeRecords(damaged);
      assert.deepEqual(decoded.records, sample.slice(0, 2), `byte ${byte} bit ${bit}`);
      assert.equal(decoded.validBytes, head.length);
      assert.ok(decoded.problem, `byte ${byte} bit ${bit}`);
    }
  }
});

test('problems name their cause and offset', () => {
  const one = encodeRecords([sample[0]]);
  const withZeros = Buffer.concat([one, Buffer.alloc(16)]);
  assert.equal(decodeRecords(withZeros).problem, `empty frame at offset ${one.length}`);

  const oversized = Buffer.concat([one, Buffer.alloc(frameHeaderBytes)]);
  oversized.writeUInt32LE(recordBytesMax + 1, one.length);
  assert.match(decodeRecords(oversized).problem!, /^oversized frame at offset 33/);

  const crcBad = Buffer.from(encodeRecords([sample[0], sample[1]]));
  crcBad[one.length + frameHeaderBytes + 3] ^= 0xff;
  assert.equal(decodeRecords(crcBad).problem, `crc mismatch at offset ${one.length}`);
});

test('a bad frame followed by a valid record reports where that record starts', () => {
  const damaged = Buffer.from(encodeRecords(sample.slice(0, 3)));
  damaged[frameHeaderBytes + 2] ^= 1;
  const decoded = decodeRecords(damaged);
  assert.equal(decoded.validBytes, 0);
  assert.equal(decoded.problem, 'crc mismatch at offset 0');
  assert.equal(decoded.validRecordAfter, 33);
});

test('a valid record is found after a bad frame whose length itself was damaged', () => {
  const damaged = Buffer.from(encodeRecords(sample.slice(0, 3)));
  damaged.writeUInt32LE(0xffff_fff0, 0);
  const decoded = decodeRecords(damaged);
  assert.match(decoded.problem!, /^oversized frame at offset 0/);
  assert.equal(decoded.validRecordAfter, 33);
  damaged.writeUInt32LE(20, 0); // now it ends inside the record after it
  assert.equal(decodeRecords(damaged).validRecordAfter, 33);
});

/** Batches as the WAL writes them (a segment header, saves, a snapshot marker); the last is one frame. */
const batches: WalRecord[][] = [
  [sample[0]],
  [{ kind: 'entries', entries: entries(1, 4, 1) }, { kind: 'hardState', hardState: hs(1, 1, 2) }],
  [{ kind: 'snapshot', meta: meta(2, 1) }],
  [{ kind: 'entries', entries: [entry(5, 2, 'y'.repeat(200))] }, { kind: 'hardState', hardState: hs(2, 1, 4) }],
  [{ kind: 'hardState', hardState: hs(2, 1, 5) }],
];

test('8 bytes overwritten anywhere before the last batch leave a valid record after them; reaching into the last one, none', () => {
  const parts = batches.map(encodeRecords);
  const full = Buffer.concat(parts);
  const lastStart = full.length - parts[parts.length - 1].length;
  for (let offset = 0; offset < full.length - 8; offset++) {
    const damaged = Buffer.from(full);
    for (let i = offset; i < offset + 8; i++) damaged[i] ^= 0xa5;
    const decoded = decodeRecords(damaged);
    assert.ok(decoded.problem !== undefined && decoded.validBytes <= offset, `offset ${offset}`);
    if (offset + 8 <= lastStart) assert.ok(decoded.validRecordAfter !== undefined && decoded.validRecordAfter > offset, `offset ${offset}: ${decoded.problem}`);
    else assert.equal(decoded.validRecordAfter, undefined, `offset ${offset}`);
  }
});

test('a long run of bad frames is reported without deep recursion', () => {
  const frames = Buffer.alloc(9 * 200_000);
  for (let off = 0; off < frames.length; off += 9) frames.writeUInt32LE(1, off);
  const decoded = decodeRecords(frames);
  assert.equal(decoded.validBytes, 0);
  assert.equal(decoded.problem, 'crc mismatch at offset 0');
});

test('a checksummed payload that does not parse stops decoding', () => {
  const payload = Buffer.from([9, 1, 2, 3]);
  const frame = Buffer.alloc(frameHeaderBytes);
  frame.writeUInt32LE(payload.length, 0);
  frame.writeUInt32LE(crc32c(payload), 4);
  const decoded = decodeRecords(Buffer.concat([encodeRecords([sample[0]]), frame, payload]));
  assert.equal(decoded.records.length, 1);
  assert.match(decoded.problem!, /^bad record at offset 33: unknown record kind 9/);
});

test('replay: defaults, last hard state wins', () => {
  assert.deepEqual(replayRecords([]), { hardState: hs(0, 0, 0), entries: [] });
  const state = replayRecords([
    { kind: 'hardState', hardState: hs(1, 1, 0) },
    { kind: 'hardState', hardState: hs(2, 3, 1) },
  ]);
  assert.deepEqual(state.hardState, hs(2, 3, 1));
});

test('replay: an entry at index i replaces the stored suffix from i', () => {
  const state = replayRecords([
    { kind: 'entries', entries: entries(1, 5, 1) },
    { kind: 'entries', entries: [entry(3, 2, 'new3'), entry(4, 2, 'new4')] },
  ]);
  assert.deepEqual(state.entries, [...entries(1, 2, 1), entry(3, 2, 'new3'), entry(4, 2, 'new4')]);
  const appended = replayRecords([
    { kind: 'entries', entries: entries(1, 2, 1) },
    { kind: 'entries', entries: entries(3, 4, 1) },
  ]);
  assert.deepEqual(appended.entries, entries(1, 4, 1));
});

test('replay: a snapshot drops covered entries and keeps a matching contiguous suffix', () => {
  const kept = replayRecords([
    { kind: 'entries', entries: entries(1, 10, 1) },
    { kind: 'snapshot', meta: meta(6, 1) },
    { kind: 'entries', entries: entries(11, 12, 2) },
  ]);
  assert.deepEqual(kept.snapshot, meta(6, 1));
  assert.deepEqual(kept.entries, [...entries(7, 10, 1), ...entries(11, 12, 2)]);

  const beyond = replayRecords([{ kind: 'entries', entries: entries(1, 5, 1) }, { kind: 'snapshot', meta: meta(20, 3) }]);
  assert.deepEqual(beyond.entries, []);

  const otherHistory = replayRecords([{ kind: 'entries', entries: entries(1, 5, 1) }, { kind: 'snapshot', meta: meta(3, 2) }]);
  assert.deepEqual(otherHistory.entries, [], 'entries after a snapshot of another term are stale');

  const repeated = replayRecords([
    { kind: 'entries', entries: entries(1, 5, 1) },
    { kind: 'snapshot', meta: meta(3, 1) },
    { kind: 'snapshot', meta: meta(3, 1) },
  ]);
  assert.deepEqual(repeated.entries, entries(4, 5, 1), 'a segment header repeating the snapshot changes nothing');

  const after = replayRecords([{ kind: 'snapshot', meta: meta(20, 3) }, { kind: 'entries', entries: entries(21, 22, 3) }]);
  assert.deepEqual(after.entries, entries(21, 22, 3));
});

test('replay may start mid-log when a later snapshot bridges the released range', () => {
  // What remains after older segments are released: a header with an old snapshot, then entries.
  const records: WalRecord[] = [
    { kind: 'hardState', hardState: hs(2, 1, 9) },
    { kind: 'snapshot', meta: meta(5, 1) },
    { kind: 'entries', entries: entries(10, 20, 2) },
    { kind: 'snapshot', meta: meta(15, 2) },
  ];
  assert.deepEqual(replayRecords(records), { hardState: hs(2, 1, 9), entries: entries(16, 20, 2), snapshot: meta(15, 2) });
  const mismatch = replayRecords([...records.slice(0, 3), { kind: 'snapshot', meta: meta(15, 3) }]);
  assert.deepEqual(mismatch.entries, []);
});

test('replay refuses records that describe no valid log', () => {
  const bad = (records: WalRecord[], pattern: RegExp) =>
    assert.throws(() => replayRecords(records), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'CAIRN_WAL_BAD_APPEND');
      assert.match(err.message, pattern);
      return true;
    });
  bad([{ kind: 'entries', entries: entries(1, 2, 1) }, { kind: 'entries', entries: entries(4, 4, 1) }], /gap/);
  bad([{ kind: 'entries', entries: [entry(1, 1), entry(3, 1)] }], /does not follow/);
  bad([{ kind: 'snapshot', meta: meta(5, 1) }, { kind: 'entries', entries: entries(5, 6, 1) }], /covered by the snapshot/);
  bad([{ kind: 'snapshot', meta: meta(5, 1) }, { kind: 'entries', entries: entries(7, 7, 1) }], /not right after the snapshot/);
  bad(
    [
      { kind: 'snapshot', meta: meta(5, 1) },
      { kind: 'entries', entries: entries(6, 7, 1) },
      { kind: 'entries', entries: entries(9, 9, 1) },
    ],
    /gap/,
  );
  bad([{ kind: 'entries', entries: entries(1, 2, 3) }, { kind: 'entries', entries: entries(3, 3, 2) }], /below the term/);
  bad([{ kind: 'snapshot', meta: meta(5, 1) }, { kind: 'snapshot', meta: meta(4, 1) }], /older than/);
  bad([{ kind: 'entries', entries: [entry(0, 1)] }], /below 1/);
});

/** fast-check builds null-prototype objects by default, which deepStrictEqual tells apart. */
const rec = <T,>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }) => fc.record<T>(model, { noNullPrototype: true });
const entryArb = rec({
  term: fc.maxSafeNat(),
  index: fc.maxSafeNat(),
  type: fc.constantFrom(0 as const, 1 as const),
  data: fc.uint8Array({ maxLength: 40 }),
});
const nodesArb = fc.array(fc.maxSafeNat(), { maxLength: 5 });
const recordArb: fc.Arbitrary<WalRecord> = fc.oneof(
  rec({
    kind: fc.constant('hardState' as const),
    hardState: rec({ term: fc.maxSafeNat(), vote: fc.maxSafeNat(), commit: fc.maxSafeNat() }),
  }),
  rec({ kind: fc.constant('entries' as const), entries: fc.array(entryArb, { maxLength: 5 }) }),
  rec({
    kind: fc.constant('snapshot' as const),
    meta: rec({ index: fc.maxSafeNat(), term: fc.maxSafeNat(), conf: rec({ voters: nodesArb, learners: nodesArb }) }),
  }),
);

test('property: records round-trip, and any cut keeps a prefix of whole records', () => {
  fc.assert(
    fc.property(fc.array(recordArb, { maxLength: 6 }), fc.nat(), (records, cutSeed) => {
      const buf = encodeRecords(records);
      assert.deepEqual(decodeRecords(buf), { records, validBytes: buf.length, tornBytes: 0 });
      const cut = buf.length === 0 ? 0 : cutSeed % buf.length;
      const decoded = decodeRecords(buf.subarray(0, cut));
      assert.deepEqual(decoded.records, records.slice(0, decoded.records.length));
      assert.equal(decoded.validBytes + decoded.tornBytes, cut);
      assert.equal(decoded.validRecordAfter, undefined, 'a cut leaves no valid record after the bad frame');
      assert.deepEqual(encodeRecords(decoded.records), buf.subarray(0, decoded.validBytes));
    }),
  );
});

test('property: arbitrary bytes never make decode throw', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      const decoded = decodeRecords(bytes);
      assert.equal(decoded.validBytes + decoded.tornBytes, bytes.length);
      assert.equal(decoded.problem === undefined, decoded.tornBytes === 0);
    }),
  );
});

test('the codec module stays pure: no I/O, clock or randomness', async () => {
  const source = await readFile(new URL('../../src/journal/raft/wal-record.ts', import.meta.url), 'utf8');
  for (const banned of [/node:fs/, /node:net/, /node:timers/, /\bDate\b/, /Math\.random/, /setTimeout|setInterval/]) {
    assert.doesNotMatch(source, banned);
  }
});

// Tests of durable snapshot files: atomic save, verified load that skips damaged files, pruning.

import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rename, rm, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import type { Snapshot } from '../../src/raft/types.ts';
import {
  decodeSnapshotFile,
  encodeSnapshotHeader,
  loadNewestSnapshot,
  pruneSnapshots,
  saveSnapshot,
  snapshotFileName,
} from '../../src/journal/raft/snapshot-file.ts';

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-snap-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function snap(index: number, term: number, text = `state at ${index}`): Snapshot {
  return { meta: { index, term, conf: { voters: [1, 2, 3], learners: [7] } }, data: new TextEncoder().encode(text) };
}

test('a saved snapshot loads back unchanged, under its term-index name', async (t) => {
  const dir = await tempDir(t);
  const original = snap(2 ** 40 + 1, 2 ** 33);
  const file = await saveSnapshot(dir, original);
  assert.equal(path.basename(file), '0000000200000000-0000010000000001.snap');
  assert.equal(path.basename(file), snapshotFileName(original.meta));
  assert.deepEqual(await readdir(path.join(dir, 'snap')), [path.basename(file)], 'no temporary file is left');
  assert.deepEqual(await loadNewestSnapshot(dir), { snapshot: original, skipped: [] });
});

test('no snapshot directory means no snapshot', async (t) => {
  const dir = await tempDir(t);
  assert.deepEqual(await loadNewestSnapshot(dir), { skipped: [] });
});

test('the newest is chosen by index, then term', async (t) => {
  const dir = await tempDir(t);
  for (const s of [snap(10, 5), snap(30, 2), snap(30, 3), snap(20, 9)]) await saveSnapshot(dir, s);
  assert.deepEqual((await loadNewestSnapshot(dir)).snapshot, snap(30, 3));
});

test('a damaged newest snapshot is skipped with a reason, and the next one is used', async (t) => {
  const damage: Array<[string, (file: string) => Promise<void>, RegExp]> = [
    ['flipped data bit', (f) => flip(f, -3), /data crc mismatch/],
    ['flipped header bit', (f) => flip(f, 13), /declared sizes|header crc mismatch|file has/],
    ['flipped meta bit', (f) => flip(f, 30), /header crc mismatch/],
    ['truncated', async (f) => truncate(f, 20), /shorter than a header/],
    ['cut in the data', async (f) => truncate(f, (await readFile(f)).length - 1), /file has/],
    ['empty', (f) => writeFile(f, ''), /shorter than a header/],
  ];
  for (const [label, hurt, reason] of damage) {
    const dir = await tempDir(t);
    await saveSnapshot(dir, snap(5, 1));
    const newest = await saveSnapshot(dir, snap(9, 2));
    await hurt(newest);
    const { snapshot, skipped } = await loadNewestSnapshot(dir);
    assert.deepEqual(snapshot, snap(5, 1), label);
    assert.equal(skipped.length, 1, label);
    assert.ok(skipped[0].startsWith(`${newest}: `), skipped[0]);
    assert.match(skipped[0], reason, label);
  }
});

test('a file whose name disagrees with its metadata is skipped', async (t) => {
  const dir = await tempDir(t);
  const file = await saveSnapshot(dir, snap(5, 1));
  await rename(file, path.join(dir, 'snap', snapshotFileName(snap(6, 1).meta)));
  const { snapshot, skipped } = await loadNewestSnapshot(dir);
  assert.equal(snapshot, undefined);
  assert.match(skipped[0], /does not match the file name/);
});

test('all snapshots damaged: nothing loads, every file is reported', async (t) => {
  const dir = await tempDir(t);
  const files = [await saveSnapshot(dir, snap(1, 1)), await saveSnapshot(dir, snap(2, 1))];
  for (const file of files) await flip(file, -1);
  const { snapshot, skipped } = await loadNewestSnapshot(dir);
  assert.equal(snapshot, undefined);
  assert.equal(skipped.length, 2);
});

test('decode rejects foreign bytes and checks the metadata shape', () => {
  assert.match(decodeSnapshotFile(new Uint8Array(64)) as string, /bad magic/);
  const good = snap(3, 1);
  const bytes = Buffer.concat([encodeSnapshotHeader(good), good.data]);
  assert.deepEqual(decodeSnapshotFile(bytes), good);
  const badMeta: Snapshot = { meta: { ...good.meta, index: -1 }, data: good.data };
  assert.match(decodeSnapshotFile(Buffer.concat([encodeSnapshotHeader(badMeta), badMeta.data])) as string, /lacks index/);
  const empty: Snapshot = { meta: good.meta, data: new Uint8Array(0) };
  assert.deepEqual(decodeSnapshotFile(encodeSnapshotHeader(empty)), empty);
});

test('pruneSnapshots keeps the newest ones and removes leftovers of crashed saves', async (t) => {
  const dir = await tempDir(t);
  for (let i = 1; i <= 5; i++) await saveSnapshot(dir, snap(i * 10, 1));
  const snapDir = path.join(dir, 'snap');
  await writeFile(path.join(snapDir, `${snapshotFileName(snap(60, 1).meta)}.tmp`), 'half written');
  const deleted = await pruneSnapshots(dir);
  assert.equal(deleted.length, 4);
  assert.deepEqual((await readdir(snapDir)).sort(), [snapshotFileName(snap(40, 1).meta), snapshotFileName(snap(50, 1).meta)]);
  assert.deepEqual(await pruneSnapshots(dir, 2), []);
  await pruneSnapshots(dir, 1);
  assert.deepEqual(await readdir(snapDir), [snapshotFileName(snap(50, 1).meta)]);
  await assert.rejects(pruneSnapshots(dir, 0), RangeError);
  assert.deepEqual(await pruneSnapshots(path.join(dir, 'nowhere')), []);
});

/** Flips one bit of the byte at `offset` (negative counts from the end). */
async function flip(file: string, offset: number): Promise<void> {
  const bytes = await readFile(file);
  bytes[offset < 0 ? bytes.length + offset : offset] ^= 0x10;
  await writeFile(file, bytes);
}

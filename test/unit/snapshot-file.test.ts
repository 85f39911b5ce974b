// Tests of durable snapshot files: atomic save, verified load that skips damaged files, pruning.

import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import { nodeDisk } from '../../src/io/node-disk.ts';
import type { Snapshot } from '../../src/raft/types.ts';
import { chunkedSnapshotData, readAllSnapshotData, snapshotBytes } from '../../src/raft/snapshot-data.ts';
import {
  SnapshotWriter,
  encodeSnapshotHeader,
  fileSnapshotSink,
  loadNewestSnapshot,
  openVerified,
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
  return { meta: { index, term, conf: { voters: [1, 2, 3], learners: [7] } }, data: snapshotBytes(new TextEncoder().encode(text)) };
}

/** A save, as the path of the file it left (closed). */
async function save(dir: string, s: Snapshot): Promise<string> {
  const f = await saveSnapshot(nodeDisk, dir, s);
  f.close();
  return f.path;
}

/** The newest snapshot loaded, as plain bytes (the file closed), with the skipped files. */
async function loadNewest(dir: string): Promise<{ snapshot?: { meta: Snapshot['meta']; bytes: string }; skipped: string[] }> {
  const { snapshot, file, skipped } = await loadNewestSnapshot(nodeDisk, dir);
  if (snapshot === undefined) return { skipped };
  const bytes = new TextDecoder().decode(readAllSnapshotData(snapshot.data));
  file?.close();
  return { snapshot: { meta: snapshot.meta, bytes }, skipped };
}

function plain(s: Snapshot): { meta: Snapshot['meta']; bytes: string } {
  return { meta: s.meta, bytes: new TextDecoder().decode(readAllSnapshotData(s.data)) };
}

test('a saved snapshot loads back unchanged, under its term-index name', async (t) => {
  const dir = await tempDir(t);
  const original = snap(2 ** 40 + 1, 2 ** 33);
  const file = await save(dir, original);
  assert.equal(path.basename(file), '0000000200000000-0000010000000001.snap');
  assert.equal(path.basename(file), snapshotFileName(original.meta));
  assert.deepEqual(await readdir(path.join(dir, 'snap')), [path.basename(file)], 'no temporary file is left');
  assert.deepEqual(await loadNewest(dir), { snapshot: plain(original), skipped: [] });
});

test('no snapshot directory means no snapshot', async (t) => {
  const dir = await tempDir(t);
  assert.deepEqual(await loadNewest(dir), { skipped: [] });
});

test('the newest is chosen by index, then term', async (t) => {
  const dir = await tempDir(t);
  for (const s of [snap(10, 5), snap(30, 2), snap(30, 3), snap(20, 9)]) await save(dir, s);
  assert.deepEqual((await loadNewest(dir)).snapshot, plain(snap(30, 3)));
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
    await save(dir, snap(5, 1));
    const newest = await save(dir, snap(9, 2));
    await hurt(newest);
    const { snapshot, skipped } = await loadNewest(dir);
    assert.deepEqual(snapshot, plain(snap(5, 1)), label);
    assert.equal(skipped.length, 1, label);
    assert.ok(skipped[0].startsWith(`${newest}: `), skipped[0]);
    assert.match(skipped[0], reason, label);
  }
});

test('a file whose name disagrees with its metadata is skipped', async (t) => {
  const dir = await tempDir(t);
  const file = await save(dir, snap(5, 1));
  await rename(file, path.join(dir, 'snap', snapshotFileName(snap(6, 1).meta)));
  const { snapshot, skipped } = await loadNewest(dir);
  assert.equal(snapshot, undefined);
  assert.match(skipped[0], /does not match the file name/);
});

test('all snapshots damaged: nothing loads, every file is reported', async (t) => {
  const dir = await tempDir(t);
  const files = [await save(dir, snap(1, 1)), await save(dir, snap(2, 1))];
  for (const file of files) await flip(file, -1);
  const { snapshot, skipped } = await loadNewest(dir);
  assert.equal(snapshot, undefined);
  assert.equal(skipped.length, 2);
});

test('open rejects foreign bytes and checks the metadata shape', async (t) => {
  const dir = await tempDir(t);
  const file = (name: string) => path.join(dir, name);
  await writeFile(file('foreign'), new Uint8Array(64));
  assert.match(openVerified(nodeDisk, file('foreign'), 'foreign') as string, /bad magic/);
  const good = snap(3, 1);
  const name = snapshotFileName(good.meta);
  const data = readAllSnapshotData(good.data);
  const { crc32c } = await import('@node-rs/crc32');
  await writeFile(file(name), Buffer.concat([encodeSnapshotHeader(good.meta, data.length, crc32c(data)), data]));
  const opened = openVerified(nodeDisk, file(name), name);
  assert.ok(typeof opened !== 'string', String(opened));
  assert.deepEqual(plain(opened.snapshot()), plain(good));
  opened.close();
  assert.throws(() => opened.read(0, 1), /closed/);
  await writeFile(file('bad'), Buffer.concat([encodeSnapshotHeader({ ...good.meta, index: -1 }, data.length, crc32c(data)), data]));
  assert.match(openVerified(nodeDisk, file('bad'), 'bad') as string, /lacks index/);
  await writeFile(file(name), encodeSnapshotHeader(good.meta, 0, 0));
  const empty = openVerified(nodeDisk, file(name), name);
  assert.ok(typeof empty !== 'string' && empty.byteLength === 0);
  empty.close();
});

test('a snapshot written in many pieces reads back at any offset, and a received one keeps its chunking out of the file', async (t) => {
  const dir = await tempDir(t);
  const pieces = Array.from({ length: 50 }, (_, i) => new Uint8Array(1000 + i).fill(i));
  const whole = Buffer.concat(pieces);
  const w = await SnapshotWriter.create(nodeDisk, dir);
  w.begin(snap(7, 2).meta);
  for (const p of pieces) w.write(p);
  const f = await w.finish();
  t.after(() => f.close());
  assert.equal(f.byteLength, whole.length);
  for (const [off, len] of [[0, 10], [999, 3], [12345, 20000], [whole.length - 5, 5], [whole.length, 0]]) {
    assert.deepEqual(Buffer.from(f.read(off, len)), whole.subarray(off, off + len), `read at ${off}`);
  }
  assert.throws(() => f.read(whole.length - 1, 2), /invariant violated: snapshot read/);
  const chunked = chunkedSnapshotData(pieces);
  assert.deepEqual(Buffer.from(chunked.read(995, 30)), whole.subarray(995, 1025), 'reads across chunk boundaries');
  const received = await saveSnapshot(nodeDisk, dir, { meta: snap(8, 2).meta, data: chunked });
  t.after(() => received.close());
  assert.deepEqual(Buffer.from(readAllSnapshotData(received)), whole);
});

test('pruneSnapshots keeps the newest ones and removes leftovers of crashed saves', async (t) => {
  const dir = await tempDir(t);
  for (let i = 1; i <= 5; i++) await save(dir, snap(i * 10, 1));
  const snapDir = path.join(dir, 'snap');
  await writeFile(path.join(snapDir, `${snapshotFileName(snap(60, 1).meta)}.tmp`), 'half written');
  const deleted = await pruneSnapshots(nodeDisk, dir);
  assert.equal(deleted.length, 4);
  assert.deepEqual((await readdir(snapDir)).sort(), [snapshotFileName(snap(40, 1).meta), snapshotFileName(snap(50, 1).meta)]);
  assert.deepEqual(await pruneSnapshots(nodeDisk, dir, 2), []);
  await pruneSnapshots(nodeDisk, dir, 1);
  assert.deepEqual(await readdir(snapDir), [snapshotFileName(snap(50, 1).meta)]);
  await assert.rejects(pruneSnapshots(nodeDisk, dir, 0), /invariant violated: pruneSnapshots: keep must be >= 1/);
  assert.deepEqual(await pruneSnapshots(nodeDisk, path.join(dir, 'nowhere')), []);
});

/** Flips one bit of the byte at `offset` (negative counts from the end). */
async function flip(file: string, offset: number): Promise<void> {
  const bytes = await readFile(file);
  bytes[offset < 0 ? bytes.length + offset : offset] ^= 0x10;
  await writeFile(file, bytes);
}

test('a snapshot streamed in from the leader is on disk chunk by chunk, reads back once complete, and finishes under its name', async (t) => {
  const dir = await tempDir(t);
  await mkdir(path.join(dir, 'snap'));
  const meta = snap(42, 3).meta;
  const sink = fileSnapshotSink(nodeDisk, dir);
  const chunk = Buffer.alloc(64 * 1024, 7);
  const incoming = sink.begin(meta, 3 * chunk.length);
  const [tmp] = await readdir(path.join(dir, 'snap'));
  assert.match(tmp, /\.tmp$/);
  incoming.write(chunk);
  const afterOne = (await stat(path.join(dir, 'snap', tmp))).size;
  incoming.write(chunk);
  assert.equal((await stat(path.join(dir, 'snap', tmp))).size, afterOne + chunk.length, 'each chunk goes to the file as it arrives');
  incoming.write(Buffer.alloc(chunk.length, 9));
  const data = incoming.complete();
  assert.equal(data.byteLength, 3 * chunk.length);
  assert.deepEqual([...data.read(2 * chunk.length - 1, 2)], [7, 9]);
  const file = await (incoming as unknown as { finish(): Promise<{ path: string; close(): void }> }).finish();
  file.close();
  assert.equal(path.basename(file.path), snapshotFileName(meta));
  const opened = openVerified(nodeDisk, file.path, snapshotFileName(meta));
  assert.notEqual(typeof opened, 'string', String(opened));
  if (typeof opened !== 'string') opened.close();
  const abandoned = sink.begin(snap(50, 3).meta, 10);
  abandoned.write(Buffer.from('x'));
  abandoned.abort();
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual((await readdir(path.join(dir, 'snap'))).filter((n) => n.endsWith('.tmp')), [], 'an abandoned one leaves no file');
});

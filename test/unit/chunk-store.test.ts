// Tests of the per-target chunk store: round trips, crashes at every disk operation, bit flips,
// identity checks, a full disk, a failed fsync, group commit of directory syncs, and a property
// test of random operations and crashes against a model of the committed contents.

import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import fc from 'fast-check';
import type { Disk } from '../../src/io/index.ts';
import { nodeDisk } from '../../src/io/node-disk.ts';
import { Prng } from '../../src/sim/prng.ts';
import { SimFs } from '../../src/sim/sim-fs.ts';
import { buildChunkFile, chunkFileName, fanoutDirName } from '../../src/worker/chunk-file.ts';
import { ChunkStore } from '../../src/worker/chunk-store.ts';
import type { ChunkId, ChunkStoreOptions, LogFn } from '../../src/worker/chunk-store.ts';
import { WorkerErrorCode } from '../../src/worker/errors.ts';
import { decodeIdentity, encodeIdentity } from '../../src/worker/target-identity.ts';
import { decodeServed, encodeServed, readServed, servedFileName, writeServed } from '../../src/worker/served-record.ts';

const identity = { clusterId: 'cluster-a', workerId: 1, targetId: 11 };
const DIR = '/data/t11';
const KiB = 1024;
const A: ChunkId = { inodeId: 1, index: 0 };

/** A simulated node's disk that can crash at the n-th operation (each write, rename, unlink, fsync and directory sync). */
class SimNode {
  readonly fs = new SimFs();
  syncFails: (file: string) => boolean = () => false;
  private points = 0;
  private crashAt = Infinity;
  private armed: { prng: Prng; tear: boolean; done: PromiseWithResolvers<void> } | undefined;

  disk(): Disk {
    return this.fs.attach({
      later: (_ms, fn) => {
        this.point();
        setImmediate(fn);
      },
      syncLatencyMs: () => 0,
      syncFails: (file) => this.syncFails(file),
      syncLies: () => false,
      onOp: () => this.point(),
    });
  }

  /** The node crashes just before its `n`-th disk operation from now; resolves when it has. */
  armCrash(n: number, prng: Prng, tear: boolean): Promise<void> {
    this.points = 0;
    this.crashAt = n;
    this.armed = { prng, tear, done: Promise.withResolvers<void>() };
    return this.armed.done.promise;
  }

  disarm(): void {
    this.crashAt = Infinity;
    this.armed = undefined;
  }

  private point(): void {
    if (++this.points !== this.crashAt || this.armed === undefined) return;
    const { prng, tear, done } = this.armed;
    this.disarm();
    this.fs.crash(prng, tear);
    done.resolve();
  }
}

function openSim(node: SimNode, opts: Partial<ChunkStoreOptions> = {}): Promise<ChunkStore> {
  return ChunkStore.open(node.disk(), DIR, { identity, ...opts });
}

function bytes(length: number, seed: number): Uint8Array {
  const prng = new Prng(seed);
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = prng.u32() & 0xff;
  return out;
}

function chunkFile(id: ChunkId, version: number, state: 'chunk' | 'pending' = 'chunk'): string {
  return `${DIR}/chunks/${fanoutDirName(id.inodeId)}/${chunkFileName(id, version, state)}`;
}

async function write(store: ChunkStore, id: ChunkId, offset: number, data: Uint8Array, replace = false): Promise<void> {
  const m = store.get(id);
  const version = (m?.commitVersion ?? 0) + 1;
  await store.stage(id, { version, chainVersion: 1, offset, data, replace });
  await store.commit(id, version);
}

/** The committed content, or undefined when there is none. */
async function content(store: ChunkStore, id: ChunkId): Promise<Uint8Array | undefined> {
  if ((store.get(id)?.commitVersion ?? 0) === 0) return undefined;
  return Uint8Array.from(await store.read(id, 0, 1 << 30));
}

const code = (c: string) => (err: unknown) => (err as { code?: string }).code === c;

function overlay(old: Uint8Array, offset: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.max(old.byteLength, offset + data.byteLength));
  out.set(old);
  out.set(data, offset);
  return out;
}

// ---- round trips ---------------------------------------------------------------------------------

test('stage and commit, then read back; partial overwrite, growth, holes, replace', async () => {
  const node = new SimNode();
  const store = await openSim(node);
  const v1 = bytes(150 * KiB, 1);
  await store.stage(A, { version: 1, chainVersion: 7, offset: 0, data: v1, writeIds: ['00000000000000aa'] });
  const staged = store.get(A);
  assert.equal(staged?.commitVersion, 0);
  assert.equal(staged?.updateVersion, 1);
  await assert.rejects(store.read(A, 0, 10), code(WorkerErrorCode.ChunkNotFound), 'a pending version is not readable');
  const m1 = await store.commit(A, 1);
  assert.deepEqual({ ...m1, crc32c: 0 }, { id: A, commitVersion: 1, updateVersion: 1, chainVersion: 7, lengthBytes: v1.byteLength, crc32c: 0, writeIds: ['00000000000000aa'], pending: undefined, corrupt: undefined });
  await assert.rejects(store.stage(A, { version: 2, chainVersion: 7, offset: 0, data: v1, writeIds: ['not-an-id'] }), code(WorkerErrorCode.InvalidArgument));
  assert.deepEqual(await content(store, A), v1);

  // A partial overwrite across a block boundary, then growth past the end.
  const patch = bytes(10 * KiB, 2);
  await write(store, A, 60 * KiB, patch);
  let expected = overlay(v1, 60 * KiB, patch);
  assert.deepEqual(await content(store, A), expected);
  const tail = bytes(20 * KiB, 3);
  await write(store, A, 140 * KiB, tail);
  expected = overlay(expected, 140 * KiB, tail);
  assert.deepEqual(await content(store, A), expected);
  assert.equal(store.get(A)?.lengthBytes, 160 * KiB);

  // A range, a range past the end, and a range entirely past it.
  const small = await store.read(A, 65 * KiB, 3);
  assert.deepEqual(Uint8Array.from(small), expected.subarray(65 * KiB, 65 * KiB + 3));
  assert.equal(small.buffer.byteLength, 4 * KiB, 'one block (4 KiB by default) was read, and the range is a view of it');
  assert.equal(small.byteOffset, 1 * KiB);
  assert.deepEqual(Uint8Array.from(await store.read(A, 159 * KiB, 4 * KiB)), expected.subarray(159 * KiB));
  assert.equal((await store.read(A, 200 * KiB, 10)).byteLength, 0);

  // A write past the end leaves a hole of zeros.
  const B = { inodeId: 1, index: 1 };
  await write(store, B, 100 * KiB, bytes(5, 4));
  const b = await content(store, B);
  assert.equal(b?.byteLength, 100 * KiB + 5);
  assert.ok(b?.subarray(0, 100 * KiB).every((x) => x === 0));

  // Replace: exactly the new data, even if shorter.
  const replacement = bytes(3 * KiB, 5);
  await write(store, A, 0, replacement, true);
  assert.deepEqual(await content(store, A), replacement);
  await store.close();
});

test('the committed version and its length survive a reopen, with one file per chunk', async () => {
  const node = new SimNode();
  let store = await openSim(node);
  const data = bytes(70 * KiB, 6);
  await write(store, A, 0, data);
  await write(store, A, 10, bytes(10, 7));
  const before = store.get(A);
  await store.close();
  node.fs.crash(new Prng(1), false);
  store = await openSim(node);
  assert.deepEqual(store.get(A), before);
  assert.deepEqual(await content(store, A), overlay(data, 10, bytes(10, 7)));
  assert.deepEqual(node.fs.durableFiles(`${DIR}/chunks/01`).map((f) => f.name), [chunkFileName(A, 2, 'chunk')]);
  await store.close();
});

test('versions, offsets and ids out of bounds are refused; pending versions are replaced, aborted, removed', async () => {
  const node = new SimNode();
  const store = await openSim(node, { chunkSizeBytesMax: 256 * KiB });
  const d = bytes(1000, 8);
  const invalid = code(WorkerErrorCode.InvalidArgument);
  await assert.rejects(store.stage(A, { version: 2, chainVersion: 1, offset: 0, data: d }), invalid, 'the first version is 1');
  await assert.rejects(store.stage(A, { version: 1, chainVersion: 1, offset: 256 * KiB - 999, data: d }), invalid, 'past chunkSizeBytesMax');
  await assert.rejects(store.stage(A, { version: 1, chainVersion: 1, offset: 1, data: d, replace: true }), invalid, 'a replace starts at 0');
  await assert.rejects(store.stage({ inodeId: 0, index: 0 }, { version: 1, chainVersion: 1, offset: 0, data: d }), invalid);
  await assert.rejects(store.stage({ inodeId: 1, index: 2 ** 32 }, { version: 1, chainVersion: 1, offset: 0, data: d }), invalid);
  await assert.rejects(store.read({ inodeId: 1.5, index: 0 }, 0, 1), invalid);
  await assert.rejects(store.commit(A, 1), invalid, 'nothing pending');

  // The end of the chunk is allowed; a second stage of the same version replaces the first.
  await store.stage(A, { version: 1, chainVersion: 1, offset: 256 * KiB - 1000, data: d });
  await store.stage(A, { version: 1, chainVersion: 2, offset: 0, data: d });
  assert.deepEqual(node.fs.durableFiles(`${DIR}/chunks/01`).map((f) => f.name), [], 'a staged version is not durable by name yet (a tail commits it at once)');
  await store.syncPendingName(A);
  assert.deepEqual(node.fs.durableFiles(`${DIR}/chunks/01`).map((f) => f.name), [chunkFileName(A, 1, 'pending')], 'made durable by name (before a forward): it outlives a crash, still pending');
  await store.commit(A, 1);
  assert.deepEqual(await content(store, A), d);
  assert.equal(store.get(A)?.chainVersion, 2);
  assert.deepEqual(await store.commit(A, 1), store.get(A), 'a repeated commit is a no-op');
  await assert.rejects(store.stage(A, { version: 1, chainVersion: 1, offset: 0, data: d }), invalid, 'version 1 is committed');
  await assert.rejects(store.stage(A, { version: 3, chainVersion: 1, offset: 0, data: d }), invalid, 'a version was skipped');

  // Abort drops the pending version only.
  await store.stage(A, { version: 2, chainVersion: 1, offset: 0, data: bytes(10, 9) });
  assert.equal(await store.abort(A, 3), false);
  assert.equal(await store.abort(A, 2), true);
  assert.equal(store.get(A)?.pending, undefined);
  await assert.rejects(store.commit(A, 2), invalid);
  assert.deepEqual(await content(store, A), d);

  // Replace may install the committed version again (resync), or skip ahead.
  await store.stage(A, { version: 1, chainVersion: 5, offset: 0, data: bytes(20, 10), replace: true });
  assert.equal(store.get(A)?.updateVersion, 1);
  await store.commit(A, 1);
  assert.deepEqual(await content(store, A), bytes(20, 10));
  assert.equal(store.get(A)?.chainVersion, 5);
  await store.stage(A, { version: 9, chainVersion: 6, offset: 0, data: bytes(30, 11), replace: true });
  await store.commit(A, 9);
  assert.equal(store.get(A)?.commitVersion, 9);
  await assert.rejects(store.stage(A, { version: 8, chainVersion: 6, offset: 0, data: d, replace: true }), invalid);

  // Usage counts the header and the data of each version on disk.
  const C = { inodeId: 1, index: 7 };
  await store.stage(C, { version: 1, chainVersion: 1, offset: 0, data: d });
  assert.deepEqual(store.usage(), { chunks: 2, bytesUsed: 4 * KiB + 30 + 4 * KiB + 1000, inodeIdMax: 1 });
  assert.equal(await store.remove(C), true);
  assert.equal(await store.remove(C), false);
  assert.equal(store.get(C), undefined);
  assert.deepEqual(store.usage(), { chunks: 1, bytesUsed: 4 * KiB + 30, inodeIdMax: 1 });
  await store.close();
  await assert.rejects(store.read(A, 0, 1), code(WorkerErrorCode.TargetUnavailable));
});

test('removeInode removes every chunk of one file, and only those', async () => {
  const node = new SimNode();
  let store = await openSim(node);
  for (let i = 0; i < 70; i++) await write(store, { inodeId: 5, index: i }, 0, bytes(10, i));
  await write(store, { inodeId: 261, index: 0 }, 0, bytes(10, 99)); // same fan-out directory
  await write(store, { inodeId: 6, index: 0 }, 0, bytes(10, 98));
  assert.equal(await store.removeInode(5), 70);
  assert.deepEqual(store.list().map((m) => m.id), [{ inodeId: 6, index: 0 }, { inodeId: 261, index: 0 }]);
  await store.close();
  node.fs.crash(new Prng(2), false);
  store = await openSim(node);
  assert.deepEqual(store.list().map((m) => m.id), [{ inodeId: 6, index: 0 }, { inodeId: 261, index: 0 }], 'the removal was durable');
  await store.close();
});

test('inodes() lists the inodes held, a page at a time in id order, with their chunks and bytes; usage() names the highest', async () => {
  const node = new SimNode();
  const store = await openSim(node);
  assert.deepEqual(store.inodes(0, 10), { inodes: [], more: false });
  assert.equal(store.usage().inodeIdMax, 0);
  for (let i = 0; i < 3; i++) await write(store, { inodeId: 900, index: i }, 0, bytes(10, i));
  await write(store, { inodeId: 7, index: 0 }, 0, bytes(20, 1));
  await write(store, { inodeId: 2 ** 50, index: 4 }, 0, bytes(30, 2));
  const first = store.inodes(0, 2);
  assert.deepEqual(first.inodes.map((h) => [h.inodeId, h.chunks]), [[7, 1], [900, 3]]);
  assert.equal(first.more, true);
  assert.equal(first.inodes[1].bytes, 3 * (4 * KiB + 10), 'bytes count each version file, header included');
  assert.deepEqual(store.inodes(900, 2), { inodes: [{ inodeId: 2 ** 50, chunks: 1, bytes: 4 * KiB + 30 }], more: false });
  assert.equal(store.usage().inodeIdMax, 2 ** 50);
  assert.deepEqual(store.chunksOf(900).map((c) => c.index).sort(), [0, 1, 2]);
  await store.close();
});

test('a chunk queue past chunkQueueMax refuses with CAIRN_BUSY; unlocked callers cannot corrupt a chunk', async () => {
  const node = new SimNode();
  const store = await openSim(node, { chunkQueueMax: 2 });
  const results = await Promise.allSettled([1, 2, 3, 4].map((i) => store.stage(A, { version: 1, chainVersion: i, offset: 0, data: bytes(100, i) })));
  assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'fulfilled', 'rejected', 'rejected']);
  assert.ok(results.slice(2).every((r) => r.status === 'rejected' && code('CAIRN_BUSY')(r.reason)));
  // The second stage replaced the first, as if they had been serialized.
  await store.commit(A, 1);
  assert.deepEqual(await content(store, A), bytes(100, 2));
  // Close lets queued operations finish and refuses new ones.
  const queued = store.stage(A, { version: 2, chainVersion: 1, offset: 0, data: bytes(1, 3) });
  await store.close();
  assert.equal((await queued).updateVersion, 2);
  await assert.rejects(store.commit(A, 2), code(WorkerErrorCode.TargetUnavailable));
});

// ---- crashes ---------------------------------------------------------------------------------------

/**
 * Open, two writes and a replace of one chunk, with a neighbour staged meanwhile. `allowed` tracks
 * the committed contents a crash may leave: the last committed one, and the next while its commit runs.
 */
async function crashScenario(node: SimNode, state: { allowed: (Uint8Array | undefined)[] }): Promise<void> {
  const store = await openSim(node);
  const steps: { offset: number; data: Uint8Array; replace: boolean }[] = [
    { offset: 0, data: bytes(150 * KiB, 21), replace: false },
    { offset: 70 * KiB, data: bytes(100 * KiB, 22), replace: false },
    { offset: 0, data: bytes(20 * KiB, 23), replace: true },
  ];
  let current: Uint8Array | undefined;
  for (const [i, s] of steps.entries()) {
    const version = i + 1;
    await store.stage(A, { version, chainVersion: 1, ...s });
    await store.stage({ inodeId: 1, index: 1 }, { version: 1, chainVersion: 1, offset: 0, data: bytes(5 * KiB, version) });
    const next = s.replace ? s.data : overlay(current ?? new Uint8Array(0), s.offset, s.data);
    state.allowed = [current, next];
    await store.commit(A, version);
    current = next;
    state.allowed = [current];
  }
  await store.close();
}

test('a crash before any disk operation of open, stage or commit leaves the old or the new content, never a mix', async () => {
  let points = 0;
  for (const tear of [false, true]) {
    for (let n = 1; ; n++) {
      const node = new SimNode();
      const state = { allowed: [undefined] as (Uint8Array | undefined)[] };
      const crashed = node.armCrash(n, new Prng(n), tear);
      const finished = await Promise.race([crashScenario(node, state).then(() => true), crashed.then(() => false)]);
      if (finished) break;
      points = Math.max(points, n);
      const logs: string[] = [];
      const store = await openSim(node, { log: (level, msg) => logs.push(`${level} ${msg}`) });
      const got = await content(store, A);
      assert.ok(state.allowed.some((c) => (c === undefined ? got === undefined : got !== undefined && Buffer.compare(c, got) === 0)), `crash at point ${n} (tear ${tear}): content is neither old nor new`);
      assert.ok(store.list().every((m) => m.corrupt === undefined), `crash at point ${n}: nothing corrupt`);
      assert.ok(!logs.some((l) => l.startsWith('warn')), `crash at point ${n}: no warnings: ${logs.join('; ')}`);
      // On disk: at most one committed file per chunk, and pending files only for known pending versions.
      const names = node.fs.durableFiles(`${DIR}/chunks/01`).map((f) => f.name);
      const expectedNames = store.list().flatMap((m) => [
        ...(m.commitVersion > 0 ? [chunkFileName(m.id, m.commitVersion, 'chunk')] : []),
        ...(m.pending ? [chunkFileName(m.id, m.pending.version, 'pending')] : []),
      ]);
      assert.deepEqual(names, expectedNames.sort(), `crash at point ${n}: leftovers removed`);
      // The store carries on.
      await write(store, A, 0, bytes(10, 30));
      await store.close();
    }
  }
  assert.ok(points > 30, `the scenario has many crash points (${points})`);
});

/** Writes a file durably, name included, as a crashed process might have left it. */
async function plant(disk: Disk, file: string, content: Uint8Array): Promise<void> {
  const f = await disk.open(file, 'create');
  await f.write(content, 0);
  await f.sync();
  await f.close();
  await disk.syncDir(path.dirname(file));
}

test('open removes torn pending files, temp files and superseded versions, keeps a whole pending version and verifies it on commit', async () => {
  const node = new SimNode();
  let store = await openSim(node);
  const B = { inodeId: 1, index: 1 };
  const C = { inodeId: 1, index: 2 };
  await write(store, A, 0, bytes(10 * KiB, 40));
  await write(store, B, 0, bytes(10 * KiB, 41));
  await store.stage(A, { version: 2, chainVersion: 1, offset: 0, data: bytes(5, 42) });
  await store.stage(C, { version: 1, chainVersion: 1, offset: 0, data: bytes(9 * KiB, 43) });
  await store.close();
  const disk = node.disk();
  await disk.syncDir(`${DIR}/chunks/01`); // the pending files' names become durable
  const whole = buildChunkFile({ id: B, version: 2, chainVersion: 1, lengthBytes: 10 * KiB, blockSizeBytes: 64 * KiB }, (d) => d.set(bytes(10 * KiB, 44))).bytes;
  await plant(disk, chunkFile(B, 2, 'pending'), whole.subarray(0, whole.byteLength - 1)); // torn: one byte short
  await plant(disk, chunkFile(B, 3, 'pending'), whole.subarray(0, 100)); // torn inside the header
  await plant(disk, `${DIR}/chunks/01/x.tmp`, bytes(10, 45));
  const stale = buildChunkFile({ id: A, version: 0 + 1, chainVersion: 1, lengthBytes: 3, blockSizeBytes: 64 * KiB }, (d) => d.set([1, 2, 3])).bytes;
  await disk.unlink(chunkFile(A, 1)); // make room for a superseded version 1 beside a committed version 2
  await plant(disk, chunkFile(A, 1), stale);
  await plant(disk, chunkFile(A, 3), buildChunkFile({ id: A, version: 3, chainVersion: 1, lengthBytes: 4, blockSizeBytes: 64 * KiB }, (d) => d.set([4, 5, 6, 7])).bytes);
  node.fs.flipBit(chunkFile(C, 1, 'pending'), 4096 + 10, 3); // whole by its header, bad in its data
  node.fs.crash(new Prng(5), false);

  const logs: string[] = [];
  store = await openSim(node, { log: (level, msg) => logs.push(`${level} ${msg}`) });
  assert.deepEqual(logs, ['info removed leftover chunk files']);
  assert.deepEqual(node.fs.durableFiles(`${DIR}/chunks/01`).map((f) => f.name), [
    chunkFileName(A, 3, 'chunk'),
    chunkFileName(B, 1, 'chunk'),
    chunkFileName(C, 1, 'pending'),
  ]);
  assert.equal(store.get(A)?.commitVersion, 3, 'the newest committed version wins');
  assert.equal(store.get(A)?.pending, undefined, 'a pending version 2 is older than the committed 3');
  assert.deepEqual(await content(store, A), Uint8Array.from([4, 5, 6, 7]));
  assert.equal(store.get(B)?.pending, undefined);
  assert.equal(store.get(C)?.pending?.version, 1);
  // The recovered pending version is verified before it is committed: C's is dropped.
  await assert.rejects(store.commit(C, 1), code(WorkerErrorCode.ChunkCorrupt));
  assert.equal(store.get(C), undefined);
  await store.close();
});

test('a recovered pending version that checks out can be committed', async () => {
  const node = new SimNode();
  let store = await openSim(node);
  await write(store, A, 0, bytes(100 * KiB, 46));
  await store.stage(A, { version: 2, chainVersion: 1, offset: 5, data: bytes(5, 47) });
  await store.close();
  await node.disk().syncDir(`${DIR}/chunks/01`);
  node.fs.crash(new Prng(6), false);
  store = await openSim(node);
  assert.equal(store.get(A)?.updateVersion, 2);
  await store.commit(A, 2);
  assert.deepEqual(await content(store, A), overlay(bytes(100 * KiB, 46), 5, bytes(5, 47)));
  await store.close();
});

// ---- corruption --------------------------------------------------------------------------------------

test('a flipped data bit: reads of other blocks pass until it is read, then the chunk is refused, never the bad bytes', async () => {
  const node = new SimNode();
  let store = await openSim(node);
  const data = bytes(200 * KiB, 50);
  await write(store, A, 0, data);
  await store.close();
  node.fs.flipBit(chunkFile(A, 1), 4096 + 130 * KiB + 17, 5); // in block 2 (128..192 KiB)
  const logs: string[] = [];
  store = await openSim(node, { log: (level, msg) => logs.push(`${level} ${msg}`) });
  assert.deepEqual(logs, [], 'start-up checks headers only');
  assert.deepEqual(Uint8Array.from(await store.read(A, 10, 100 * KiB)), data.subarray(10, 10 + 100 * KiB), 'blocks 0 and 1 verify');
  const err = await store.read(A, 129 * KiB, 10).then(
    () => assert.fail('bad bytes were returned'),
    (e: unknown) => e as Error & { code: string; details: { file: string; offset: number } },
  );
  assert.equal(err.code, WorkerErrorCode.ChunkCorrupt);
  assert.equal(err.details.file, chunkFile(A, 1));
  assert.equal(err.details.offset, 4096 + 128 * KiB, 'names the bad block');
  assert.match(err.message, /chunks\/01\/0000000000000001-00000000\.1\.chunk at offset 135168/);
  assert.match(store.get(A)?.corrupt ?? '', /fails its CRC32C/);
  assert.deepEqual(logs, ['warn chunk corrupt']);
  assert.deepEqual(store.corruption(), { now: 1, detected: 1 });
  await assert.rejects(store.read(A, 0, 10), code(WorkerErrorCode.ChunkCorrupt), 'a corrupt chunk is not served');
  assert.deepEqual(store.corruption(), { now: 1, detected: 1 }, 'counted once, however often it is read');
  await assert.rejects(store.stage(A, { version: 2, chainVersion: 1, offset: 0, data: bytes(1, 1) }), code(WorkerErrorCode.ChunkCorrupt), 'nor copied into a new version');
  // A replace (resync from another replica) repairs it.
  await write(store, A, 0, data, true);
  assert.equal(store.get(A)?.corrupt, undefined);
  assert.deepEqual(store.corruption(), { now: 0, detected: 1 });
  assert.deepEqual(await content(store, A), data);
  await store.close();
});

test('an unreadable sector (EIO on a read) is damage: the chunk is refused as corrupt and counted, and a header that cannot be read does not stop the store from opening', async () => {
  const node = new SimNode();
  const disk = node.disk();
  let unreadable: ((position: number) => boolean) | undefined;
  const failing = new Proxy(disk, {
    get(target, prop) {
      if (prop === 'open') {
        return async (file: string, mode: Parameters<Disk['open']>[1]) => {
          const f = await target.open(file, mode);
          if (!file.endsWith('.chunk')) return f;
          return new Proxy(f, {
            get(ft, fp) {
              if (fp === 'read' || fp === 'readChecked') {
                const read = (ft[fp] as (length: number, position: number, ...rest: unknown[]) => Promise<unknown>).bind(ft);
                return (length: number, position: number, ...rest: unknown[]) => (unreadable?.(position) === true ? Promise.reject(Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' })) : read(length, position, ...rest));
              }
              const v = Reflect.get(ft, fp) as unknown;
              return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(ft) : v;
            },
          });
        };
      }
      const v = Reflect.get(target, prop) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  let store = await ChunkStore.open(failing, DIR, { identity, log: () => undefined });
  const data = bytes(200 * KiB, 52);
  await write(store, A, 0, data);
  unreadable = (position) => position > 0; // the data, not the header
  await assert.rejects(store.read(A, 0, 10), code(WorkerErrorCode.ChunkCorrupt));
  assert.match(store.get(A)?.corrupt ?? '', /could not read it \(EIO\)/);
  assert.deepEqual(store.corruption(), { now: 1, detected: 1 });
  await store.close();
  unreadable = () => true; // the header too, at the next start
  store = await ChunkStore.open(failing, DIR, { identity, log: () => undefined });
  assert.match(store.get(A)?.corrupt ?? '', /could not read the header/);
  unreadable = undefined;
  await write(store, A, 0, data, true);
  assert.deepEqual(await content(store, A), data, 'a replace (a repair from another replica) mends it');
  await store.close();
});

test('kept-open chunk files: a same-version repair, a removal and damage after opening are all seen; more chunks than it keeps are all served', async () => {
  const node = new SimNode();
  const store = await openSim(node);
  const first = bytes(200 * KiB, 60);
  await write(store, A, 0, first);
  assert.deepEqual(Uint8Array.from(await store.read(A, 0, 10)), first.subarray(0, 10), 'opened and kept');
  // A repair commits the same version's name over the file that is open.
  const repaired = bytes(200 * KiB, 61);
  await store.stage(A, { version: 1, chainVersion: 1, offset: 0, data: repaired, replace: true });
  await store.commit(A, 1);
  assert.deepEqual(Uint8Array.from(await store.read(A, 5, 10)), repaired.subarray(5, 15), 'the repaired bytes, not the kept file');
  // Damage after the file was opened (and kept) is found by the block check, as before.
  node.fs.flipBit(chunkFile(A, 1), 4096 + 130 * KiB + 17, 5);
  await assert.rejects(store.read(A, 129 * KiB, 10), code(WorkerErrorCode.ChunkCorrupt));
  await store.remove(A);
  await assert.rejects(store.read(A, 0, 10), code(WorkerErrorCode.ChunkNotFound));
  // More chunks than are kept open (128): each read still returns its own chunk's bytes.
  const many = 300;
  for (let i = 0; i < many; i++) await write(store, { inodeId: 9, index: i }, 0, bytes(64, 1000 + i));
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < many; i++) assert.deepEqual(Uint8Array.from(await store.read({ inodeId: 9, index: i }, 0, 64)), bytes(64, 1000 + i), `chunk ${i}, round ${round}`);
  }
  await Promise.all(Array.from({ length: many }, async (_, i) => assert.deepEqual(Uint8Array.from(await store.read({ inodeId: 9, index: i }, 8, 8)), bytes(64, 1000 + i).subarray(8, 16))));
  await store.close();
});

test('scrub and readWhole find a flip in a block no read touched', async () => {
  const node = new SimNode();
  let store = await openSim(node);
  const B = { inodeId: 1, index: 1 };
  await write(store, A, 0, bytes(100 * KiB, 51));
  await write(store, B, 0, bytes(100 * KiB, 52));
  await store.close();
  node.fs.flipBit(chunkFile(A, 1), 4096 + 99 * KiB, 0);
  store = await openSim(node);
  assert.deepEqual(await store.scrub(B), { ok: true });
  assert.deepEqual((await store.readWhole(B)).data, bytes(100 * KiB, 52));
  const r = await store.scrub(A);
  assert.equal(r.ok, false);
  assert.equal(!r.ok && r.error.code, WorkerErrorCode.ChunkCorrupt);
  assert.deepEqual(store.list().map((m) => m.corrupt !== undefined), [true, false]);
  await assert.rejects(store.readWhole(A), code(WorkerErrorCode.ChunkCorrupt));
  await assert.rejects(store.scrub({ inodeId: 9, index: 9 }), code(WorkerErrorCode.ChunkNotFound));
  await store.close();
});

test('a flipped header bit: the chunk is listed corrupt after reopen, with a warning, not dropped', async () => {
  const node = new SimNode();
  let store = await openSim(node);
  await write(store, A, 0, bytes(1000, 53));
  await write(store, A, 0, bytes(1000, 54));
  await store.close();
  node.fs.flipBit(chunkFile(A, 2), 24, 1); // the version field
  const warnings: string[] = [];
  const log: LogFn = (level, msg, ctx) => level === 'warn' && warnings.push(`${msg} ${JSON.stringify(ctx)}`);
  store = await openSim(node, { log });
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /damaged header.*0000000000000001-00000000\.2\.chunk.*header checksum mismatch/);
  const m = store.get(A);
  assert.equal(m?.commitVersion, 2, 'the version comes from the file name');
  assert.match(m?.corrupt ?? '', /header checksum mismatch/);
  assert.deepEqual(store.corruption(), { now: 1, detected: 1 });
  await assert.rejects(store.read(A, 0, 1), code(WorkerErrorCode.ChunkCorrupt));
  await write(store, A, 0, bytes(10, 55), true);
  assert.deepEqual(await content(store, A), bytes(10, 55));
  await store.close();
});

// ---- identity --------------------------------------------------------------------------------------

test('identity: created once, matched after, another target refused, a damaged file refused', async () => {
  const node = new SimNode();
  const store = await openSim(node);
  await store.close();
  const decoded = decodeIdentity(await node.disk().readFile(`${DIR}/target.id`));
  assert.deepEqual(decoded, identity);
  await (await openSim(node)).close();
  for (const other of [{ ...identity, clusterId: 'cluster-b' }, { ...identity, workerId: 2 }, { ...identity, targetId: 12 }]) {
    await assert.rejects(ChunkStore.open(node.disk(), DIR, { identity: other }), (err: Error & { code?: string }) => {
      assert.equal(err.code, WorkerErrorCode.TargetForeign);
      assert.equal(err.message, `${DIR} holds cluster "cluster-a" worker 1 target 11, expected cluster "${other.clusterId}" worker ${other.workerId} target ${other.targetId}: point the worker at its own directory`);
      return true;
    });
  }
  node.fs.flipBit(`${DIR}/target.id`, 3, 2);
  await assert.rejects(openSim(node), (err: Error & { code?: string }) => {
    assert.equal(err.code, WorkerErrorCode.TargetForeign);
    assert.match(err.message, /^\/data\/t11\/target\.id is damaged \(checksum mismatch\); expected cluster "cluster-a" worker 1 target 11/);
    return true;
  });
  assert.equal(typeof decodeIdentity(encodeIdentity(identity).subarray(1)), 'string');
});

test('served record: replaced whole, so a crash at any point of a write (torn or not) leaves the old record or the new one; damage is told, never read as a record', async () => {
  const older = { chainId: 3, chainVersion: 7, routingVersion: 40 };
  const newer = { chainId: 3, chainVersion: 9, routingVersion: 57 };
  let points = 0;
  for (const tear of [false, true]) {
    for (let n = 1; ; n++) {
      const node = new SimNode();
      await node.disk().mkdirs(DIR);
      await writeServed(node.disk(), DIR, older);
      const crashed = node.armCrash(n, new Prng(n), tear);
      const finished = await Promise.race([writeServed(node.disk(), DIR, newer).then(() => true), crashed.then(() => false)]);
      node.disarm();
      const got = await readServed(node.disk(), DIR);
      if (finished) {
        assert.deepEqual(got, newer);
        break;
      }
      points = Math.max(points, n);
      assert.ok([JSON.stringify(older), JSON.stringify(newer)].includes(JSON.stringify(got)), `crash at point ${n} (tear ${tear}): ${JSON.stringify(got)}`);
      await writeServed(node.disk(), DIR, newer); // a leftover temp file does not stop the next write
      assert.deepEqual(await readServed(node.disk(), DIR), newer);
    }
  }
  assert.ok(points >= 4, `the write has several crash points (${points})`);
  assert.equal(await readServed(new SimNode().disk(), DIR), undefined, 'never served: no record');
  const node = new SimNode();
  await node.disk().mkdirs(DIR);
  await writeServed(node.disk(), DIR, older);
  node.fs.flipBit(`${DIR}/${servedFileName}`, 5, 1);
  assert.equal(await readServed(node.disk(), DIR), 'checksum mismatch');
  assert.equal(decodeServed(encodeServed({ ...older, chainId: 0 })), 'missing or mistyped fields');
});

test('identity: a directory with files but no identity is refused', async () => {
  const node = new SimNode();
  const disk = node.disk();
  await disk.mkdirs(`${DIR}/chunks/01`);
  await assert.rejects(ChunkStore.open(disk, DIR, { identity }), (err: Error & { code?: string }) => {
    assert.equal(err.code, WorkerErrorCode.TargetForeign);
    assert.equal(err.message, `${DIR} holds chunks but no target.id; expected an empty directory for cluster "cluster-a" worker 1 target 11`);
    return true;
  });
});

// ---- a full disk, a failed fsync ------------------------------------------------------------------

test('ENOSPC: the stage fails with CAIRN_TARGET_FULL, leaves no file, and the committed version is intact', async () => {
  const node = new SimNode();
  const store = await openSim(node);
  const data = bytes(100 * KiB, 60);
  await write(store, A, 0, data);
  node.fs.fill(50 * KiB);
  await assert.rejects(store.stage(A, { version: 2, chainVersion: 1, offset: 0, data: bytes(10, 61) }), code(WorkerErrorCode.TargetFull));
  assert.deepEqual(node.fs.durableFiles(`${DIR}/chunks/01`).map((f) => f.name), [chunkFileName(A, 1, 'chunk')]);
  assert.equal(store.get(A)?.pending, undefined);
  assert.deepEqual(await content(store, A), data);
  node.fs.unfill();
  await write(store, A, 0, bytes(10, 61));
  assert.deepEqual(await content(store, A), overlay(data, 0, bytes(10, 61)));
  await store.close();
});

test('a disk that refuses the store its own files (EPERM, EIO on a create or rename) fails the target as a failed fsync does; a full one does not', async () => {
  for (const [errCode, when] of [['EPERM', 'open'], ['EIO', 'rename'], ['ENOSPC', 'open']] as const) {
    const node = new SimNode();
    const disk = node.disk();
    let refuse = false;
    const refused = (file: string): Promise<never> => Promise.reject(Object.assign(new Error(`${errCode}: ${file}`), { code: errCode }));
    const refusing = new Proxy(disk, {
      get(target, prop) {
        if (prop === 'open') return (file: string, mode: Parameters<Disk['open']>[1]) => (refuse && when === 'open' && mode === 'create' ? refused(file) : target.open(file, mode));
        if (prop === 'rename') return (from: string, to: string) => (refuse && when === 'rename' ? refused(from) : target.rename(from, to));
        const v = Reflect.get(target, prop) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const store = await ChunkStore.open(refusing, DIR, { identity });
    const data = bytes(10 * KiB, 63);
    await write(store, A, 0, data);
    refuse = true;
    const B = { inodeId: 1, index: 1 };
    const expected = errCode === 'ENOSPC' ? WorkerErrorCode.TargetFull : WorkerErrorCode.TargetFailed;
    await assert.rejects(write(store, B, 0, data), code(expected), `${errCode} at ${when}`);
    refuse = false;
    // Failed: no write is taken any more, until a restart re-checks the disk (it reports itself
    // offline, so its chains go on without it). Full: the next write, with space, goes through.
    if (expected === WorkerErrorCode.TargetFailed) assert.equal(store.failed, true);
    else await write(store, B, 0, data);
    assert.deepEqual(await content(store, A), data);
    await store.close();
  }
});

test('a target directory removed under a running store: no new chunk tree is made in its place; the target fails, a write in a known directory too', async (t) => {
  for (const known of [false, true]) {
    const dir = await tempDir(t);
    const store = await ChunkStore.open(nodeDisk, dir, { identity, log: () => undefined });
    await write(store, A, 0, bytes(10 * KiB, 90));
    await rm(dir, { recursive: true, force: true });
    // A new inode's fan-out directory, or one made before (A's).
    const next = known ? { inodeId: 1, index: 1 } : { inodeId: 258, index: 0 };
    await assert.rejects(write(store, next, 0, bytes(10, 91)), code(WorkerErrorCode.TargetFailed), `known directory: ${known}`);
    assert.equal(store.failed, true);
    await assert.rejects(readdir(dir), { code: 'ENOENT' }, 'nothing made again where the target was');
    await store.close();
  }
});

test('a failed fsync: CAIRN_TARGET_FAILED, then every write is refused, reads still served; a restart recovers', async () => {
  const node = new SimNode();
  let store = await openSim(node);
  const data = bytes(10 * KiB, 62);
  await write(store, A, 0, data);
  node.syncFails = (file) => file.endsWith('.pending');
  const B = { inodeId: 1, index: 1 };
  await assert.rejects(store.stage(B, { version: 1, chainVersion: 1, offset: 0, data }), code(WorkerErrorCode.TargetFailed));
  node.syncFails = () => false;
  await assert.rejects(store.stage(B, { version: 1, chainVersion: 1, offset: 0, data }), code(WorkerErrorCode.TargetFailed), 'no retry after a failed fsync');
  await assert.rejects(store.remove(A), code(WorkerErrorCode.TargetFailed));
  assert.equal(store.get(B), undefined);
  assert.deepEqual(await content(store, A), data);
  await store.close();
  node.fs.crash(new Prng(7), false);
  store = await openSim(node);
  assert.deepEqual(await content(store, A), data);
  await write(store, B, 0, data);
  await store.close();
});

// ---- group commit ---------------------------------------------------------------------------------

test('concurrent commits share directory syncs, and all of them are durable when they resolve', async () => {
  const node = new SimNode();
  const base = node.disk();
  const syncs: string[] = [];
  const disk: Disk = Object.create(base);
  disk.syncDir = (dir) => {
    syncs.push(dir);
    return base.syncDir(dir);
  };
  let store = await ChunkStore.open(disk, DIR, { identity });
  const ids = Array.from({ length: 20 }, (_, index) => ({ inodeId: 1, index }));
  await Promise.all(ids.map((id) => store.stage(id, { version: 1, chainVersion: 1, offset: 0, data: bytes(1000, id.index) })));
  syncs.length = 0;
  await Promise.all(ids.map((id) => store.commit(id, 1)));
  assert.ok(syncs.length <= 2, `20 commits made ${syncs.length} directory syncs`);
  assert.ok(syncs.every((d) => d === `${DIR}/chunks/01`));
  // Other directories sync on their own, in parallel.
  syncs.length = 0;
  const other = ids.map((id) => ({ inodeId: 2, index: id.index }));
  await Promise.all([...ids, ...other].map((id) => write(store, id, 0, bytes(10, 70))));
  // (chunks/02 is new: making it syncs its parent once.)
  assert.deepEqual(new Set(syncs), new Set([`${DIR}/chunks`, `${DIR}/chunks/01`, `${DIR}/chunks/02`]));
  assert.ok(syncs.length <= 9, `${syncs.length} directory syncs for 40 writes in two directories`);
  node.fs.crash(new Prng(8), false);
  store = await openSim(node);
  for (const id of ids) assert.equal(store.get(id)?.commitVersion, 2);
  for (const id of other) assert.equal(store.get(id)?.commitVersion, 1);
  await store.close();
});

// ---- the real disk --------------------------------------------------------------------------------

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-chunks-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('on the real disk: round trip, reopen, layout, a foreign identity refused', async (t) => {
  const dir = await tempDir(t);
  let store = await ChunkStore.open(nodeDisk, dir, { identity });
  const data = bytes(150 * KiB, 80);
  await write(store, A, 0, data);
  await write(store, A, 140 * KiB, bytes(20 * KiB, 81));
  const expected = overlay(data, 140 * KiB, bytes(20 * KiB, 81));
  await store.stage({ inodeId: 258, index: 3 }, { version: 1, chainVersion: 1, offset: 0, data: bytes(10, 82) });
  assert.deepEqual(Uint8Array.from(await store.read(A, 0, 1 << 20)), expected);
  await store.close();
  assert.deepEqual((await readdir(dir)).sort(), ['chunks', 'target.id']);
  assert.deepEqual((await readdir(path.join(dir, 'chunks'))).sort(), ['01', '02']);
  assert.deepEqual(await readdir(path.join(dir, 'chunks', '01')), [chunkFileName(A, 2, 'chunk')]);
  assert.deepEqual(await readdir(path.join(dir, 'chunks', '02')), ['0000000000000102-00000003.1.pending']);
  store = await ChunkStore.open(nodeDisk, dir, { identity });
  assert.deepEqual(Uint8Array.from(await store.read(A, 0, 1 << 20)), expected);
  assert.equal(store.get({ inodeId: 258, index: 3 })?.updateVersion, 1);
  assert.deepEqual(Uint8Array.from((await store.readWhole(A)).data), expected);
  await store.close();
  await assert.rejects(ChunkStore.open(nodeDisk, dir, { identity: { ...identity, targetId: 12 } }), code(WorkerErrorCode.TargetForeign));
});

// ---- the model ------------------------------------------------------------------------------------

type ModelOp =
  | { kind: 'write'; chunk: number; offset: number; length: number; replace: boolean; sameVersion: boolean; commit: boolean; seed: number }
  | { kind: 'abort'; chunk: number }
  | { kind: 'remove'; chunk: number };
/** An operation, and maybe a crash before the `at`-th disk operation from its start (after it, if it has fewer). */
type ModelStep = { op: ModelOp; crash: { at: number; tear: boolean } | null };

const modelIds: ChunkId[] = [{ inodeId: 1, index: 0 }, { inodeId: 1, index: 1 }, { inodeId: 2, index: 0 }];
const modelOpts = { chunkSizeBytesMax: 8 * KiB, blockSizeBytes: 1024 };
const chunkArb = fc.integer({ min: 0, max: modelIds.length - 1 });
const stepArb: fc.Arbitrary<ModelStep> = fc.record({
  op: fc.oneof(
    { weight: 6, arbitrary: fc.record({ kind: fc.constant('write' as const), chunk: chunkArb, offset: fc.integer({ min: 0, max: 8 * KiB }), length: fc.integer({ min: 0, max: 3 * KiB }), replace: fc.boolean(), sameVersion: fc.boolean(), commit: fc.integer({ min: 0, max: 4 }).map((n) => n > 0), seed: fc.integer() }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('abort' as const), chunk: chunkArb }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('remove' as const), chunk: chunkArb }) },
  ),
  crash: fc.oneof({ weight: 3, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.record({ at: fc.integer({ min: 1, max: 12 }), tear: fc.boolean() }) }),
});

function same(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  return a === undefined || b === undefined ? a === b : Buffer.compare(a, b) === 0;
}

/** What `op` does to the store, and the committed content of its chunk once it has. */
function plan(store: ChunkStore, op: ModelOp, before: Uint8Array | undefined): { run: () => Promise<unknown>; after: Uint8Array | undefined } {
  const id = modelIds[op.chunk];
  const m = store.get(id);
  if (op.kind === 'abort') return { run: async () => m?.pending && store.abort(id, m.pending.version), after: before };
  if (op.kind === 'remove') return { run: () => store.remove(id), after: undefined };
  const cv = m?.commitVersion ?? 0;
  const version = op.replace && op.sameVersion && cv >= 1 ? cv : cv + 1;
  const offset = op.replace ? 0 : Math.min(op.offset, modelOpts.chunkSizeBytesMax - op.length);
  const data = bytes(op.length, op.seed);
  const next = op.replace ? data : overlay(before ?? new Uint8Array(0), offset, data);
  const run = async () => {
    await store.stage(id, { version, chainVersion: 1, offset, data, replace: op.replace });
    if (op.commit) await store.commit(id, version);
  };
  return { run, after: op.commit ? next : before };
}

async function runModel(steps: ModelStep[]): Promise<void> {
  const node = new SimNode();
  let store = await openSim(node, modelOpts);
  const model: (Uint8Array | undefined)[] = modelIds.map(() => undefined);
  for (const [i, { op, crash }] of steps.entries()) {
    const before = model[op.chunk];
    const { run, after } = plan(store, op, before);
    if (crash === null) {
      await run();
      model[op.chunk] = after;
    } else {
      const prng = new Prng(i + 1);
      const crashed = node.armCrash(crash.at, prng, crash.tear);
      const finished = await Promise.race([run().then(() => true), crashed.then(() => false)]);
      if (finished) {
        node.disarm();
        node.fs.crash(prng, crash.tear);
      }
      store = await openSim(node, modelOpts);
      const got = await content(store, modelIds[op.chunk]);
      assert.ok(finished ? same(got, after) : same(got, before) || same(got, after), `step ${i} (${op.kind}, crash at ${crash.at}): neither old nor new content`);
      model[op.chunk] = got;
    }
    for (const [j, id] of modelIds.entries()) assert.ok(same(await content(store, id), model[j]), `step ${i}: chunk ${j} differs from the model`);
    assert.ok(store.list().every((m) => m.corrupt === undefined));
  }
  await store.close();
}

test('random stages, commits, aborts and removes with crashes anywhere match a model of committed contents', async () => {
  // Each run is a fresh simulated disk, so runs are cheap: 300 of up to 30 steps take about a second.
  await fc.assert(fc.asyncProperty(fc.array(stepArb, { minLength: 5, maxLength: 30 }), runModel), { numRuns: Number(process.env.CAIRN_CHUNK_PROPERTY_RUNS ?? 300) });
});

test('a truncate version cuts the committed content, or extends it with zeros', async () => {
  const node = new SimNode();
  const store = await openSim(node);
  const data = bytes(150 * KiB, 3);
  await store.stage(A, { version: 1, chainVersion: 1, offset: 0, data });
  await store.commit(A, 1);
  await store.stage(A, { version: 2, chainVersion: 1, offset: 70 * KiB, data: new Uint8Array(0), truncate: true });
  await store.commit(A, 2);
  assert.deepEqual(await content(store, A), data.subarray(0, 70 * KiB));
  await store.stage(A, { version: 3, chainVersion: 1, offset: 100 * KiB, data: new Uint8Array(0), truncate: true });
  await store.commit(A, 3);
  const grown = new Uint8Array(100 * KiB);
  grown.set(data.subarray(0, 70 * KiB));
  assert.deepEqual(await content(store, A), grown);
  await assert.rejects(store.stage(A, { version: 4, chainVersion: 1, offset: 1, data: bytes(1, 1), truncate: true }), code(WorkerErrorCode.InvalidArgument));
  await store.close();
});

// Local reads (src/client/local-reads.ts): a client on a worker's machine reads a chunk's committed
// file itself. What must hold: the bytes are the located version's, every block is checked, a file
// that is not the chunk's is never read, and what is kept is forgotten when the client says so.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { BufferPool } from '../../src/buffer-pool.ts';
import { LocalReads } from '../../src/client/local-reads.ts';
import { nodeDisk } from '../../src/io/node-disk.ts';
import { ChunkStore, type ChunkId } from '../../src/worker/chunk-store.ts';
import { WorkerError, WorkerErrorCode } from '../../src/worker/errors.ts';
import type { LocateReply } from '../../src/worker/protocol.ts';

const identity = { clusterId: 'c', workerId: 1, targetId: 11 };
const A: ChunkId = { inodeId: 7, index: 2 };
const B: ChunkId = { inodeId: 7, index: 3 };
const here = 'host-a/boot-1';
const members = [{ workerId: 1 }];

async function storeWith(t: TestContext, chunks: [ChunkId, Uint8Array][]): Promise<ChunkStore> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-local-reads-'));
  const store = await ChunkStore.open(nodeDisk, dir, { identity });
  t.after(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });
  for (const [id, data] of chunks) await commit(store, id, data);
  return store;
}

async function commit(store: ChunkStore, id: ChunkId, data: Uint8Array, offset = 0): Promise<void> {
  const version = (store.get(id)?.commitVersion ?? 0) + 1;
  await store.stage(id, { version, chainVersion: 1, offset, data });
  await store.commit(id, version);
}

/** A locate for chunk `id` of `store`. */
function locateOf(store: ChunkStore, id: ChunkId, counter: { n: number }, change: (r: LocateReply) => LocateReply = (r) => r): (workerId: number) => Promise<LocateReply> {
  return async () => {
    counter.n++;
    const meta = store.get(id)!;
    return change({ hostId: here, file: store.committedFile(id)!, commitVersion: meta.commitVersion, lengthBytes: meta.lengthBytes, crc32c: meta.crc32c });
  };
}

/** A locate the worker refuses, as it does a chunk with a write in flight there. */
function dirtyLocate(counter: { n: number }): (workerId: number) => Promise<LocateReply> {
  return async () => {
    counter.n++;
    throw new WorkerError(WorkerErrorCode.ChunkDirty, 'pending here');
  };
}

async function openFds(): Promise<number> {
  return (await readdir('/proc/self/fd')).length;
}

test('a clean chunk is read from its file: the bytes asked for, cut at the chunk\'s end, one locate for many reads', async (t) => {
  const data = randomBytes(20_000);
  const store = await storeWith(t, [[A, data]]);
  const local = new LocalReads({ hostId: here });
  const n = { n: 0 };
  const loc = locateOf(store, A, n);
  for (const [offset, length] of [[0, 4096], [5000, 3000], [18_000, 8000], [4095, 2]] as const) {
    const r = await local.read(A.inodeId, A.index, offset, length, members, loc);
    assert.ok(r !== undefined, `read at ${offset}`);
    assert.equal(r.lengthBytes, 20_000);
    assert.deepEqual(Buffer.from(r.data), data.subarray(offset, Math.min(offset + length, 20_000)));
  }
  const past = await local.read(A.inodeId, A.index, 30_000, 10, members, loc);
  assert.equal(past?.data.byteLength, 0);
  assert.equal(n.n, 1);
  assert.deepEqual(local.stats(), { reads: 5, bytes: 4096 + 3000 + 2000 + 2, opened: 1, declined: 0, damaged: 0 });
  local.close();
});

test('a version committed after the file was opened: the kept file reads the version located; once forgotten, the new one', async (t) => {
  const old = randomBytes(8192);
  const store = await storeWith(t, [[A, old]]);
  const local = new LocalReads({ hostId: here });
  const n = { n: 0 };
  const loc = locateOf(store, A, n);
  assert.deepEqual(Buffer.from((await local.read(A.inodeId, A.index, 0, 8192, members, loc))!.data), old);
  await commit(store, A, Buffer.alloc(100, 9), 50);
  assert.deepEqual(Buffer.from((await local.read(A.inodeId, A.index, 0, 8192, members, loc))!.data), old);
  local.forget(A.inodeId, A.index);
  const now = Buffer.from(old);
  now.fill(9, 50, 150);
  assert.deepEqual(Buffer.from((await local.read(A.inodeId, A.index, 0, 8192, members, loc))!.data), now);
  // Forgetting another chunk, or all of another inode, keeps this one.
  local.forget(A.inodeId, A.index + 1);
  local.forget(A.inodeId + 1);
  await local.read(A.inodeId, A.index, 0, 10, members, loc);
  assert.equal(n.n, 2);
  local.forget(A.inodeId);
  await local.read(A.inodeId, A.index, 0, 10, members, loc);
  assert.equal(n.n, 3);
  local.close();
});

test('a worker on another machine: declined, and never asked again', async (t) => {
  const store = await storeWith(t, [[A, randomBytes(4096)]]);
  const local = new LocalReads({ hostId: here });
  const n = { n: 0 };
  const loc = locateOf(store, A, n, (r) => ({ ...r, hostId: 'host-b/boot-9' }));
  assert.equal(await local.read(A.inodeId, A.index, 0, 10, members, loc), undefined);
  local.forget(A.inodeId);
  assert.equal(await local.read(A.inodeId, A.index, 0, 10, members, loc), undefined);
  assert.equal(n.n, 1);
  assert.equal(local.stats().declined, 2);
  assert.equal(local.stats().opened, 0);
});

test('a named file that is not the chunk\'s version is not read: another name, another version, another CRC or length, a relative path', async (t) => {
  const store = await storeWith(t, [[A, randomBytes(4096)], [B, randomBytes(4096)]]);
  const changes: [string, (r: LocateReply) => LocateReply][] = [
    ['another file', (r) => ({ ...r, file: '/etc/passwd' })],
    ['another chunk\'s file', (r) => ({ ...r, file: store.committedFile(B)! })],
    ['another version', (r) => ({ ...r, commitVersion: r.commitVersion + 1 })],
    ['another CRC', (r) => ({ ...r, crc32c: (r.crc32c + 1) >>> 0 })],
    ['another length', (r) => ({ ...r, lengthBytes: r.lengthBytes - 1 })],
    ['a relative path', (r) => ({ ...r, file: path.relative(process.cwd(), r.file) })],
    ['not an answer', () => ({ hostId: here }) as LocateReply],
  ];
  const before = await openFds();
  for (const [what, change] of changes) {
    const local = new LocalReads({ hostId: here });
    assert.equal(await local.read(A.inodeId, A.index, 0, 10, members, locateOf(store, A, { n: 0 }, change)), undefined, what);
    assert.equal(local.stats().opened, 0, what);
  }
  assert.equal(await openFds(), before, 'no file left open');
});

test('a flipped byte: the read of its block declines (damaged) and the file is dropped; another block still reads', async (t) => {
  const data = randomBytes(12_288);
  const store = await storeWith(t, [[A, data]]);
  const local = new LocalReads({ hostId: here });
  const n = { n: 0 };
  const loc = locateOf(store, A, n);
  assert.ok(await local.read(A.inodeId, A.index, 0, 10, members, loc));
  // In place, as a failing disk would: the kept file sees it too.
  const f = await open(store.committedFile(A)!, 'r+');
  const { size } = await f.stat();
  const at = size - data.length + 5000; // in block 1
  const byte = Buffer.alloc(1);
  await f.read(byte, 0, 1, at);
  byte[0] ^= 0x5a;
  await f.write(byte, 0, 1, at);
  await f.close();
  assert.equal(await local.read(A.inodeId, A.index, 4096, 100, members, loc), undefined);
  assert.equal(local.stats().damaged, 1);
  const other = await local.read(A.inodeId, A.index, 8192, 100, members, loc);
  assert.deepEqual(Buffer.from(other!.data), data.subarray(8192, 8292));
  assert.equal(n.n, 2, 'located again after the damaged read dropped the file');
  local.close();
});

test('a locate refused (a write in flight there, no such chunk): read through the chain until forgotten, without asking again', async (t) => {
  const store = await storeWith(t, [[A, randomBytes(4096)]]);
  const local = new LocalReads({ hostId: here });
  const refused = { n: 0 };
  const refuse = dirtyLocate(refused);
  assert.equal(await local.read(A.inodeId, A.index, 0, 10, members, refuse), undefined);
  assert.equal(await local.read(A.inodeId, A.index, 0, 10, members, refuse), undefined);
  assert.equal(refused.n, 1);
  local.forget(A.inodeId, A.index);
  const n = { n: 0 };
  assert.ok(await local.read(A.inodeId, A.index, 0, 10, members, locateOf(store, A, n)));
  assert.equal(n.n, 1);
  local.close();
});

test('forgotten while being located: the answer serves the reads waiting for it, and is not kept', async (t) => {
  const data = randomBytes(4096);
  const store = await storeWith(t, [[A, data]]);
  const local = new LocalReads({ hostId: here });
  const gate = Promise.withResolvers<void>();
  const n = { n: 0 };
  const inner = locateOf(store, A, n);
  const slow = async (w: number): Promise<LocateReply> => {
    const r = await inner(w);
    await gate.promise;
    return r;
  };
  const reads = [local.read(A.inodeId, A.index, 0, 100, members, slow), local.read(A.inodeId, A.index, 100, 100, members, slow)];
  await new Promise((r) => setImmediate(r));
  local.forget(A.inodeId, A.index); // this client wrote the chunk meanwhile
  gate.resolve();
  const [a, b] = await Promise.all(reads);
  assert.deepEqual(Buffer.from(a!.data), data.subarray(0, 100));
  assert.deepEqual(Buffer.from(b!.data), data.subarray(100, 200));
  assert.equal(n.n, 1, 'one locate for both reads');
  await local.read(A.inodeId, A.index, 0, 100, members, inner);
  assert.equal(n.n, 2, 'not kept: located again');
  local.close();
});

test('at most filesMax files stay open; close lets go of every one', async (t) => {
  const store = await storeWith(t, [[A, randomBytes(4096)], [B, randomBytes(4096)]]);
  const before = await openFds();
  const local = new LocalReads({ hostId: here, filesMax: 1 });
  const na = { n: 0 };
  const nb = { n: 0 };
  for (let i = 0; i < 3; i++) {
    assert.ok(await local.read(A.inodeId, A.index, 0, 10, members, locateOf(store, A, na)));
    assert.ok(await local.read(B.inodeId, B.index, 0, 10, members, locateOf(store, B, nb)));
  }
  assert.deepEqual([na.n, nb.n], [3, 3]);
  assert.equal(await openFds(), before + 1);
  local.close();
  await new Promise((r) => setTimeout(r, 20)); // closes go through libuv's threads
  assert.equal(await openFds(), before);
});

test('reads of 64 KiB and more go into the pool\'s buffers, given back by their release; a failed check gives its buffer back at once', async (t) => {
  const data = randomBytes(256 * 1024);
  const store = await storeWith(t, [[A, data]]);
  const pool = new BufferPool({ idleBytesMax: 1 << 20, classBytesMax: 1 << 20, granularityBytes: 64 * 1024 });
  const local = new LocalReads({ hostId: here, buffers: pool });
  const loc = locateOf(store, A, { n: 0 });
  const small = await local.read(A.inodeId, A.index, 0, 4096, members, loc);
  assert.equal(small?.release, undefined);
  const big = await local.read(A.inodeId, A.index, 1000, 128 * 1024, members, loc);
  assert.deepEqual(Buffer.from(big!.data), data.subarray(1000, 1000 + 128 * 1024));
  assert.equal(typeof big!.release, 'function');
  const used = big!.data.buffer;
  big!.release!();
  const again = await local.read(A.inodeId, A.index, 1000, 128 * 1024, members, loc);
  assert.equal(again!.data.buffer, used, 'the buffer given back is taken again');
  again!.release!();
  // Damage in the range: no answer, and the buffer is back in the pool.
  const f = await open(store.committedFile(A)!, 'r+');
  const { size } = await f.stat();
  await f.write(Buffer.from([0xff ^ data[70_000]]), 0, 1, size - data.length + 70_000);
  await f.close();
  assert.equal(await local.read(A.inodeId, A.index, 1000, 128 * 1024, members, loc), undefined);
  assert.equal(pool.take(132 * 1024).buffer, used);
  local.close();
});

test('a worker that does not answer a locate rests: other chunks go through the chain without waiting on it; a refusal about one chunk does not', async (t) => {
  const store = await storeWith(t, [[A, randomBytes(4096)], [B, randomBytes(4096)]]);
  const local = new LocalReads({ hostId: here });
  let calls = 0;
  const hung = async (): Promise<LocateReply> => {
    calls++;
    throw Object.assign(new Error('no answer within 1000 ms'), { code: 'CAIRN_TIMEOUT' });
  };
  assert.equal(await local.read(A.inodeId, A.index, 0, 10, members, hung), undefined);
  assert.equal(await local.read(B.inodeId, B.index, 0, 10, members, hung), undefined);
  assert.equal(calls, 1, 'the second chunk did not wait on it');
  // Refusals about a chunk: the worker is asked for the next one.
  const other = new LocalReads({ hostId: here });
  const refused = { n: 0 };
  assert.equal(await other.read(A.inodeId, A.index, 0, 10, members, dirtyLocate(refused)), undefined);
  const n = { n: 0 };
  assert.ok(await other.read(B.inodeId, B.index, 0, 10, members, locateOf(store, B, n)));
  assert.deepEqual([refused.n, n.n], [1, 1]);
  other.close();
});

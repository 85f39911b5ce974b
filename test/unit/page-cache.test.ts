// Reads of cached data on the calling thread (src/io/page-cache.ts) and NodeFile.read over them:
// the same bytes whether the page cache holds all, part or none of a range, and the ordinary
// errors; written chunks dropped from the cache once durable. The file lives under test/output (a
// real disk: tmpfs would ignore the eviction).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, openSync, closeSync, readSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { cachedReadsAvailable, checkedRead, checkedReadsAvailable, dropCached, pageDropsAvailable, readCached } from '../../src/io/page-cache.ts';
import { crc32c } from '@node-rs/crc32';
import type { DirectIo, Disk } from '../../src/io/index.ts';
import { fileReadCounts, nodeDisk } from '../../src/io/node-disk.ts';
import { chunkFileName, fanoutDirName } from '../../src/worker/chunk-file.ts';
import { ChunkStore } from '../../src/worker/chunk-store.ts';

const KiB = 1024;
const outputDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'output');

/** Asks the kernel to drop the file's cached pages from `fromBytes` on (dd's nocache: posix_fadvise DONTNEED). */
function evict(file: string, fromBytes = 0): void {
  execFileSync('dd', [`if=${file}`, 'iflag=nocache', 'bs=4096', `skip=${fromBytes / 4096}`, 'count=0', 'status=none']);
}

/**
 * `data` in a new file, written by another process: pages this process wrote stay cached whatever
 * dd asks (seen on Linux 6.18), which would leave the eviction below untested.
 */
function scratchFile(t: { after: (fn: () => void) => void }, data: Uint8Array): string {
  mkdirSync(outputDir, { recursive: true });
  const dir = mkdtempSync(path.join(outputDir, 'page-cache-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'data');
  execFileSync('dd', [`of=${file}`, 'bs=64K', 'conv=fsync', 'status=none'], { input: data });
  return file;
}

test('the addon is built (npm install builds it; in CI its absence is a failure)', { skip: process.env.CI !== 'true' && !cachedReadsAvailable() && 'build/page-cache.node not built (no C compiler?)' }, () => {
  assert.ok(cachedReadsAvailable(), 'build/page-cache.node missing: run node scripts/build-io-addon.ts');
});

test('readCached copies what the page cache holds and nothing it does not', { skip: !cachedReadsAvailable() && 'addon not built' }, async (t) => {
  const data = randomBytes(256 * KiB);
  const file = scratchFile(t, data);
  const fd = openSync(file, 'r');
  t.after(() => closeSync(fd));
  const buf = Buffer.alloc(64 * KiB);
  assert.equal(readCached(fd, buf, 4 * KiB), 64 * KiB, 'just written: cached');
  assert.deepEqual(buf, data.subarray(4 * KiB, 68 * KiB));

  evict(file, 128 * KiB);
  assert.equal(readCached(fd, Buffer.alloc(16 * KiB), 160 * KiB), 0, 'dropped from the cache: left to the I/O threads');
  // A miss starts the kernel's read-ahead (RWF_NOWAIT only keeps the read from waiting for it),
  // which a fast disk may finish before the next read: evicted again, and asked again if the
  // kernel refilled the pages in between; whatever comes back is the file's bytes.
  const across = Buffer.alloc(64 * KiB);
  const got: number[] = [];
  for (let i = 0; i < 5 && got.at(-1) !== 32 * KiB; i++) {
    evict(file, 128 * KiB);
    got.push(readCached(fd, across, 96 * KiB));
    assert.deepEqual(across.subarray(0, got.at(-1)), data.subarray(96 * KiB, 96 * KiB + got.at(-1)!));
  }
  assert.equal(got.at(-1), 32 * KiB, `a range half cached: the cached half (read ${got.join(', ')} bytes in turn)`);
  assert.equal(readCached(fd, Buffer.alloc(4 * KiB), 256 * KiB), 0, 'at the end of the file');
  assert.throws(() => readCached(fd, [1, 2] as unknown as Uint8Array, 0), /Uint8Array/);
  assert.equal(readCached(fd, Buffer.alloc(512 * KiB), 0), 0, 'larger than cachedReadBytesMax: left to the threads');
});

test('NodeFile.read returns the same bytes from the cache, from the disk and from both', async (t) => {
  const data = randomBytes(512 * KiB);
  const file = scratchFile(t, data);
  const f = await nodeDisk.open(file, 'read');
  t.after(() => f.close());
  const before = { ...fileReadCounts };
  const ranges: [number, number][] = [[0, 4 * KiB], [3 * KiB, 70 * KiB], [100 * KiB, 256 * KiB], [510 * KiB, 2 * KiB]];
  for (const [at, n] of ranges) assert.deepEqual(Buffer.from(await f.read(n, at)), data.subarray(at, at + n));
  if (cachedReadsAvailable()) assert.equal(fileReadCounts.pageCache - before.pageCache, ranges.length, 'each range came from the cache');

  // A read the I/O threads made starts the kernel's read-ahead, which may still be filling pages
  // when they are evicted (CI saw the evicted range come from the cache once): each read that
  // must miss is tried again after another eviction if it found its pages back.
  const threadReads = async (evictFrom: number, read: () => Promise<void>): Promise<number> => {
    let n = 0;
    for (let i = 0; i < 5 && n === 0; i++) {
      evict(file, evictFrom);
      const before = fileReadCounts.ioThreads;
      await read();
      n = fileReadCounts.ioThreads - before;
    }
    return n;
  };
  // Into a caller's buffer, half of it cached.
  const into = Buffer.alloc(128 * KiB);
  const halfCached = await threadReads(256 * KiB, async () => {
    const got = await f.read(64 * KiB, 224 * KiB, into);
    assert.deepEqual(Buffer.from(got), data.subarray(224 * KiB, 288 * KiB));
    assert.equal(got.buffer, into.buffer);
  });
  const evicted = await threadReads(0, async () => assert.deepEqual(Buffer.from(await f.read(8 * KiB, 300 * KiB)), data.subarray(300 * KiB, 308 * KiB)));
  if (cachedReadsAvailable()) assert.equal(halfCached + evicted, 2, 'the half-cached and the evicted range went to the I/O threads');

  await assert.rejects(f.read(8 * KiB, 508 * KiB), (err: NodeJS.ErrnoException) => err.code === 'EOF', 'a read past the end is an error, cached or not');
  await assert.rejects(f.read(4 * KiB, 600 * KiB), (err: NodeJS.ErrnoException) => err.code === 'EOF');
});

/** CRC32C of each `blockBytes` block of `data`, as a chunk header keeps them. */
function blockCrcs(data: Uint8Array, blockBytes: number): Uint32Array {
  const crcs = new Uint32Array(Math.ceil(data.byteLength / blockBytes));
  for (let b = 0; b < crcs.length; b++) crcs[b] = crc32c(data.subarray(b * blockBytes, (b + 1) * blockBytes));
  return crcs;
}

test('checked reads: the addon reads and checks block CRCs off the event loop, agreeing with @node-rs/crc32 and with NodeFile.readChecked\'s own check', { skip: !checkedReadsAvailable() && 'addon not built' }, async (t) => {
  const data = randomBytes(2048 * KiB + 1000);
  const file = scratchFile(t, data);
  const fd = openSync(file, 'r');
  t.after(() => closeSync(fd));
  const bs = 4 * KiB;
  const crcs = blockCrcs(data, bs);
  // Every length the loop may meet (a tail shorter than 8 bytes, than a block), from any block.
  for (const [from, length] of [[0, data.byteLength], [bs + 1, 1], [bs, 7], [2 * bs + 3, 8], [3 * bs, bs + 13], [10 * bs, 1024 * KiB]] as const) {
    const buf = Buffer.alloc(length);
    assert.equal(await checkedRead(fd, buf, from, bs, blockCrcs(data.subarray(from, from + length), bs)), -1, `${length} bytes from ${from}`);
    assert.deepEqual(buf, data.subarray(from, from + length));
  }
  const wrong = crcs.slice(5);
  wrong[3] ^= 1;
  assert.equal(await checkedRead(fd, Buffer.alloc(1024 * KiB), 5 * bs, bs, wrong), 3, 'the first block that differs');
  assert.equal(await checkedRead(fd, Buffer.alloc(64 * KiB), 0, bs, crcs.subarray(0, 4)), 4, 'more blocks than CRCs: the first without one fails');
  assert.equal(await checkedRead(fd, Buffer.alloc(64 * KiB), data.byteLength - 100, bs, crcs), 'EOF');
  assert.equal(await checkedRead(1 << 30, Buffer.alloc(8), 0, bs, crcs), 'EBADF');
  await assert.rejects(async () => checkedRead(fd, Buffer.alloc(8), 0, 0, crcs), /blockBytes/);

  // Through NodeFile: the same answers above and below the size it sends to the addon.
  const f = await nodeDisk.open(file, 'read');
  for (const length of [64 * KiB, 1024 * KiB]) {
    const good = await f.readChecked(length, bs, undefined, bs, crcs.subarray(1));
    assert.deepEqual([Buffer.from(good.data), good.badBlock], [data.subarray(bs, bs + length), -1]);
    const bad = crcs.slice(1);
    bad[9] ^= 0x80000000;
    assert.equal((await f.readChecked(length, bs, Buffer.alloc(length), bs, bad)).badBlock, 9, `${length} bytes`);
    await assert.rejects(f.readChecked(length, data.byteLength - 10, undefined, bs, crcs), (err: NodeJS.ErrnoException) => err.code === 'EOF');
  }
  // A close asked while checked reads are queued: they all complete (NodeFile closes after them;
  // libuv's queue order alone would nearly always hide a close that did not wait).
  const reads = Array.from({ length: 8 }, () => f.readChecked(1024 * KiB, 0, undefined, bs, crcs));
  await f.close();
  for (const r of await Promise.all(reads)) assert.equal(r.badBlock, -1);
});

test('dropCached drops a synced file\'s pages, however it was written', { skip: !pageDropsAvailable() && 'addon not built' }, async (t) => {
  const data = randomBytes(256 * KiB);
  // Written by another process, and by this one through NodeFile as a chunk store writes.
  const byDd = scratchFile(t, data);
  const byUs = path.join(path.dirname(byDd), 'ours');
  const f = await nodeDisk.open(byUs, 'create');
  await f.writev([data.subarray(0, 100 * KiB), data.subarray(100 * KiB)], 0);
  await f.sync();
  await f.close();
  for (const file of [byDd, byUs]) {
    const fd = openSync(file, 'r');
    try {
      assert.equal(readCached(fd, Buffer.alloc(64 * KiB), 0), 64 * KiB, `${path.basename(file)}: cached before`);
      assert.equal(dropCached(fd), true);
      assert.equal(readCached(fd, Buffer.alloc(64 * KiB), 128 * KiB), 0, `${path.basename(file)}: dropped`);
      const back = Buffer.alloc(256 * KiB);
      assert.equal(readSync(fd, back, 0, back.length, 0), back.length);
      assert.deepEqual(back, data, 'the contents stay');
    } finally {
      closeSync(fd);
    }
  }
  assert.throws(() => dropCached(-1), /file descriptor/);
});

test('a chunk store drops what it wrote from the page cache once durable, unless told to keep it', { skip: !pageDropsAvailable() && 'addon not built' }, async (t) => {
  mkdirSync(outputDir, { recursive: true });
  const identity = { clusterId: 'c', workerId: 1, targetId: 1 };
  const id = { inodeId: 7, index: 0 };
  const data = randomBytes(512 * KiB);
  for (const [cacheWrites, keepCached] of [[false, false], [true, false], [false, true]]) {
    const dir = mkdtempSync(path.join(outputDir, 'page-cache-store-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const store = await ChunkStore.open(nodeDisk, dir, { identity, cacheWrites });
    await store.stage(id, { version: 1, chainVersion: 1, offset: 0, data, keepCached });
    const fd = openSync(path.join(dir, 'chunks', fanoutDirName(id.inodeId), chunkFileName(id, 1, 'pending')), 'r');
    const cached = readCached(fd, Buffer.alloc(64 * KiB), 256 * KiB);
    closeSync(fd);
    const kept = cacheWrites || keepCached;
    assert.equal(cached, kept ? 64 * KiB : 0, cacheWrites ? 'kept with cacheWrites' : keepCached ? 'kept for the replica reads go to' : 'dropped by default');
    await store.commit(id, 1);
    assert.deepEqual(Buffer.from(await store.read(id, 100 * KiB, 300 * KiB)), data.subarray(100 * KiB, 400 * KiB), 'read back from the disk');
    await store.close();
  }
});

test('direct writes: chunks of any length land exact through aligned buffers; small, cached and refused ones go through the page cache', { skip: nodeDisk.directIo === undefined && 'addon not built' }, async (t) => {
  mkdirSync(outputDir, { recursive: true });
  const identity = { clusterId: 'c', workerId: 1, targetId: 1 };
  const direct = nodeDisk.directIo!;
  const created: string[] = [];
  let refuse = false;
  // The real disk, its direct creates counted (or refused with EINVAL, as tmpfs does).
  const disk: Disk = Object.create(nodeDisk);
  Object.defineProperty(disk, 'directIo', {
    value: {
      ...direct,
      create: (file: string) => {
        created.push(path.basename(file));
        return refuse ? Promise.reject(Object.assign(new Error('EINVAL'), { code: 'EINVAL' })) : direct.create(file);
      },
    } satisfies DirectIo,
  });
  const dir = mkdtempSync(path.join(outputDir, 'direct-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  let store = await ChunkStore.open(disk, dir, { identity });
  const lengths = [4 * 1024 * KiB, 4 * 1024 * KiB + 1, 100_001, 64 * KiB, 30 * KiB, 10];
  const datas = lengths.map((n) => randomBytes(n));
  for (const [index, data] of datas.entries()) {
    const id = { inodeId: 9, index };
    await store.stage(id, { version: 1, chainVersion: 1, offset: 0, data });
    await store.commit(id, 1);
  }
  assert.equal(created.length, 4, `the chunks of 64 KiB and more went direct: ${created.join(', ')}`);
  // A write into the middle of one: the old bytes around it and the new ones, in one direct write.
  const patch = randomBytes(5000);
  await store.stage({ inodeId: 9, index: 2 }, { version: 2, chainVersion: 1, offset: 777, data: patch });
  await store.commit({ inodeId: 9, index: 2 }, 2);
  datas[2] = Buffer.concat([datas[2].subarray(0, 777), patch, datas[2].subarray(777 + patch.length)]);
  assert.equal(created.length, 5);
  const file = (index: number) => path.join(dir, 'chunks', fanoutDirName(9), chunkFileName({ inodeId: 9, index }, index === 2 ? 2 : 1, 'chunk'));
  // A cached write (the replica reads go to) is not direct.
  await store.stage({ inodeId: 9, index: 10 }, { version: 1, chainVersion: 1, offset: 0, data: datas[0], keepCached: true });
  assert.equal(created.length, 5);
  await store.close();
  store = await ChunkStore.open(disk, dir, { identity });
  for (const [index, data] of datas.entries()) {
    assert.deepEqual(Buffer.from((await store.readWhole({ inodeId: 9, index })).data), data, `chunk of ${data.length} bytes`);
    const header = statSync(file(index)).size - data.length;
    assert.ok(header > 0 && header % 4096 === 0, `${data.length} bytes: the file is its header and the data, not the padding (${statSync(file(index)).size})`);
  }
  // A file system without direct I/O: the write goes through the page cache, and so do the next.
  refuse = true;
  await store.stage({ inodeId: 9, index: 20 }, { version: 1, chainVersion: 1, offset: 0, data: datas[0] });
  await store.stage({ inodeId: 9, index: 21 }, { version: 1, chainVersion: 1, offset: 0, data: datas[0] });
  assert.equal(created.length, 6, 'asked once, then not again');
  await store.commit({ inodeId: 9, index: 21 }, 1);
  assert.deepEqual(Buffer.from((await store.read({ inodeId: 9, index: 21 }, 0, 1 << 30))), datas[0]);
  await store.close();
  // A device that refuses the direct write itself (an alignment larger than the buffer's): that
  // write goes through the page cache instead, and so do the next; nothing direct is left behind.
  const dir3 = mkdtempSync(path.join(outputDir, 'direct-refused-'));
  t.after(() => rmSync(dir3, { recursive: true, force: true }));
  let writesRefused = 0;
  const refusingDisk: Disk = Object.create(nodeDisk);
  Object.defineProperty(refusingDisk, 'directIo', {
    value: {
      ...direct,
      create: async (file: string) => {
        const f = await direct.create(file);
        return Object.assign(Object.create(f), { write: () => (writesRefused++, Promise.reject(Object.assign(new Error('EINVAL'), { code: 'EINVAL' }))) });
      },
    } satisfies DirectIo,
  });
  store = await ChunkStore.open(refusingDisk, dir3, { identity });
  for (const index of [0, 1]) {
    await store.stage({ inodeId: 9, index }, { version: 1, chainVersion: 1, offset: 0, data: datas[index] });
    await store.commit({ inodeId: 9, index }, 1);
  }
  assert.equal(writesRefused, 1, 'tried once');
  await store.close();
  store = await ChunkStore.open(refusingDisk, dir3, { identity });
  for (const index of [0, 1]) assert.deepEqual(Buffer.from((await store.readWhole({ inodeId: 9, index })).data), datas[index]);
  await store.close();
  // With directWrites off, nothing is direct.
  const dir2 = mkdtempSync(path.join(outputDir, 'direct-off-'));
  t.after(() => rmSync(dir2, { recursive: true, force: true }));
  refuse = false;
  store = await ChunkStore.open(disk, dir2, { identity, directWrites: false });
  await store.stage({ inodeId: 9, index: 0 }, { version: 1, chainVersion: 1, offset: 0, data: datas[0] });
  assert.equal(created.length, 6);
  await store.close();
});

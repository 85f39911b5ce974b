// Reads of cached data on the calling thread (src/io/cached-read.ts) and NodeFile.read over them:
// the same bytes whether the page cache holds all, part or none of a range, and the ordinary
// errors. The file lives under test/output (a real disk: tmpfs would ignore the eviction).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, openSync, closeSync, rmSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { cachedReadsAvailable, readCached } from '../../src/io/cached-read.ts';
import { fileReadCounts, nodeDisk } from '../../src/io/node-disk.ts';

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
  const dir = mkdtempSync(path.join(outputDir, 'cached-read-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'data');
  execFileSync('dd', [`of=${file}`, 'bs=64K', 'conv=fsync', 'status=none'], { input: data });
  return file;
}

test('the addon is built (npm install builds it; in CI its absence is a failure)', { skip: process.env.CI !== 'true' && !cachedReadsAvailable() && 'build/cached-read.node not built (no C compiler?)' }, () => {
  assert.ok(cachedReadsAvailable(), 'build/cached-read.node missing: run node scripts/build-io-addon.ts');
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
  const across = Buffer.alloc(64 * KiB);
  assert.equal(readCached(fd, across, 96 * KiB), 32 * KiB, 'a range half cached: the cached half');
  assert.deepEqual(across.subarray(0, 32 * KiB), data.subarray(96 * KiB, 128 * KiB));
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

  evict(file, 256 * KiB);
  const threads = fileReadCounts.ioThreads;
  // Into a caller's buffer, half of it cached.
  const into = Buffer.alloc(128 * KiB);
  const got = await f.read(64 * KiB, 224 * KiB, into);
  assert.deepEqual(Buffer.from(got), data.subarray(224 * KiB, 288 * KiB));
  assert.equal(got.buffer, into.buffer);
  evict(file);
  assert.deepEqual(Buffer.from(await f.read(8 * KiB, 300 * KiB)), data.subarray(300 * KiB, 308 * KiB));
  if (cachedReadsAvailable()) assert.equal(fileReadCounts.ioThreads - threads, 2, 'the half-cached and the evicted range went to the I/O threads');

  await assert.rejects(f.read(8 * KiB, 508 * KiB), (err: NodeJS.ErrnoException) => err.code === 'EOF', 'a read past the end is an error, cached or not');
  await assert.rejects(f.read(4 * KiB, 600 * KiB), (err: NodeJS.ErrnoException) => err.code === 'EOF');
});

// Tests of `cairn fs find --inode` (src/cli/fs-find.ts): the inode as an operator has it, and a walk
// that finds every link of it and goes on past a directory it cannot list.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { findInode, parseInodeId, type FindProgress } from '../../src/cli/fs-find.ts';
import type { DirEntry } from '../../src/meta/index.ts';

test('an inode id in decimal, 0x hex, or a chunk name from a worker; anything else is refused', () => {
  assert.equal(parseInodeId('42'), 42);
  assert.equal(parseInodeId('0x2a'), 42);
  assert.equal(parseInodeId('0x2A'), 42);
  assert.equal(parseInodeId('000000000000002a-00000003'), 42);
  for (const bad of ['', '0', '-3', '1.5', '2a', '0x', 'abc-xyz', '000000000000002a', '0x20000000000000', '12345678901234567', '42 ']) assert.throws(() => parseInodeId(bad), /--inode must be an inode number/, bad);
});

test('the walk finds every path of an inode (hard links too), skips what it cannot list and goes on', async () => {
  const tree: Record<string, DirEntry[]> = {
    '/': [
      { name: 'a', inodeId: 2, type: 'dir' },
      { name: 'locked', inodeId: 3, type: 'dir' },
      { name: 'z', inodeId: 4, type: 'dir' },
    ],
    '/a': [
      { name: 'f', inodeId: 10, type: 'file' },
      { name: 'g', inodeId: 11, type: 'file' },
    ],
    '/z': [
      { name: 'deep', inodeId: 5, type: 'dir' },
      { name: 'same', inodeId: 10, type: 'file' },
    ],
    '/z/deep': [{ name: 'again', inodeId: 10, type: 'file' }],
  };
  const list = async function* (dir: string): AsyncGenerator<DirEntry> {
    if (dir === '/locked') throw Object.assign(new Error(`permission denied: '${dir}'`), { code: 'EACCES' });
    yield* tree[dir] ?? [];
  };
  const found: string[] = [];
  const progress: FindProgress = { dirs: 0, entries: 0, skipped: [] };
  await findInode(list, '/', 10, (p) => found.push(p), progress);
  assert.deepEqual(found, ['/a/f', '/z/same', '/z/deep/again']);
  assert.deepEqual(progress.skipped.map((s) => s.path), ['/locked']);
  assert.equal(progress.dirs, 5);
  assert.equal(progress.entries, 8);

  const none: string[] = [];
  await findInode(list, '/a', 4, (p) => none.push(p), { dirs: 0, entries: 0, skipped: [] });
  assert.deepEqual(none, [], 'only under the given directory');
});

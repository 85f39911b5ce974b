// Tests of `cairn fs rm`'s guards (src/cli/fs-rm.ts): the root is never removed, and a recursive
// removal of more than rmConfirmEntriesMin entries is confirmed first, or refused without a terminal.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { countEntries, isRoot, rmConfirmation, rmConfirmEntriesMin, type Lister } from '../../src/cli/fs-rm.ts';
import type { DirEntry } from '../../src/meta/index.ts';

test('the root is recognised however it is spelled; other paths are not the root', () => {
  for (const p of ['/', '//', '/.', '/a/..', '/a/../', '///./']) assert.equal(isRoot(p), true, p);
  for (const p of ['/a', '/a/b/..', 'a/..', '', '.', '/..a']) assert.equal(isRoot(p), false, p);
});

/** A tree of `dirs` directories under /t, each holding `files` files, and the directories each listing opened. */
function fakeTree(dirs: number, files: number): { list: Lister; opened: string[] } {
  const opened: string[] = [];
  const entries = (d: string): DirEntry[] => {
    if (d === '/t') return Array.from({ length: dirs }, (_, i) => ({ name: `d${i}`, inodeId: i + 1, type: 'dir' }));
    return Array.from({ length: files }, (_, i) => ({ name: `f${i}`, inodeId: 1000 + i, type: 'file' }));
  };
  async function* list(d: string): AsyncGenerator<DirEntry> {
    opened.push(d);
    yield* entries(d);
  }
  return { list, opened };
}

test('countEntries counts every entry below a directory, in subdirectories too', async () => {
  assert.equal(await countEntries(fakeTree(3, 4).list, '/t', rmConfirmEntriesMin), 3 + 3 * 4);
  assert.equal(await countEntries(fakeTree(0, 0).list, '/t', rmConfirmEntriesMin), 0);
});

test('countEntries stops once it has found more than the limit, so a huge tree costs no more to check', async () => {
  const tree = fakeTree(100, 1000);
  assert.equal(await countEntries(tree.list, '/t', rmConfirmEntriesMin), rmConfirmEntriesMin + 1);
  assert.ok(tree.opened.length <= 2, `listed ${tree.opened.length} directories`);
  assert.equal(await countEntries(fakeTree(10, 99).list, '/t', rmConfirmEntriesMin), rmConfirmEntriesMin, 'exactly the limit is not more than it');
});

test('a large removal is asked about on a terminal, refused without one, and goes ahead with --yes or --force', () => {
  assert.equal(rmConfirmation(false, {}, false), 'go');
  assert.equal(rmConfirmation(false, {}, true), 'go');
  assert.equal(rmConfirmation(true, {}, true), 'ask');
  assert.equal(rmConfirmation(true, {}, false), 'refuse');
  assert.equal(rmConfirmation(true, { yes: true }, false), 'go');
  assert.equal(rmConfirmation(true, { force: true }, true), 'go');
});

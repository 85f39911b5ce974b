// Tests of DirSyncGroup: concurrent callers share directory syncs, and no caller is served by a
// sync that started before it asked.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Disk } from '../../src/io/index.ts';
import { DirSyncGroup } from '../../src/worker/dir-sync.ts';

/** A disk whose directory syncs complete only when the test says so. */
function manualDisk() {
  const started: { dir: string; done: PromiseWithResolvers<void> }[] = [];
  const disk = {
    syncDir(dir: string) {
      const done = Promise.withResolvers<void>();
      started.push({ dir, done });
      return done.promise;
    },
  } as unknown as Disk;
  return { disk, started };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

test('a caller arriving during a sync waits for the next one, which all later callers share', async () => {
  const { disk, started } = manualDisk();
  const group = new DirSyncGroup(disk);
  const resolved: string[] = [];
  const track = (name: string, p: Promise<void>) => p.then(() => resolved.push(name));
  track('a', group.sync('/d'));
  assert.equal(started.length, 1);
  track('b', group.sync('/d'));
  track('c', group.sync('/d'));
  assert.equal(started.length, 1, 'b and c wait: the running sync may have started before their renames');
  started[0].done.resolve();
  await tick();
  assert.deepEqual(resolved, ['a']);
  assert.equal(started.length, 2, 'the next sync starts as soon as the first ends');
  track('d', group.sync('/d'));
  started[1].done.resolve();
  await tick();
  assert.deepEqual(resolved, ['a', 'b', 'c']);
  assert.equal(started.length, 3, 'd arrived during the second sync: a third one serves it');
  started[2].done.resolve();
  await tick();
  assert.deepEqual(resolved, ['a', 'b', 'c', 'd']);
  assert.equal(group.syncs, 3);
  // Idle again: the next caller starts a sync at once.
  void group.sync('/d');
  assert.equal(started.length, 4);
});

test('directories sync independently, and a failed sync fails exactly its callers', async () => {
  const { disk, started } = manualDisk();
  const group = new DirSyncGroup(disk);
  const a = group.sync('/a');
  const b = group.sync('/b');
  assert.deepEqual(started.map((s) => s.dir), ['/a', '/b']);
  const a2 = group.sync('/a');
  started[0].done.reject(Object.assign(new Error('EIO'), { code: 'EIO' }));
  await assert.rejects(a, /EIO/);
  await tick();
  started[1].done.resolve();
  await b;
  assert.equal(started[2].dir, '/a', 'the queued caller gets a sync of its own');
  started[2].done.resolve();
  await a2;
});

// The mount answers the kernel's getattr of a directory right after a create or unlink in it from
// that change's own answer, once, within a short time, and never after another change that may
// have altered the directory. The masters here are a MetaState driven in memory.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { MasterClient } from '../../src/client/index.ts';
import { CairnFs } from '../../src/fuse/cairn-fs.ts';
import { dataStub, FakeMasters } from '../meta-fs.ts';

function mountOver(changedDirAttrMs?: number): { fs: CairnFs; masters: FakeMasters } {
  const masters = new FakeMasters();
  const fs = new CairnFs({ meta: masters as unknown as MasterClient, data: dataStub(), owner: { uid: 0, gid: 0, groups: [] }, changedDirAttrMs });
  return { fs, masters };
}

test('a getattr of a directory right after a create in it is answered from the create, once', async () => {
  const { fs, masters } = mountOver();
  await fs.mkdir('/d', 0o755);
  const before = await fs.getattr('/d');
  const fd = await fs.create('/d/f', 0o644);
  masters.queries.length = 0;
  const after = await fs.getattr('/d');
  assert.deepEqual(masters.queries, [], 'the create answered it');
  assert.ok(after.mtime > before.mtime, 'the directory as the create left it');
  assert.deepEqual(after, await fs.getattr('/d'), 'the masters say the same');
  assert.deepEqual(masters.queries, ['stat /d'], 'only once');
  await fs.release(fd);
  // Another directory's getattr is not answered from it.
  await fs.create('/d/g', 0o644);
  await fs.getattr('/');
  assert.deepEqual(masters.queries, ['stat /d', 'stat /'], 'the root asked the masters');
});

test('an unlink answers the next getattr of its directory; mkdir, rename, chmod and rmdir drop what was kept', async () => {
  const { fs, masters } = mountOver();
  await fs.mkdir('/d', 0o755);
  await fs.release(await fs.create('/d/f', 0o644));
  await fs.release(await fs.create('/d/g', 0o644));
  await fs.unlink('/d/f');
  masters.queries.length = 0;
  assert.equal((await fs.getattr('/d')).mtime, masters.fs.stat('/d').mtimeMs);
  assert.deepEqual(masters.queries, []);
  const changes: [string, () => Promise<void>][] = [
    ['mkdir', () => fs.mkdir('/e', 0o755)],
    ['rename', () => fs.rename('/d/x1', '/d/y1')],
    ['chmod', () => fs.chmod('/d', 0o700)],
    ['rmdir', () => fs.rmdir('/e')],
  ];
  for (const [i, [name, change]] of changes.entries()) {
    await fs.release(await fs.create(`/d/x${i}`, 0o644));
    await change();
    masters.queries.length = 0;
    const seen = await fs.getattr('/d');
    assert.deepEqual(masters.queries, ['stat /d'], `asked the masters after ${name}`);
    assert.equal(seen.mode & 0o777, masters.fs.stat('/d').mode & 0o777);
  }
});

test('the answer of a change is not used once older than changedDirAttrMs, nor at all with 0', async () => {
  for (const ms of [0, 5]) {
    const { fs, masters } = mountOver(ms);
    await fs.mkdir('/d', 0o755);
    await fs.release(await fs.create('/d/f', 0o644));
    if (ms > 0) await new Promise((r) => setTimeout(r, ms + 20));
    masters.queries.length = 0;
    await fs.getattr('/d');
    assert.deepEqual(masters.queries, ['stat /d'], `changedDirAttrMs ${ms}`);
  }
});

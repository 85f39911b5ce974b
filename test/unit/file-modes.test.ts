// What cairn creates on disk is its owner's alone: files 0600, directories 0700 (through the real
// Disk, the directory lock, and a master's whole data directory), whatever the umask lets through.

import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { nodeDisk } from '../../src/io/node-disk.ts';
import { acquireDirLock } from '../../src/master/dir-lock.ts';

/** Every path under `root` whose mode lets the group or others in. */
async function openToOthers(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const name of await readdir(root, { recursive: true })) {
    const p = path.join(root, name);
    if (((await stat(p)).mode & 0o077) !== 0) out.push(`${name} ${((await stat(p)).mode & 0o777).toString(8)}`);
  }
  return out;
}

test('files and directories made through the Disk and the directory lock are private, even under umask 0', async (t) => {
  const root = await mkdtemp(path.join(tmpdir(), 'cairn-modes-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  const old = process.umask(0);
  t.after(() => process.umask(old));
  await nodeDisk.mkdirs(path.join(root, 'a', 'b'));
  const f = await nodeDisk.open(path.join(root, 'a', 'b', 'file'), 'create');
  await f.write(Buffer.from('x'), 0);
  await f.close();
  nodeDisk.openSync(path.join(root, 'a', 'sync-file'), 'create').closeSync();
  const lock = await acquireDirLock(path.join(root, 'master'));
  t.after(() => lock.release());
  assert.deepEqual(await openToOthers(root), []);
});

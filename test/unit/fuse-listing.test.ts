// The mount lists a directory, every entry with its attributes, once the kernel has looked up
// several names in it between changes (ls -l, find, rsync), and answers further lookups of names it
// holds from that listing for at most listingMs. Names it lacks, anything after a change through
// the mount, and anything older are asked of the masters. The masters here are a MetaState in memory.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { MasterClient } from '../../src/client/index.ts';
import { CairnFs } from '../../src/fuse/cairn-fs.ts';
import { MetaError } from '../../src/meta/errors.ts';
import type { MetaQuery } from '../../src/meta/index.ts';
import { dataStub, FakeMasters } from '../meta-fs.ts';

const files = 40;

/** A mount over masters holding /d with `files` files f0... (made by another client). */
function mountOver(listingMs: number): { fs: CairnFs; masters: FakeMasters } {
  const masters = new FakeMasters();
  masters.fs.run({ op: 'mkdir', path: '/d', mode: 0o755, uid: 0, gid: 0, parents: false });
  for (let i = 0; i < files; i++) masters.fs.run({ op: 'create', path: `/d/f${i}`, mode: 0o644, uid: 7, gid: 7, exclusive: true });
  const fs = new CairnFs({ meta: masters as unknown as MasterClient, data: dataStub(), owner: { uid: 0, gid: 0, groups: [] }, listingMs });
  return { fs, masters };
}

const settle = (): Promise<void> => new Promise((r) => setImmediate(r));
const stats = (m: FakeMasters): number => m.queries.filter((q) => q.startsWith('stat ')).length;

test('after a run of lookups in a directory it is listed, and lookups of names it holds ask the masters no more', async () => {
  const { fs, masters } = mountOver(10_000);
  for (let i = 0; i < 8; i++) await fs.getattr(`/d/f${i}`);
  await settle();
  assert.deepEqual(masters.queries.filter((q) => q.startsWith('readdir')), ['readdir /d'], 'listed once, after 8 lookups');
  const before = masters.queries.length;
  for (let i = 0; i < files; i++) {
    const seen = await fs.getattr(`/d/f${i}`);
    const truth = masters.fs.stat(`/d/f${i}`);
    assert.deepEqual([seen.ino, seen.uid, seen.mode & 0o777, seen.size, seen.mtime], [truth.inodeId, 7, 0o644, 0, truth.mtimeMs]);
  }
  assert.equal(masters.queries.length, before, 'every lookup answered from the listing');
  assert.deepEqual(fs.lookupStats, { listings: 1, listed: files });
  // A name made elsewhere after the listing is asked for, and found.
  masters.fs.run({ op: 'create', path: '/d/new', mode: 0o600, uid: 0, gid: 0, exclusive: true });
  assert.equal((await fs.getattr('/d/new')).mode & 0o777, 0o600);
  assert.equal(stats(masters), 9);
  await assert.rejects(fs.getattr('/d/missing'), (e: unknown) => (e as { code?: string }).code === 'ENOENT');
});

test('a change through the mount, or the listing\'s age, sends lookups to the masters again; with 0 nothing is listed', async () => {
  const { fs, masters } = mountOver(10_000);
  for (let i = 0; i < 8; i++) await fs.getattr(`/d/f${i}`);
  await settle();
  await fs.chmod('/d/f3', 0o600);
  const n = stats(masters);
  assert.equal((await fs.getattr('/d/f3')).mode & 0o777, 0o600, 'the change is seen');
  assert.equal(stats(masters), n + 1);

  const aged = mountOver(20);
  for (let i = 0; i < 8; i++) await aged.fs.getattr(`/d/f${i}`);
  await settle();
  const m = stats(aged.masters);
  await aged.fs.getattr('/d/f20');
  assert.equal(stats(aged.masters), m, 'fresh: from the listing');
  await new Promise((r) => setTimeout(r, 30));
  await aged.fs.getattr('/d/f21');
  assert.equal(stats(aged.masters), m + 1, 'older than listingMs: asked');

  const never = mountOver(0);
  for (let i = 0; i < files; i++) await never.fs.getattr(`/d/f${i}`);
  await settle();
  assert.deepEqual(never.masters.queries.filter((q) => q.startsWith('readdir')), []);
});

test('a listing read across a change is not used, and lookups between changes (a directory being emptied) never list it', async () => {
  const { fs, masters } = mountOver(10_000);
  for (let i = 0; i < 7; i++) await fs.getattr(`/d/f${i}`);
  const listed = fs.getattr('/d/f7'); // the 8th: the listing starts, beside this lookup
  const unlinked = fs.unlink('/d/f9'); // a change while it is read
  await Promise.all([listed, unlinked]);
  await settle();
  await assert.rejects(fs.getattr('/d/f9'), (e: unknown) => (e as { code?: string }).code === 'ENOENT');
  // rm of every file: each lookup, then an unlink.
  masters.queries.length = 0;
  for (let i = 10; i < files; i++) {
    await fs.getattr(`/d/f${i}`);
    await fs.unlink(`/d/f${i}`);
  }
  await settle();
  assert.deepEqual(masters.queries.filter((q) => q.startsWith('readdir')), []);
});

test('a directory the listing cannot be read of is asked of the masters, and not tried again within the listing\'s life', async () => {
  const { fs, masters } = mountOver(10_000);
  const query = masters.query.bind(masters);
  masters.query = <T>(method: string, body: MetaQuery & { path?: string }): Promise<T> =>
    body.op === 'readdir' ? Promise.reject(new MetaError('EACCES', 'no read permission')) : query<T>(method, body);
  for (let i = 0; i < files; i++) assert.equal((await fs.getattr(`/d/f${i}`)).uid, 7);
  await settle();
  assert.deepEqual(fs.lookupStats, { listings: 1, listed: 0 });
});

// A mount's held directories (src/fuse/dir-holds.ts) over masters driven in memory: after a few
// creates in a directory the mount holds it and answers lookups, creates and unlinks there without
// asking, sending them in batches; others are refused until it gives the directory back; fsync
// waits for a batch, and a batch the masters refuse fails the file's fsync.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { MasterClient } from '../../src/client/index.ts';
import { CairnFs, type Stat } from '../../src/fuse/cairn-fs.ts';
import { split, type NamesMirror } from '../../src/fuse/dir-holds.ts';
import { dirLeaseRenewMs } from '../../src/master/dir-lease-renewals.ts';
import { ResultErrorCode, rootCaller } from '../../src/meta/index.ts';
import { dataStub, FakeMasters } from '../meta-fs.ts';

function mountOver(holdIdleMs = 60_000, data = dataStub(), holdBatchLingerMs?: number): { fs: CairnFs; masters: FakeMasters; logged: string[] } {
  const masters = new FakeMasters();
  const logged: string[] = [];
  const linger = holdBatchLingerMs === undefined ? {} : { holdBatchLingerMs };
  const fs = new CairnFs({ meta: masters as unknown as MasterClient, data, owner: { uid: 0, gid: 0, groups: [] }, holdAfterChanges: 4, holdIdleMs, listingMs: 1000, ...linger, log: (_l, m) => logged.push(m) });
  return { fs, masters, logged };
}

/** Until the mount holds `dir` (it takes it in the background). */
async function held(fs: CairnFs, dir: string): Promise<void> {
  for (let i = 0; i < 200 && fs.holds.dirAttr(dir) === undefined; i++) await sleep(5);
  assert.ok(fs.holds.dirAttr(dir) !== undefined, `${dir} is held`);
}

/** Makes `dir` and creates files in it until the mount holds it (changesToHold 4, in mountOver). */
async function holdDir(fs: CairnFs, dir: string): Promise<void> {
  await fs.mkdir(dir, 0o755);
  for (let i = 0; i < 4; i++) await fs.release(await fs.create(`${dir}/s${i}`, 0o644));
  await held(fs, dir);
}

test('after a few creates the mount holds the directory: lookups, creates and unlinks there ask nothing, and land in batches', async () => {
  const { fs, masters } = mountOver();
  await fs.mkdir('/d', 0o755);
  await fs.release(await fs.create('/d/before', 0o644));
  for (let i = 0; i < 4; i++) await fs.release(await fs.create(`/d/s${i}`, 0o644));
  await held(fs, '/d');
  masters.queries.length = 0;
  masters.mutations.length = 0;
  await assert.rejects(fs.getattr('/d/f0'), { code: 'ENOENT' });
  const fds: number[] = [];
  for (let i = 0; i < 50; i++) fds.push(await fs.create(`/d/f${i}`, 0o640));
  const st = await fs.getattr('/d/f7');
  assert.equal(st.mode & 0o777, 0o640);
  await assert.rejects(fs.create('/d/f7', 0o644, undefined, true), { code: 'EEXIST' });
  for (const fd of fds) await fs.release(fd);
  await fs.unlink('/d/s0');
  await assert.rejects(fs.unlink('/d/nothing'), { code: 'ENOENT' });
  assert.equal((await fs.getattr('/d/before')).size, 0);
  assert.equal((await fs.getattr('/d')).mode & 0o777, 0o755, "the directory's own attributes too");
  assert.deepEqual(masters.queries, [], 'nothing asked');
  await fs.fsyncdir('/d');
  assert.ok(masters.mutations.every((m) => m.startsWith('dirBatch')), masters.mutations.join());
  // The masters hold what the mount answered, with the inode ids it gave.
  const f7 = masters.fs.state.stat('/d/f7', { ...rootCaller, holder: fs.holds.holder });
  assert.ok(f7.ok && f7.value.inodeId === st.ino);
  // Another client is refused until the mount gives the directory back, on its next renewal.
  const other = masters.fs.state.readdir('/d', { limit: 1000 }, rootCaller);
  assert.ok(!other.ok && other.code === ResultErrorCode.DirLeased);
  masters.renewals.recall(other.leasedDirId!, performance.now());
  for (let i = 0; i < 100 && masters.fs.state.dirLeases().size > 0; i++) await sleep(dirLeaseRenewMs / 2);
  assert.equal(masters.fs.state.dirLeases().size, 0, 'given back');
  assert.equal(masters.fs.names('/d').length, 54);
  // Then lookups ask the masters again.
  masters.queries.length = 0;
  await fs.getattr('/d/f8');
  assert.deepEqual(masters.queries, ['stat /d/f8']);
});

test('fsync of a file created in a held directory waits for its batch; one the masters refuse fails it', async () => {
  const { fs, masters, logged } = mountOver();
  await holdDir(fs, '/d');
  const fd = await fs.create('/d/kept', 0o644);
  await fs.fsync(fd);
  await fs.release(fd);
  // The lease ends behind the mount's back (as if it was cut off for a lease): what it answers
  // next is not applied, and says so.
  const dirId = masters.fs.stat('/d').inodeId;
  masters.fs.ok({ op: 'expireDirLeases', leases: [{ dirInodeId: dirId, holder: fs.holds.holder }] } as never);
  const lost = await fs.create('/d/lost', 0o644).catch(() => undefined);
  if (lost !== undefined) {
    await assert.rejects(fs.fsync(lost), (err: { code?: string; details?: { errno?: string } }) => err.details?.errno === 'EIO');
    assert.ok(logged.some((m) => m.includes('not applied')), logged.join('\n'));
  }
  await fs.releaseAll();
  assert.equal(masters.fs.state.dirLeases().size, 0);
  // Nothing of the lost create is there; the fsynced one is.
  masters.fs.state.stat('/d/kept', rootCaller).ok || assert.fail('kept');
  assert.equal(masters.fs.state.stat('/d/lost', rootCaller).ok, false);
});

test('renames, links and directories made in a held directory keep its listing true', async () => {
  const { fs, masters } = mountOver();
  await holdDir(fs, '/d');
  await fs.release(await fs.create('/d/a', 0o644));
  await fs.rename('/d/a', '/d/b');
  await assert.rejects(fs.getattr('/d/a'), { code: 'ENOENT' });
  assert.equal((await fs.getattr('/d/b')).nlink, 1);
  await fs.link('/d/b', '/d/c');
  assert.equal((await fs.getattr('/d/b')).nlink, 2);
  await fs.mkdir('/d/sub', 0o700);
  assert.equal((await fs.getattr('/d/sub')).mode & 0o777, 0o700);
  await fs.chmod('/d/c', 0o600);
  assert.equal((await fs.getattr('/d/b')).mode & 0o777, 0o600, 'another link of the changed file');
  await fs.unlink('/d/c');
  assert.equal((await fs.getattr('/d/b')).nlink, 1, 'the link count after an unlink of the other link');
  await fs.rmdir('/d/sub');
  await assert.rejects(fs.getattr('/d/sub'), { code: 'ENOENT' });
  await fs.releaseAll();
  assert.deepEqual(masters.fs.names('/d'), ['b', 's0', 's1', 's2', 's3']);
});

test("a rename with RENAME_NOREPLACE fails with EEXIST onto any name, one the held directory has not sent yet too, and changes nothing", async () => {
  const { fs, masters } = mountOver();
  await holdDir(fs, '/d');
  await fs.mkdir('/e', 0o755);
  for (const p of ['/e/x', '/e/y']) await fs.release(await fs.create(p, 0o644));
  await assert.rejects(fs.rename('/e/x', '/e/y', undefined, true), { code: 'EEXIST' });
  // Created here and answered at once: the rename sends it first, and the masters refuse the rename.
  await fs.release(await fs.create('/d/new', 0o600));
  await assert.rejects(fs.rename('/e/x', '/d/new', undefined, true), { code: 'EEXIST' });
  assert.equal((await fs.getattr('/d/new')).mode & 0o777, 0o600, 'the name it would have replaced');
  await fs.rename('/e/x', '/d/free', undefined, true);
  await assert.rejects(fs.getattr('/e/x'), { code: 'ENOENT' });
  await fs.rename('/e/y', '/d/new');
  await fs.releaseAll();
  assert.deepEqual(masters.fs.names('/d'), ['free', 'new', 's0', 's1', 's2', 's3']);
  assert.deepEqual(masters.fs.names('/e'), []);
});

/**
 * A mirror of the held directories' names as the mount's addon keeps them (NamesMirror), with the
 * attributes it would answer a name's lookup with (CairnFs.mirroredStat, as the mount gives them).
 */
function recordingMirror(fs: CairnFs): { mirror: NamesMirror; absent: (path: string) => boolean; known: (path: string) => Stat | undefined } {
  const dirs = new Map<string, Map<string, Stat | undefined>>();
  let untilMs = 0;
  const mirror: NamesMirror = {
    hold: (dir, entries) => dirs.set(dir, new Map([...entries].map(([name, attr]) => [name, fs.mirroredStat(attr)]))),
    change: (dir, name, present, attr) => (present ? dirs.get(dir)?.set(name, fs.mirroredStat(attr)) : dirs.get(dir)?.delete(name)),
    drop: (dir) => dirs.delete(dir),
    until: (ms) => (untilMs = performance.now() + ms),
  };
  // As cairn_absent and cairn_present in scripts/build-fuse-addon.ts answer.
  const absent = (path: string): boolean => {
    const [dir, name] = split(path);
    const names = dirs.get(dir);
    return performance.now() < untilMs && names !== undefined && !names.has(name);
  };
  const known = (path: string): Stat | undefined => {
    const [dir, name] = split(path);
    return performance.now() < untilMs ? dirs.get(dir)?.get(name) : undefined;
  };
  return { mirror, absent, known };
}

test("the names mirrored for the addon are the held directory's: absent there exactly when the mount would answer ENOENT itself", async () => {
  const { fs, masters } = mountOver();
  const { mirror, absent, known } = recordingMirror(fs);
  fs.holds.mirror = mirror;
  const probe = ['a', 'b', 'c', 'sub', 'ln', 'gone', 's0', 's1', 'f0', 'f1', 'never'].map((n) => `/d/${n}`);
  const agree = (when: string): void => {
    for (const path of probe) {
      assert.equal(absent(path), fs.holds.lookup(path) === 'absent', `${when}: ${path}`);
      // What the mirror would answer a lookup with is what the mount answers.
      const st = known(path);
      if (st !== undefined) assert.deepEqual(st, fs.getattrLocal(path), `${when}: ${path}'s attributes`);
    }
  };
  await holdDir(fs, '/d');
  assert.ok(absent('/d/never'), 'held: a name it lacks is answered by the mirror');
  agree('held');
  const fds = [await fs.create('/d/f0', 0o644), await fs.create('/d/f1', 0o644)];
  agree('created');
  await fs.unlink('/d/f0');
  agree('unlinked');
  await fs.release(await fs.create('/d/a', 0o644));
  await fs.rename('/d/a', '/d/b');
  agree('renamed within');
  await fs.mkdir('/e', 0o755);
  await fs.release(await fs.create('/e/c', 0o644));
  await fs.rename('/e/c', '/d/c');
  agree('renamed in');
  await fs.rename('/d/c', '/e/c');
  agree('renamed out');
  await fs.link('/d/b', '/d/ln');
  await fs.symlink('b', '/d/gone');
  await fs.mkdir('/d/sub', 0o700);
  agree('linked, symlinked, made a directory');
  await fs.unlink('/d/ln');
  await fs.unlink('/d/gone');
  await fs.rmdir('/d/sub');
  agree('removed them');
  assert.equal(known('/d/f1'), undefined, 'an open file is not answered from the mirror');
  for (const fd of fds) await fs.release(fd);
  await fs.fsyncdir('/d');
  agree('released');
  assert.equal(known('/d/f1')?.size, 0, 'a closed file is answered from the mirror');
  // Given back: nothing is answered from the mirror any more.
  masters.renewals.recall([...masters.fs.state.dirLeases().keys()][0], performance.now());
  for (let i = 0; i < 100 && masters.fs.state.dirLeases().size > 0; i++) await sleep(dirLeaseRenewMs / 2);
  assert.equal(masters.fs.state.dirLeases().size, 0, 'given back');
  assert.ok(!absent('/d/never'), 'a directory given back is dropped');
  agree('given back');
  await fs.releaseAll();
});

test('fsyncdir fails with EIO, once, after the masters refused changes the mount had answered in the directory', async () => {
  const { fs, masters } = mountOver();
  await holdDir(fs, '/d');
  await fs.fsyncdir('/d');
  const dirId = masters.fs.stat('/d').inodeId;
  masters.fs.ok({ op: 'expireDirLeases', leases: [{ dirInodeId: dirId, holder: fs.holds.holder }] } as never);
  await fs.unlink('/d/s0'); // answered here, refused whole when its batch arrives
  await assert.rejects(fs.fsyncdir('/d'), (err: { details?: { errno?: string } }) => err.details?.errno === 'EIO');
  await fs.fsyncdir('/d');
  assert.ok(masters.fs.state.stat('/d/s0', rootCaller).ok, 'the refused unlink was not applied');
  await fs.releaseAll();
});

test('a batch waiting for more changes goes at once when it fills or the directory is given back', async () => {
  const { fs, masters } = mountOver(60_000, dataStub(), 600_000);
  await holdDir(fs, '/d');
  const asHolder = { ...rootCaller, holder: fs.holds.holder };
  // 256 changes fill a batch: it does not wait out its linger.
  for (let i = 0; i < 256; i++) await fs.release(await fs.create(`/d/f${i}`, 0o644));
  for (let i = 0; i < 100 && !masters.fs.state.stat('/d/f255', asHolder).ok; i++) await sleep(10);
  assert.ok(masters.fs.state.stat('/d/f255', asHolder).ok, 'a full batch was sent');
  // Others wait for the directory: what the mount answered there goes now, and then the directory.
  await fs.release(await fs.create('/d/last', 0o644));
  masters.renewals.recall(masters.fs.stat('/d').inodeId, performance.now());
  for (let i = 0; i < 100 && masters.fs.state.dirLeases().size > 0; i++) await sleep(dirLeaseRenewMs / 2);
  assert.equal(masters.fs.state.dirLeases().size, 0, 'given back');
  assert.ok(masters.fs.names('/d').includes('last'));
  await fs.releaseAll();
});

test('a file created in a held directory and still open gets its write session when the directory is given back', async () => {
  const { fs, masters } = mountOver();
  await holdDir(fs, '/d');
  const fd = await fs.create('/d/open', 0o644);
  masters.mutations.length = 0;
  masters.renewals.recall(masters.fs.stat('/d').inodeId, performance.now());
  for (let i = 0; i < 100 && masters.fs.state.dirLeases().size > 0; i++) await sleep(dirLeaseRenewMs / 2);
  assert.equal(masters.fs.state.dirLeases().size, 0, 'given back');
  assert.ok(masters.mutations.includes('openSession /d/open'), masters.mutations.join());
  // Another client may now unlink it; the open file lives on through its session (an orphan).
  masters.fs.ok({ op: 'unlink', path: '/d/open' });
  const inodeId = (await fs.fgetattr(fd, '/d/open')).ino;
  assert.equal(masters.fs.state.inodeStatus(inodeId), 'live');
  await fs.releaseAll();
});

test('clean files the addon released are released when the mount asks for them: by the next create, and before a give-back (no write session for a closed file)', async () => {
  const { fs, masters } = mountOver();
  await holdDir(fs, '/d');
  const releasedInC: number[] = [];
  fs.releasedElsewhere = () => releasedInC.splice(0);
  const first = await fs.create('/d/a', 0o644);
  assert.ok(fs.isClean(first));
  releasedInC.push(first); // as the addon's cairn_release_clean
  const second = await fs.create('/d/b', 0o644);
  await assert.rejects(fs.flush(first), { code: 'EINVAL' }, 'released by the next create');
  releasedInC.push(second);
  masters.mutations.length = 0;
  masters.renewals.recall(masters.fs.stat('/d').inodeId, performance.now());
  for (let i = 0; i < 100 && masters.fs.state.dirLeases().size > 0; i++) await sleep(dirLeaseRenewMs / 2);
  assert.equal(masters.fs.state.dirLeases().size, 0, 'given back');
  assert.ok(!masters.mutations.some((m) => m.startsWith('openSession')), `released before the give-back: ${masters.mutations.join()}`);
  await assert.rejects(fs.flush(second), { code: 'EINVAL' });
  assert.deepEqual(masters.fs.names('/d').filter((n) => n.length === 1), ['a', 'b']);
  await fs.releaseAll();
});

test("a file opened for writing while its create waits to be sent gets its session with the create: one journal round, not two", async () => {
  const { fs, masters } = mountOver();
  await holdDir(fs, '/d');
  // Once its create has been sent, the session takes a round of its own. An unlink while the file
  // is open opens it for writing first (its session keeps the orphan), as a first write does.
  const sent = await fs.create('/d/sent', 0o644);
  await fs.fsyncdir('/d');
  masters.mutations.length = 0;
  await fs.unlink('/d/sent');
  assert.deepEqual(masters.mutations, ['openSession /d/sent', 'unlink /d/sent']);
  await fs.release(sent);
  // While it waits to be sent, the create opens it.
  await fs.fsyncdir('/d');
  masters.mutations.length = 0;
  const before = new Set([...masters.fs.state.openSessions()].map((s) => s.sessionId));
  const fd = await fs.create('/d/new', 0o644);
  await fs.unlink('/d/new');
  assert.deepEqual(masters.mutations, ['dirBatch 1', 'unlink /d/new'], 'no openSession of its own');
  const sessions = [...masters.fs.state.openSessions()].filter((s) => !before.has(s.sessionId));
  assert.equal(sessions.length, 1, 'the create opened the session');
  assert.equal(masters.fs.state.inodeStatus(sessions[0].inodeId), 'live', 'an orphan its session keeps');
  await fs.release(fd);
  await fs.releaseAll();
  assert.equal(masters.fs.state.inodeStatus(sessions[0].inodeId), 'pendingGc', 'its release ended the session, and the orphan went');
});

test('times set on a file being written in a held directory go with its commit, not before it: one flush and commit, not two', async () => {
  // Workers that take every chunk write.
  const { fs, masters } = mountOver(60_000, dataStub({ writeChunk: async () => true }));
  await holdDir(fs, '/d');
  const when = Date.UTC(2020, 0, 2, 3, 4, 5);
  const statOf = (path: string): { mtimeMs: number; atimeMs: number; sizeBytes: number } => {
    const r = masters.fs.state.stat(path, { ...rootCaller, holder: fs.holds.holder });
    assert.ok(r.ok, `stat ${path}`);
    return r.value;
  };
  const mtimeOf = (path: string): number => statOf(path).mtimeMs;
  // As tar: write, set the times on the open file, close.
  const fd = await fs.create('/d/t', 0o644);
  await fs.write(fd, Buffer.from('hello'), 5, 0);
  masters.mutations.length = 0;
  await fs.utimens('/d/t', 'omit', when);
  assert.deepEqual(masters.mutations, [], 'nothing sent yet');
  assert.equal((await fs.getattr('/d/t')).mtime, when, 'this mount shows them at once');
  await fs.flush(fd);
  assert.deepEqual(masters.mutations, ['commitLength ', 'setattr /d/t'], 'the times right after the commit');
  assert.equal(mtimeOf('/d/t'), when);
  assert.equal(statOf('/d/t').sizeBytes, 5);
  await fs.release(fd);
  // A write after them moves mtime to the commit's now, as a write does.
  const fd2 = await fs.create('/d/u', 0o644);
  await fs.write(fd2, Buffer.from('a'), 1, 0);
  await fs.utimens('/d/u', when, when);
  await fs.write(fd2, Buffer.from('b'), 1, 1);
  assert.notEqual((await fs.getattr('/d/u')).mtime, when);
  await fs.flush(fd2);
  assert.notEqual(mtimeOf('/d/u'), when);
  assert.equal(statOf('/d/u').atimeMs, when, 'atime stays as set');
  await fs.release(fd2);
  // Unlinked before its close: the times go nowhere, and the close succeeds.
  const fd3 = await fs.create('/d/v', 0o644);
  await fs.write(fd3, Buffer.from('c'), 1, 0);
  await fs.utimens('/d/v', 'omit', when);
  await fs.unlink('/d/v');
  masters.mutations.length = 0;
  await fs.flush(fd3);
  assert.deepEqual(masters.mutations, ['commitLength ']);
  await fs.release(fd3);
  // 'now' (touch), or a file not being written, is set at once as before.
  const fd4 = await fs.create('/d/w', 0o644);
  await fs.write(fd4, Buffer.from('d'), 1, 0);
  masters.mutations.length = 0;
  await fs.utimens('/d/w', 'now', 'now');
  assert.deepEqual(masters.mutations, ['commitLength ', 'setattr /d/w']);
  await fs.release(fd4);
  await fs.releaseAll();
});

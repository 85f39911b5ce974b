// Tests of the namespace operations of MetaState: each operation's success path and error codes,
// hard links, symlinks, setattr, sessions with orphans and the pending GC list, paged readdir,
// and the cluster tables.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MetaState, readdirLimitMax, rootCaller, rootInodeId, validateCommand, validateQuery } from '../../src/meta/index.ts';
import type { InodeAttr } from '../../src/meta/index.ts';
import { MetaFs, type Body } from '../meta-fs.ts';

/** A state with a clock and a client that numbers its commands. */
class Fs extends MetaFs {
  constructor(state?: MetaState) {
    super({ clientId: 'test', stepMs: 10, state });
  }

  mkdir(path: string, parents = false): InodeAttr {
    return this.ok({ op: 'mkdir', path, mode: 0o755, uid: 0, gid: 0, parents });
  }

  create(path: string, exclusive = true): InodeAttr {
    return this.ok({ op: 'create', path, mode: 0o644, uid: 1000, gid: 100, exclusive }).inode;
  }
}

test('a new state holds only the root', () => {
  const fs = new Fs();
  const root = fs.stat('/');
  assert.equal(root.inodeId, rootInodeId);
  assert.equal(root.type, 'dir');
  assert.equal(root.nlink, 2);
  assert.equal(root.parentId, rootInodeId);
  assert.deepEqual(fs.names('/'), []);
  assert.deepEqual(fs.state.statfs(), {
    inodes: 1, files: 0, dirs: 1, symlinks: 0, logicalBytes: 0, sessions: 0, orphans: 0, pendingGc: 0, clients: 0, indexApplied: 0,
  });
});

test('mkdir creates a directory, links it into its parent and stamps times', () => {
  const fs = new Fs();
  const a = fs.mkdir('/a');
  assert.equal(a.type, 'dir');
  assert.equal(a.nlink, 2);
  assert.equal(a.parentId, rootInodeId);
  assert.equal(a.mode, 0o755);
  assert.equal(a.ctimeMs, fs.nowMs);
  const root = fs.stat('/');
  assert.equal(root.nlink, 3);
  assert.equal(root.mtimeMs, fs.nowMs);
  const b = fs.mkdir('/a/b');
  assert.equal(b.parentId, a.inodeId);
  assert.equal(b.inodeId, a.inodeId + 1, 'inode ids come from a counter');
  assert.equal(fs.stat('/a').nlink, 3);
  fs.checkInvariants();
});

test('mkdir errors: EEXIST, ENOENT without parents, ENOTDIR through a file', () => {
  const fs = new Fs();
  fs.mkdir('/a');
  fs.create('/f');
  fs.fails({ op: 'mkdir', path: '/a', mode: 0o755, uid: 0, gid: 0, parents: false }, 'EEXIST');
  fs.fails({ op: 'mkdir', path: '/f', mode: 0o755, uid: 0, gid: 0, parents: false }, 'EEXIST');
  fs.fails({ op: 'mkdir', path: '/', mode: 0o755, uid: 0, gid: 0, parents: false }, 'EEXIST');
  fs.fails({ op: 'mkdir', path: '/x/y', mode: 0o755, uid: 0, gid: 0, parents: false }, 'ENOENT');
  fs.fails({ op: 'mkdir', path: '/f/y', mode: 0o755, uid: 0, gid: 0, parents: false }, 'ENOTDIR');
  fs.checkInvariants();
});

test('mkdir -p creates every missing ancestor, accepts an existing directory, and refuses files on the way', () => {
  const fs = new Fs();
  const c = fs.mkdir('/a/b/c', true);
  assert.equal(fs.stat('/a/b').inodeId, c.parentId);
  assert.equal(fs.stat('/a').nlink, 3);
  assert.equal(fs.stat('/a/b').nlink, 3);
  assert.equal(fs.stat('/a/b/c').nlink, 2);
  assert.equal(fs.mkdir('/a/b/c', true).inodeId, c.inodeId, 'mkdir -p of an existing directory succeeds');
  assert.equal(fs.mkdir('/', true).inodeId, rootInodeId);
  fs.mkdir('/a/b/d/e', true);
  assert.deepEqual(fs.names('/a/b'), ['c', 'd']);
  fs.create('/a/file');
  const before = fs.state.statfs().inodes;
  fs.fails({ op: 'mkdir', path: '/a/file/x/y', mode: 0o755, uid: 0, gid: 0, parents: true }, 'ENOTDIR');
  fs.fails({ op: 'mkdir', path: '/a/file', mode: 0o755, uid: 0, gid: 0, parents: true }, 'EEXIST');
  assert.equal(fs.state.statfs().inodes, before, 'a failed mkdir -p creates nothing');
  fs.checkInvariants();
});

test('create makes a file with the default layout or the given one; non-exclusive create opens an existing file', () => {
  const fs = new Fs();
  fs.mkdir('/d');
  const f = fs.create('/d/f');
  assert.equal(f.type, 'file');
  assert.equal(f.nlink, 1);
  assert.equal(f.sizeBytes, 0);
  assert.equal(f.uid, 1000);
  assert.equal(f.gid, 100);
  assert.deepEqual(f.layout && { ...f.layout, shuffleSeed: 0 }, {
    chunkSizeBytes: 4 * 1024 * 1024, stripeWidth: 16, chainTableId: 1, chainTableVersion: 0, shuffleSeed: 0,
  });
  const g = fs.create('/d/g');
  assert.notEqual(g.layout?.shuffleSeed, f.layout?.shuffleSeed, 'default seeds differ per inode');
  const layout = { chunkSizeBytes: 1 << 20, stripeWidth: 8, chainTableId: 3, chainTableVersion: 7, shuffleSeed: 42 };
  const h = fs.ok({ op: 'create', path: '/d/h', mode: 0o600, uid: 0, gid: 0, exclusive: true, layout });
  assert.deepEqual(h.inode.layout, layout);
  assert.equal(h.created, true);
  const again = fs.ok({ op: 'create', path: '/d/f', mode: 0o600, uid: 5, gid: 5, exclusive: false });
  assert.equal(again.created, false);
  assert.equal(again.inode.inodeId, f.inodeId);
  assert.equal(again.inode.uid, 1000, 'opening an existing file changes nothing');
  fs.fails({ op: 'create', path: '/d/f', mode: 0o644, uid: 0, gid: 0, exclusive: true }, 'EEXIST');
  fs.fails({ op: 'create', path: '/d', mode: 0o644, uid: 0, gid: 0, exclusive: false }, 'EISDIR');
  fs.fails({ op: 'create', path: '/', mode: 0o644, uid: 0, gid: 0, exclusive: false }, 'EISDIR');
  fs.fails({ op: 'create', path: '/nope/f', mode: 0o644, uid: 0, gid: 0, exclusive: false }, 'ENOENT');
  fs.fails({ op: 'create', path: '/d/f/x', mode: 0o644, uid: 0, gid: 0, exclusive: false }, 'ENOTDIR');
  fs.ok({ op: 'symlink', path: '/d/s', target: 'f', uid: 0, gid: 0 });
  fs.fails({ op: 'create', path: '/d/s', mode: 0o644, uid: 0, gid: 0, exclusive: false }, 'EEXIST');
  fs.fails({ op: 'create', path: '/d/s/x', mode: 0o644, uid: 0, gid: 0, exclusive: false }, 'ENOTDIR');
  assert.equal(fs.state.statfs().files, 3);
  fs.checkInvariants();
});

test('a file created without a layout takes the current version of the default chain table', () => {
  const fs = new Fs();
  fs.ok({ op: 'registerWorker', workerId: 1, instance: 'i1', address: 'w1:9000', domain: '', targets: [11, 12, 13].map((targetId) => ({ targetId, path: `/data/${targetId}`, capacityBytes: 0 })) });
  for (const id of [11, 12, 13]) fs.ok({ op: 'addChains', tableId: 1, chains: [{ chainId: id, targetIds: [id] }] });
  assert.equal(fs.create('/f').layout?.chainTableVersion, 3);
});

test('mknod makes FIFOs, sockets and device nodes: names with attributes and no data, gone with their last link', () => {
  const fs = new Fs();
  fs.mkdir('/d');
  const fifo = fs.ok({ op: 'mknod', path: '/d/p', type: 'fifo', mode: 0o640, uid: 7, gid: 8, rdev: 0 });
  assert.deepEqual([fifo.type, fifo.mode, fifo.uid, fifo.gid, fifo.nlink, fifo.sizeBytes, fifo.rdev], ['fifo', 0o640, 7, 8, 1, 0, undefined]);
  const dev = fs.ok({ op: 'mknod', path: '/d/b', type: 'blockdev', mode: 0o600, uid: 0, gid: 0, rdev: 0x0801 });
  assert.equal(fs.stat('/d/b').rdev, 0x0801);
  fs.ok({ op: 'mknod', path: '/d/s', type: 'socket', mode: 0o755, uid: 0, gid: 0, rdev: 0 });
  fs.fails({ op: 'mknod', path: '/d/p', type: 'fifo', mode: 0o640, uid: 0, gid: 0, rdev: 0 }, 'EEXIST');
  fs.fails({ op: 'mknod', path: '/x/p', type: 'fifo', mode: 0o640, uid: 0, gid: 0, rdev: 0 }, 'ENOENT');
  assert.throws(() => validateCommand({ op: 'mknod', clientId: 'c', seq: 1, nowMs: 0, caller: rootCaller, path: '/q', type: 'fifo', mode: 0, uid: 0, gid: 0, rdev: 5 }), /rdev/);
  assert.throws(() => validateCommand({ op: 'mknod', clientId: 'c', seq: 1, nowMs: 0, caller: rootCaller, path: '/q', type: 'door', mode: 0, uid: 0, gid: 0, rdev: 0 }), /'type' must be one of/);
  fs.fails({ op: 'setattr', path: '/d/p', sizeBytes: 1 }, 'EINVAL');
  fs.ok({ op: 'link', existing: '/d/b', path: '/d/b2' });
  assert.equal(fs.ok({ op: 'unlink', path: '/d/b' }).nlink, 1);
  assert.deepEqual(fs.ok({ op: 'unlink', path: '/d/b2' }), { inodeId: dev.inodeId, nlink: 0, pendingGc: false, parent: fs.stat('/d') });
  assert.equal(fs.state.statInode(dev.inodeId).ok, false);
  fs.ok({ op: 'rename', from: '/d/p', to: '/d/p2' });
  assert.deepEqual(fs.names('/d'), ['p2', 's']);
  assert.deepEqual(fs.state.statfs().inodes, 4);
});

test('unlink removes files and symlinks; a file goes to the pending GC list', () => {
  const fs = new Fs();
  fs.mkdir('/d');
  const f = fs.create('/d/f');
  fs.ok({ op: 'setattr', path: '/d/f', sizeBytes: 5000 });
  fs.ok({ op: 'symlink', path: '/d/s', target: '/d/f', uid: 0, gid: 0 });
  const r = fs.ok({ op: 'unlink', path: '/d/f' });
  assert.deepEqual(r, { inodeId: f.inodeId, nlink: 0, pendingGc: true, parent: fs.stat('/d') });
  assert.equal(fs.statCode('/d/f'), 'ENOENT');
  assert.equal(fs.state.statInode(f.inodeId).ok, false);
  assert.deepEqual(fs.state.pendingGc(10), [{ inodeId: f.inodeId, layout: f.layout, chunks: [], sizeBytes: 5000, deletedMs: fs.nowMs }]);
  assert.deepEqual(fs.ok({ op: 'unlink', path: '/d/s' }).pendingGc, false, 'symlinks have no chunks');
  assert.deepEqual(fs.names('/d'), []);
  assert.equal(fs.stat('/d').mtimeMs, fs.nowMs);
  fs.fails({ op: 'unlink', path: '/d' }, 'EISDIR');
  fs.fails({ op: 'unlink', path: '/' }, 'EISDIR');
  fs.fails({ op: 'unlink', path: '/d/f' }, 'ENOENT');
  fs.fails({ op: 'unlink', path: '/x/f' }, 'ENOENT');
  fs.create('/g');
  fs.fails({ op: 'unlink', path: '/g/x' }, 'ENOTDIR');
  assert.equal(fs.state.statfs().logicalBytes, 0);
  assert.deepEqual(fs.ok({ op: 'gcDone', inodeIds: [f.inodeId, 999] }), { removed: 1 });
  assert.deepEqual(fs.state.pendingGc(10), []);
  fs.checkInvariants();
});

test('rmdir removes empty directories only', () => {
  const fs = new Fs();
  fs.mkdir('/a/b', true);
  fs.create('/f');
  fs.fails({ op: 'rmdir', path: '/a' }, 'ENOTEMPTY');
  fs.fails({ op: 'rmdir', path: '/f' }, 'ENOTDIR');
  fs.fails({ op: 'rmdir', path: '/' }, 'EPERM');
  fs.fails({ op: 'rmdir', path: '/zz' }, 'ENOENT');
  fs.fails({ op: 'rmdir', path: '/f/zz' }, 'ENOTDIR');
  const b = fs.stat('/a/b');
  assert.deepEqual(fs.ok({ op: 'rmdir', path: '/a/b' }), { inodeId: b.inodeId });
  assert.equal(fs.stat('/a').nlink, 2);
  fs.ok({ op: 'rmdir', path: '/a' });
  assert.equal(fs.stat('/').nlink, 2);
  assert.deepEqual(fs.names('/'), ['f']);
  assert.equal(fs.state.statfs().dirs, 1);
  fs.checkInvariants();
});

test('hard links share one inode and count their names in nlink; directories cannot be linked', () => {
  const fs = new Fs();
  fs.mkdir('/a');
  fs.mkdir('/b');
  const f = fs.create('/a/f');
  const linked = fs.ok({ op: 'link', existing: '/a/f', path: '/b/g' });
  assert.equal(linked.inodeId, f.inodeId);
  assert.equal(linked.nlink, 2);
  assert.equal(fs.stat('/b/g').inodeId, f.inodeId);
  fs.ok({ op: 'link', existing: '/b/g', path: '/a/h' });
  assert.equal(fs.stat('/a/f').nlink, 3);
  fs.ok({ op: 'setattr', path: '/a/h', sizeBytes: 10 });
  assert.equal(fs.stat('/b/g').sizeBytes, 10, 'every name sees the one inode');
  assert.deepEqual(fs.ok({ op: 'unlink', path: '/a/f' }), { inodeId: f.inodeId, nlink: 2, pendingGc: false, parent: fs.stat('/a') });
  assert.equal(fs.ok({ op: 'unlink', path: '/b/g' }).nlink, 1);
  assert.equal(fs.stat('/a/h').nlink, 1);
  assert.equal(fs.state.statfs().files, 1);
  fs.fails({ op: 'link', existing: '/a', path: '/c' }, 'EPERM');
  fs.fails({ op: 'link', existing: '/a/h', path: '/b' }, 'EEXIST');
  fs.fails({ op: 'link', existing: '/a/h', path: '/' }, 'EEXIST');
  fs.fails({ op: 'link', existing: '/zz', path: '/c' }, 'ENOENT');
  fs.fails({ op: 'link', existing: '/a/h', path: '/zz/c' }, 'ENOENT');
  fs.ok({ op: 'symlink', path: '/s', target: '/a/h', uid: 0, gid: 0 });
  assert.equal(fs.ok({ op: 'link', existing: '/s', path: '/s2' }).type, 'symlink', 'a hard link to a symlink links the symlink itself');
  assert.equal(fs.stat('/s').nlink, 2);
  fs.checkInvariants();
});

test('symlink and readlink; the master never follows symlinks', () => {
  const fs = new Fs();
  fs.mkdir('/d');
  const s = fs.ok({ op: 'symlink', path: '/d/s', target: '../x/ünï', uid: 0, gid: 0 });
  assert.equal(s.type, 'symlink');
  assert.equal(s.mode, 0o777);
  assert.equal(s.sizeBytes, Buffer.byteLength('../x/ünï'));
  assert.equal(s.target, '../x/ünï');
  const r = fs.state.readlink('/d/s', rootCaller);
  assert.ok(r.ok);
  assert.equal(r.value, '../x/ünï');
  const notLink = fs.state.readlink('/d', rootCaller);
  assert.equal(notLink.ok ? 'ok' : notLink.code, 'EINVAL');
  const missing = fs.state.readlink('/d/zz', rootCaller);
  assert.equal(missing.ok ? 'ok' : missing.code, 'ENOENT');
  fs.fails({ op: 'symlink', path: '/d/s', target: 'y', uid: 0, gid: 0 }, 'EEXIST');
  fs.fails({ op: 'symlink', path: '/', target: 'y', uid: 0, gid: 0 }, 'EEXIST');
  fs.fails({ op: 'symlink', path: '/zz/s', target: 'y', uid: 0, gid: 0 }, 'ENOENT');
  fs.ok({ op: 'symlink', path: '/dl', target: '/d', uid: 0, gid: 0 });
  assert.equal(fs.statCode('/dl/s'), 'ENOTDIR', 'a symlink in the middle of a path is not followed');
  assert.equal(fs.stat('/d/s').type, 'symlink', 'stat does not follow the last component either');
  fs.fails({ op: 'openSession', path: '/d/s', truncate: false }, 'EINVAL');
  assert.equal(fs.state.statfs().symlinks, 2);
  fs.checkInvariants();
});

test('setattr: chmod, chown, utimes, truncate; ctime moves on each', () => {
  const fs = new Fs();
  fs.mkdir('/d');
  fs.create('/d/f');
  const m = fs.ok({ op: 'setattr', path: '/d/f', mode: 0o4755 });
  assert.equal(m.mode, 0o4755);
  assert.equal(m.ctimeMs, fs.nowMs);
  const o = fs.ok({ op: 'setattr', path: '/d/f', uid: 7, gid: 8 });
  assert.deepEqual([o.uid, o.gid, o.mode], [7, 8, 0o4755]);
  const u = fs.ok({ op: 'setattr', path: '/d/f', atimeMs: -5, mtimeMs: 123 });
  assert.deepEqual([u.atimeMs, u.mtimeMs, u.ctimeMs], [-5, 123, fs.nowMs]);
  const grown = fs.ok({ op: 'setattr', path: '/d/f', sizeBytes: 10_000 });
  assert.equal(grown.sizeBytes, 10_000);
  assert.equal(grown.mtimeMs, fs.nowMs);
  assert.equal(fs.state.statfs().logicalBytes, 10_000);
  assert.equal(fs.ok({ op: 'setattr', path: '/d/f', sizeBytes: 10 }).sizeBytes, 10);
  assert.equal(fs.state.statfs().logicalBytes, 10);
  const both = fs.ok({ op: 'setattr', path: '/d/f', sizeBytes: 0, mtimeMs: 77 });
  assert.equal(both.mtimeMs, 77, 'an explicit mtime wins over the truncate stamp');
  assert.equal(fs.ok({ op: 'setattr', path: '/d', mode: 0o700 }).mode, 0o700);
  fs.fails({ op: 'setattr', path: '/d', sizeBytes: 0 }, 'EISDIR');
  fs.ok({ op: 'symlink', path: '/s', target: 'x', uid: 0, gid: 0 });
  fs.fails({ op: 'setattr', path: '/s', sizeBytes: 0 }, 'EINVAL');
  fs.fails({ op: 'setattr', path: '/zz', mode: 0o600 }, 'ENOENT');
  fs.checkInvariants();
});

test('sessions: open, commit lengths, close; a length only grows', () => {
  const fs = new Fs();
  const f = fs.create('/f');
  const s = fs.ok({ op: 'openSession', path: '/f', truncate: false });
  assert.equal(s.sessionId, '@1', 'generated ids come from a counter');
  assert.equal(s.inode.inodeId, f.inodeId);
  const got = fs.state.session('@1');
  assert.ok(got.ok);
  assert.deepEqual(got.value, { sessionId: '@1', inodeId: f.inodeId, clientId: 'test', openedMs: fs.nowMs });
  assert.equal(fs.ok({ op: 'commitLength', path: '/f', lengthBytes: 4096 }).sizeBytes, 4096);
  assert.equal(fs.ok({ op: 'commitLength', inodeId: f.inodeId, lengthBytes: 100 }).sizeBytes, 4096, 'high-water marks never shrink a file');
  const closed = fs.ok({ op: 'closeSession', sessionId: '@1', lengthBytes: 8192 });
  assert.equal(closed.inode.sizeBytes, 8192);
  assert.equal(closed.pendingGc, false);
  assert.equal(fs.state.statfs().sessions, 0);
  fs.fails({ op: 'closeSession', sessionId: '@1' }, 'ENOENT');
  const named = fs.ok({ op: 'openSession', path: '/f', sessionId: 'writer-1', truncate: true, chunksTrimmed: true });
  assert.equal(named.sessionId, 'writer-1');
  assert.equal(named.inode.sizeBytes, 0, 'O_TRUNC');
  fs.fails({ op: 'openSession', path: '/f', sessionId: 'writer-1', truncate: false }, 'EEXIST');
  fs.mkdir('/d');
  fs.fails({ op: 'openSession', path: '/d', truncate: false }, 'EISDIR');
  fs.fails({ op: 'openSession', path: '/zz', truncate: false }, 'ENOENT');
  fs.fails({ op: 'commitLength', path: '/d', lengthBytes: 1 }, 'EISDIR');
  fs.fails({ op: 'commitLength', inodeId: 9999, lengthBytes: 1 }, 'ENOENT');
  fs.fails({ op: 'commitLength', inodeId: rootInodeId, lengthBytes: 1 }, 'EISDIR');
  fs.ok({ op: 'symlink', path: '/s', target: 'f', uid: 0, gid: 0 });
  fs.fails({ op: 'commitLength', path: '/s', lengthBytes: 1 }, 'EINVAL');
  fs.fails({ op: 'commitLength', inodeId: fs.stat('/s').inodeId, lengthBytes: 1 }, 'EINVAL');
  fs.checkInvariants();
});

test('a file unlinked while open stays as an orphan until its last session closes, then goes to pending GC', () => {
  const fs = new Fs();
  const f = fs.create('/f');
  fs.ok({ op: 'openSession', path: '/f', sessionId: 'a', truncate: false });
  fs.ok({ op: 'openSession', path: '/f', sessionId: 'b', truncate: false });
  assert.deepEqual(fs.ok({ op: 'unlink', path: '/f' }), { inodeId: f.inodeId, nlink: 0, pendingGc: false, parent: fs.stat('/') });
  assert.equal(fs.statCode('/f'), 'ENOENT');
  const orphan = fs.state.statInode(f.inodeId);
  assert.ok(orphan.ok);
  assert.equal(orphan.value.nlink, 0);
  assert.equal(fs.state.statfs().orphans, 1);
  assert.deepEqual(fs.state.pendingGc(10), []);
  assert.equal(fs.ok({ op: 'commitLength', inodeId: f.inodeId, lengthBytes: 300 }).sizeBytes, 300, 'writers still commit by inode');
  fs.checkInvariants();
  assert.equal(fs.ok({ op: 'closeSession', sessionId: 'a', lengthBytes: 500 }).pendingGc, false);
  assert.equal(fs.state.statfs().orphans, 1);
  const last = fs.ok({ op: 'closeSession', sessionId: 'b' });
  assert.equal(last.pendingGc, true);
  assert.equal(last.inode.sizeBytes, 500);
  assert.equal(fs.state.statfs().orphans, 0);
  assert.equal(fs.state.statfs().files, 0);
  assert.equal(fs.state.statfs().logicalBytes, 0);
  assert.deepEqual(fs.state.pendingGc(10).map((g) => [g.inodeId, g.sizeBytes]), [[f.inodeId, 500]]);
  fs.checkInvariants();
});

test('the session table is bounded by sessionsMax (EMFILE)', () => {
  const fs = new Fs(new MetaState({ sessionsMax: 2 }));
  fs.create('/f');
  fs.ok({ op: 'openSession', path: '/f', truncate: false });
  fs.ok({ op: 'openSession', path: '/f', truncate: false });
  fs.fails({ op: 'openSession', path: '/f', truncate: false }, 'EMFILE');
  fs.ok({ op: 'closeSession', sessionId: '@1' });
  assert.equal(fs.ok({ op: 'openSession', path: '/f', truncate: false }).sessionId, '@3');
});

test('create with openSession opens the write session in the same step (open(2) with O_CREAT)', () => {
  const fs = new Fs(new MetaState({ sessionsMax: 2 }));
  fs.mkdir('/d');
  const alice = { uid: 1000, gid: 1000, groups: [] };
  fs.ok({ op: 'setattr', path: '/d', mode: 0o777 });
  // A new file: the session opens whatever the mode, as open(2) writes a file it creates read-only.
  const made = fs.ok({ op: 'create', path: '/d/ro', mode: 0o444, uid: alice.uid, gid: alice.gid, exclusive: false, openSession: true, caller: alice });
  assert.equal(made.created, true);
  assert.equal(made.sessionId, '@1');
  const got = fs.state.session('@1');
  assert.ok(got.ok);
  assert.equal(got.value.inodeId, made.inode.inodeId);
  // One found there: write permission is needed, as for openSession.
  fs.fails({ op: 'create', path: '/d/ro', mode: 0o644, uid: alice.uid, gid: alice.gid, exclusive: false, openSession: true, caller: alice }, 'EACCES');
  const again = fs.ok({ op: 'create', path: '/d/ro', mode: 0o644, uid: 0, gid: 0, exclusive: false, openSession: true });
  assert.equal(again.created, false);
  assert.equal(again.sessionId, '@2');
  // The session table is full: the create is refused and makes no file.
  fs.fails({ op: 'create', path: '/d/new', mode: 0o644, uid: 0, gid: 0, exclusive: false, openSession: true }, 'EMFILE');
  assert.equal(fs.statCode('/d/new'), 'ENOENT');
  // Without the flag, no session.
  assert.equal(fs.ok({ op: 'create', path: '/d/plain', mode: 0o644, uid: 0, gid: 0, exclusive: false }).sessionId, undefined);
  fs.checkInvariants();
});

test('lookup, statInode and statfs', () => {
  const fs = new Fs();
  const d = fs.mkdir('/d');
  const f = fs.create('/d/f');
  fs.ok({ op: 'setattr', path: '/d/f', sizeBytes: 123 });
  const l = fs.state.lookup(d.inodeId, 'f', rootCaller);
  assert.ok(l.ok);
  assert.equal(l.value.inodeId, f.inodeId);
  const codes = [fs.state.lookup(d.inodeId, 'zz', rootCaller), fs.state.lookup(f.inodeId, 'x', rootCaller), fs.state.lookup(12345, 'x', rootCaller)].map((r) => (r.ok ? 'ok' : r.code));
  assert.deepEqual(codes, ['ENOENT', 'ENOTDIR', 'ENOENT']);
  assert.equal(fs.state.statInode(f.inodeId).ok, true);
  const sf = fs.state.statfs();
  assert.deepEqual([sf.inodes, sf.files, sf.dirs, sf.symlinks, sf.logicalBytes, sf.clients, sf.indexApplied], [3, 1, 2, 0, 123, 1, fs.index]);
});

test('query answers the same as the direct methods', () => {
  const fs = new Fs();
  fs.mkdir('/d');
  fs.create('/d/f');
  assert.deepEqual(fs.state.query({ op: 'stat', path: '/d/f', caller: rootCaller }), fs.state.stat('/d/f', rootCaller));
  assert.deepEqual(fs.state.query({ op: 'readdir', path: '/d', limit: 5, caller: rootCaller }), fs.state.readdir('/d', { limit: 5 }, rootCaller));
  assert.deepEqual(fs.state.query({ op: 'readdir', path: '/d', after: 'e', limit: 5, caller: rootCaller }), fs.state.readdir('/d', { after: 'e', limit: 5 }, rootCaller));
  assert.deepEqual(fs.state.query({ op: 'statfs' }), { ok: true, value: fs.state.statfs() });
  assert.deepEqual(fs.state.query({ op: 'pendingGc', limit: 5 }), { ok: true, value: [] });
  assert.deepEqual(fs.state.query({ op: 'workers' }), { ok: true, value: [] });
});

test('readdir pages through 10,000 entries in name order, whatever order they were created in', () => {
  const fs = new Fs();
  fs.mkdir('/big');
  const names: string[] = [];
  for (let i = 0; i < 10_000; i++) names.push(`n${((i * 7919) % 10_000).toString().padStart(5, '0')}`);
  for (const name of names) fs.create(`/big/${name}`);
  fs.mkdir('/big/zdir');
  const seen: string[] = [];
  let after: string | undefined;
  let pages = 0;
  for (;;) {
    const r = fs.state.readdir('/big', after === undefined ? { limit: 333 } : { after, limit: 333 }, rootCaller);
    assert.ok(r.ok);
    pages++;
    assert.ok(r.value.entries.length <= 333);
    seen.push(...r.value.entries.map((e) => e.name));
    if (r.value.next === undefined) break;
    assert.equal(r.value.next, r.value.entries.at(-1)?.name);
    after = r.value.next;
  }
  assert.equal(pages, Math.ceil(10_001 / 333));
  assert.deepEqual(seen, [...names, 'zdir'].sort());
  const last = fs.state.readdir('/big', { after: 'n09999', limit: 10 }, rootCaller);
  assert.ok(last.ok);
  assert.deepEqual(last.value.entries.map((e) => [e.name, e.type]), [['zdir', 'dir']]);
  assert.equal(last.value.next, undefined);
});

test('readdir caps the page at readdirLimitMax, resumes after names that are gone, and refuses bad input', () => {
  const fs = new Fs();
  fs.mkdir('/d');
  for (let i = 0; i < readdirLimitMax + 10; i++) fs.create(`/d/f${i.toString().padStart(5, '0')}`);
  const page = fs.state.readdir('/d', { limit: 1_000_000 }, rootCaller);
  assert.ok(page.ok);
  assert.equal(page.value.entries.length, readdirLimitMax);
  assert.equal(page.value.next, `f${(readdirLimitMax - 1).toString().padStart(5, '0')}`);
  fs.ok({ op: 'unlink', path: '/d/f00005' });
  const resumed = fs.state.readdir('/d', { after: 'f00005', limit: 2 }, rootCaller);
  assert.ok(resumed.ok);
  assert.deepEqual(resumed.value.entries.map((e) => e.name), ['f00006', 'f00007'], 'a cursor need not exist any more');
  const empty = fs.state.readdir('/d', { after: 'zzz', limit: 2 }, rootCaller);
  assert.deepEqual(empty, { ok: true, value: { entries: [] } });
  const codes = [
    fs.state.readdir('/d/f00001', { limit: 1 }, rootCaller),
    fs.state.readdir('/nope', { limit: 1 }, rootCaller),
    fs.state.readdir('/d', { limit: 0 }, rootCaller),
  ].map((r) => (r.ok ? 'ok' : r.code));
  assert.deepEqual(codes, ['ENOTDIR', 'ENOENT', 'EINVAL']);
});

test('cluster tables: register workers, add chains, update chains', () => {
  const fs = new Fs();
  const spec = (targetId: number, path = `/d${targetId}`) => ({ targetId, path, capacityBytes: 1000 });
  const w1 = fs.ok({ op: 'registerWorker', workerId: 1, instance: 'i1', address: 'host-a:9000', domain: 'rack-1', targets: [spec(101), spec(102)] });
  assert.deepEqual(w1.targets.map((t) => [t.targetId, t.state, t.chainId]), [[101, 'offline', 0], [102, 'offline', 0]]);
  fs.ok({ op: 'registerWorker', workerId: 2, instance: 'i1', address: 'host-b:9000', domain: 'rack-2', targets: [spec(201), spec(202)] });
  fs.ok({ op: 'registerWorker', workerId: 3, instance: 'i1', address: 'host-c:9000', domain: 'rack-3', targets: [spec(301), spec(302)] });
  fs.fails({ op: 'registerWorker', workerId: 2, instance: 'i1', address: 'host-b:9000', domain: '', targets: [spec(101)] }, 'EEXIST');
  // Re-registration updates the address and paths, adds targets and keeps the others and their states.
  const again = fs.ok({ op: 'registerWorker', workerId: 1, instance: 'i1', address: 'host-a:9001', domain: 'rack-1', targets: [spec(103), spec(102, '/d2b')] });
  assert.equal(again.address, 'host-a:9001');
  assert.deepEqual(again.targets.map((t) => [t.targetId, t.path]), [[101, '/d101'], [102, '/d2b'], [103, '/d103']]);
  assert.equal(again.registeredMs < again.updatedMs, true);

  assert.deepEqual(fs.ok({ op: 'addChains', tableId: 1, chains: [{ chainId: 1, targetIds: [101, 201, 301] }] }), { tableId: 1, version: 1 });
  fs.fails({ op: 'addChains', tableId: 1, chains: [{ chainId: 1, targetIds: [102, 202, 302] }] }, 'EEXIST');
  fs.fails({ op: 'addChains', tableId: 1, chains: [{ chainId: 2, targetIds: [102, 999] }] }, 'ENOENT');
  fs.fails({ op: 'addChains', tableId: 1, chains: [{ chainId: 2, targetIds: [102, 103] }] }, 'EINVAL'); // one worker twice
  fs.fails({ op: 'addChains', tableId: 1, chains: [{ chainId: 2, targetIds: [102, 201] }] }, 'EINVAL'); // 201 is in chain 1
  fs.fails({ op: 'addChains', tableId: 1, chains: [{ chainId: 2, targetIds: [102, 202] }, { chainId: 3, targetIds: [302, 202] }] }, 'EINVAL');
  assert.deepEqual(fs.ok({ op: 'addChains', tableId: 1, chains: [{ chainId: 2, targetIds: [202, 302, 102] }] }), { tableId: 1, version: 2 });
  const table = fs.state.chainTables()[0];
  assert.deepEqual([table.chainIds, table.chainCounts], [[1, 2], [1, 2]]);
  assert.ok(Object.isFrozen(table) && Object.isFrozen(table.chainIds), 'published tables are immutable');
  assert.deepEqual(fs.state.targets().filter((t) => t.chainId === 1).map((t) => t.state), ['serving', 'serving', 'serving']);

  // The manager's update: 301 failed and moves to the end; the chain's version goes up, the table's does not.
  const update = { chainId: 1, version: 1, targets: [{ targetId: 101, state: 'serving' as const }, { targetId: 201, state: 'serving' as const }, { targetId: 301, state: 'offline' as const }] };
  assert.deepEqual(fs.ok({ op: 'updateChains', chains: [update] }).chains.map((c) => [c.chainId, c.version, c.targetIds]), [[1, 2, [101, 201, 301]]]);
  fs.fails({ op: 'updateChains', chains: [update] }, 'EAGAIN'); // made for version 1
  const v2 = (targets: { targetId: number; state: 'serving' | 'syncing' | 'waiting' | 'offline' | 'lastsrv' }[]) => ({ op: 'updateChains' as const, chains: [{ chainId: 1, version: 2, targets }] });
  fs.fails(v2([{ targetId: 301, state: 'offline' }, { targetId: 101, state: 'serving' }]), 'EINVAL'); // not ordered by state
  fs.fails(v2([{ targetId: 101, state: 'syncing' }, { targetId: 201, state: 'syncing' }]), 'EINVAL'); // two syncing
  fs.fails(v2([{ targetId: 101, state: 'serving' }, { targetId: 202, state: 'serving' }]), 'EINVAL'); // 202 is in chain 2
  fs.fails(v2([{ targetId: 101, state: 'serving' }, { targetId: 999, state: 'serving' }]), 'ENOENT');
  // 301 is replaced by a new target: it leaves the chain, offline; the new one waits.
  fs.ok({ op: 'registerWorker', workerId: 4, instance: 'i1', address: 'host-d:9000', domain: 'rack-4', targets: [spec(401)] });
  fs.ok(v2([{ targetId: 101, state: 'serving' }, { targetId: 201, state: 'serving' }, { targetId: 401, state: 'waiting' }]));
  const byId = new Map(fs.state.targets().map((t) => [t.targetId, t]));
  assert.deepEqual([byId.get(301)?.chainId, byId.get(301)?.state, byId.get(401)?.chainId, byId.get(401)?.state], [0, 'offline', 1, 'waiting']);
  assert.equal(fs.state.chainTables()[0].version, 2);
  const routing = fs.state.routing();
  assert.deepEqual(routing.chains.map((c) => [c.chainId, c.version]), [[1, 3], [2, 1]]);
  assert.deepEqual(routing.workers.map((w) => w.workerId), [1, 2, 3, 4]);
  assert.ok(routing.routingVersion > 0);
  fs.checkInvariants();
});

test('a worker that registers with a new instance (it restarted) stops serving its members in the same command', () => {
  const fs = new Fs();
  for (const w of [1, 2, 3]) fs.ok({ op: 'registerWorker', workerId: w, instance: 'first', address: `h${w}:1`, domain: '', targets: [{ targetId: w, path: '/d', capacityBytes: 0 }] });
  fs.ok({ op: 'addChains', tableId: 1, chains: [{ chainId: 7, targetIds: [1, 2, 3] }] });
  fs.ok({ op: 'registerWorker', workerId: 2, instance: 'first', address: 'h2:1', domain: '', targets: [] });
  assert.equal(fs.state.chains()[0].version, 1, 'the same instance again changes nothing');
  fs.ok({ op: 'registerWorker', workerId: 2, instance: 'second', address: 'h2:1', domain: '', targets: [] });
  const chain = fs.state.chains()[0];
  assert.deepEqual([chain.version, chain.targetIds], [2, [1, 3, 2]]);
  assert.equal(fs.state.targets().find((t) => t.targetId === 2)?.state, 'offline');
  fs.checkInvariants();
});

/** Workers 1-4 (two targets each, w×10+k), chain 1 of 11, 21, 31 and chain 2 of 12, 22, 32 serving; 41, 42 free. */
function fourWorkers(): Fs {
  const fs = new Fs();
  for (const w of [1, 2, 3, 4]) {
    fs.ok({ op: 'registerWorker', workerId: w, instance: 'i1', address: `h${w}:1`, domain: '', targets: [1, 2].map((k) => ({ targetId: w * 10 + k, path: `/d${k}`, capacityBytes: 100 })) });
  }
  fs.ok({ op: 'addChains', tableId: 1, chains: [{ chainId: 1, targetIds: [11, 21, 31] }, { chainId: 2, targetIds: [12, 22, 32] }] });
  return fs;
}

type State = 'serving' | 'syncing' | 'waiting' | 'offline' | 'lastsrv';
const members = (fs: Fs, chainId: number): string => {
  const states = new Map(fs.state.targets().map((t) => [t.targetId, t.state]));
  return fs.state.chains().find((c) => c.chainId === chainId)!.targetIds.map((id) => `${id}:${states.get(id)}`).join(' ');
};
const setStates = (fs: Fs, chainId: number, targets: [number, State][]): void => {
  const version = fs.state.chains().find((c) => c.chainId === chainId)!.version;
  fs.ok({ op: 'updateChains', chains: [{ chainId, version, targets: targets.map(([targetId, state]) => ({ targetId, state })) }] });
};

test('decommissionWorker marks a worker for good: kept in the tables, refused at registration, applied once', () => {
  const fs = fourWorkers();
  fs.fails({ op: 'decommissionWorker', workerId: 9 }, 'ENOENT');
  const before = fs.state.routing().routingVersion;
  const w2 = fs.ok({ op: 'decommissionWorker', workerId: 2 });
  assert.equal(w2.decommissionedMs, fs.nowMs);
  assert.ok(fs.state.routing().routingVersion > before);
  // Its members stay where they are until the manager replaces them.
  assert.equal(members(fs, 1), '11:serving 21:serving 31:serving');
  const stamp = fs.nowMs;
  assert.equal(fs.ok({ op: 'decommissionWorker', workerId: 2 }).decommissionedMs, stamp, 'again: nothing changes');
  fs.fails({ op: 'registerWorker', workerId: 2, instance: 'i2', address: 'h2:1', domain: '', targets: [] }, 'EPERM');
  fs.fails({ op: 'registerWorker', workerId: 2, instance: 'i1', address: 'h2:1', domain: '', targets: [] }, 'EPERM');
  assert.deepEqual(fs.state.workers().map((w) => [w.workerId, w.decommissionedMs]), [[1, undefined], [2, stamp], [3, undefined], [4, undefined]]);
  // It survives a snapshot.
  assert.equal(MetaState.restore(fs.state.snapshot()).workers()[1].decommissionedMs, stamp);
  fs.checkInvariants();
});

test('replaceChainMember: a free target enters syncing in a lost member\'s place; the chain keeps its id, its version goes up', () => {
  const fs = fourWorkers();
  fs.ok({ op: 'decommissionWorker', workerId: 2 });
  setStates(fs, 1, [[11, 'serving'], [31, 'serving'], [21, 'offline']]);
  const v = fs.state.chains()[0].version;
  const replace = (extra: object = {}) => ({ op: 'replaceChainMember' as const, chainId: 1, version: v, lostTargetId: 21, newTargetId: 41, ...extra });
  fs.fails(replace({ chainId: 9 }), 'ENOENT');
  fs.fails(replace({ version: v - 1 }), 'EAGAIN');
  fs.fails(replace({ lostTargetId: 12 }), 'EINVAL'); // not in chain 1
  fs.fails(replace({ newTargetId: 99 }), 'ENOENT');
  fs.fails(replace({ newTargetId: 22 }), 'EINVAL'); // in chain 2
  fs.fails(replace({ newTargetId: 13 + 0 }), 'ENOENT'); // worker 1 has no target 13
  fs.ok({ op: 'registerWorker', workerId: 1, instance: 'i1', address: 'h1:1', domain: '', targets: [{ targetId: 13, path: '/d3', capacityBytes: 100 }] });
  fs.fails(replace({ newTargetId: 13 }), 'EINVAL'); // worker 1 holds 11 in the chain
  fs.fails(replace({ lostTargetId: 11 }), 'EINVAL'); // 11 serves on a worker in service
  const chain = fs.ok(replace());
  assert.deepEqual([chain.chainId, chain.version, chain.targetIds], [1, v + 1, [11, 31, 41]]);
  assert.equal(members(fs, 1), '11:serving 31:serving 41:syncing');
  const lost = fs.state.targets().find((t) => t.targetId === 21)!;
  assert.deepEqual([lost.chainId, lost.state], [0, 'offline']);
  assert.equal(fs.state.chainTables()[0].version, 1, 'the table does not change: no chunk moves');
  fs.checkInvariants();
});

test('replaceChainMember keeps the rules: one syncing at a time, never the only serving copy, no decommissioned newcomer', () => {
  const fs = fourWorkers();
  fs.ok({ op: 'decommissionWorker', workerId: 2 });
  // Another member syncs already: the newcomer waits.
  setStates(fs, 1, [[11, 'serving'], [31, 'syncing'], [21, 'offline']]);
  fs.ok({ op: 'replaceChainMember', chainId: 1, version: fs.state.chains()[0].version, lostTargetId: 21, newTargetId: 41 });
  assert.equal(members(fs, 1), '11:serving 31:syncing 41:waiting');
  // A decommissioned worker's member that serves alone (the others down) cannot go: its data would.
  setStates(fs, 2, [[22, 'serving'], [12, 'offline'], [32, 'offline']]);
  const v2 = fs.state.chains()[1].version;
  fs.fails({ op: 'replaceChainMember', chainId: 2, version: v2, lostTargetId: 22, newTargetId: 42 }, 'EINVAL');
  setStates(fs, 2, [[22, 'lastsrv'], [12, 'offline'], [32, 'offline']]);
  fs.fails({ op: 'replaceChainMember', chainId: 2, version: v2 + 1, lostTargetId: 22, newTargetId: 42 }, 'EINVAL');
  // An offline member of a worker in service may be replaced (the --replace-after-ms path), once another serves.
  setStates(fs, 2, [[32, 'serving'], [22, 'serving'], [12, 'offline']]);
  fs.ok({ op: 'replaceChainMember', chainId: 2, version: v2 + 2, lostTargetId: 12, newTargetId: 42 });
  assert.equal(members(fs, 2), '32:serving 22:serving 42:syncing');
  // A decommissioned worker's free target never joins a chain.
  fs.ok({ op: 'decommissionWorker', workerId: 4 });
  fs.ok({ op: 'registerWorker', workerId: 5, instance: 'i1', address: 'h5:1', domain: '', targets: [{ targetId: 51, path: '/d', capacityBytes: 1 }] });
  const v3 = fs.state.chains()[1].version;
  fs.fails({ op: 'replaceChainMember', chainId: 2, version: v3, lostTargetId: 42, newTargetId: 21 }, 'EINVAL'); // 21: worker 2 is decommissioned
  fs.ok({ op: 'replaceChainMember', chainId: 2, version: v3, lostTargetId: 22, newTargetId: 51 });
  assert.equal(members(fs, 2), '32:serving 42:syncing 51:waiting');
  fs.checkInvariants();
});

test('moveChainMember: a free target joins a healthy chain as an extra member; done drops the source, cancelled the newcomer', () => {
  const fs = fourWorkers();
  const v = fs.state.chains()[0].version;
  const move = (extra: object = {}) => ({ op: 'moveChainMember' as const, chainId: 1, version: v, fromTargetId: 11, toTargetId: 41, ...extra });
  fs.fails(move({ chainId: 9 }), 'ENOENT');
  fs.fails(move({ version: v + 1 }), 'EAGAIN');
  fs.fails(move({ fromTargetId: 12 }), 'EINVAL'); // not in chain 1
  fs.fails(move({ toTargetId: 99 }), 'ENOENT');
  fs.fails(move({ toTargetId: 22 }), 'EINVAL'); // in chain 2
  fs.fails(move({ toTargetId: 21 }), 'EINVAL'); // in chain 1
  const chain = fs.ok(move());
  assert.deepEqual([chain.version, chain.targetIds, chain.moving], [v + 1, [11, 21, 31, 41], { fromTargetId: 11, toTargetId: 41 }]);
  assert.equal(members(fs, 1), '11:serving 21:serving 31:serving 41:syncing');
  // One move at a time; the move's ends are not replaced; it survives a snapshot.
  fs.fails(move({ version: v + 1, toTargetId: 42, fromTargetId: 21 }), 'EINVAL');
  assert.deepEqual(MetaState.restore(fs.state.snapshot()).chains()[0].moving, { fromTargetId: 11, toTargetId: 41 });
  fs.checkInvariants();
  // Not done while the newcomer syncs.
  const end = (outcome: 'done' | 'cancelled') => ({ op: 'endChainMove' as const, chainId: 1, version: fs.state.chains()[0].version, outcome });
  fs.fails(end('done'), 'EINVAL');
  fs.fails({ ...end('done'), version: v }, 'EAGAIN');
  // State changes keep the move; once the newcomer serves, the source leaves, whatever the others do.
  setStates(fs, 1, [[11, 'serving'], [21, 'serving'], [41, 'serving'], [31, 'offline']]);
  assert.deepEqual(fs.state.chains()[0].moving, { fromTargetId: 11, toTargetId: 41 });
  fs.fails(end('cancelled'), 'EINVAL'); // the newcomer serves: it may hold writes no one else has
  const done = fs.ok(end('done'));
  assert.deepEqual([done.targetIds, done.moving], [[21, 41, 31], undefined]);
  const source = fs.state.targets().find((t) => t.targetId === 11)!;
  assert.deepEqual([source.chainId, source.state], [0, 'offline']);
  fs.fails(end('done'), 'EINVAL'); // no move under way
  assert.equal(fs.state.chainTables()[0].version, 1, 'the table does not change: no chunk changes chain');
  // A cancelled move drops the newcomer and keeps the source.
  const v2 = fs.state.chains()[1].version;
  fs.ok({ op: 'moveChainMember', chainId: 2, version: v2, fromTargetId: 12, toTargetId: 42 });
  setStates(fs, 2, [[42, 'lastsrv'], [12, 'offline'], [22, 'offline'], [32, 'offline']]);
  fs.fails({ op: 'endChainMove', chainId: 2, version: v2 + 2, outcome: 'cancelled' }, 'EINVAL'); // it served last
  fs.fails({ op: 'endChainMove', chainId: 2, version: v2 + 2, outcome: 'done' }, 'EINVAL'); // it does not serve
  setStates(fs, 2, [[12, 'serving'], [22, 'serving'], [32, 'serving'], [42, 'offline']]);
  const cancelled = fs.ok({ op: 'endChainMove', chainId: 2, version: v2 + 3, outcome: 'cancelled' });
  assert.deepEqual([cancelled.targetIds, cancelled.moving], [[12, 22, 32], undefined]);
  assert.equal(fs.state.targets().find((t) => t.targetId === 42)!.chainId, 0);
  fs.checkInvariants();
});

test('a target that leaves a chain is marked for reclaim until targetReclaimed names that departure; joining a chain or a restore clears the mark', () => {
  const fs = fourWorkers();
  const leftAt = (id: number): number | undefined => fs.state.targets().find((t) => t.targetId === id)!.leftChainAt;
  assert.equal(leftAt(41), undefined, 'a target that never was in a chain');
  const v = fs.state.chains()[0].version;
  fs.ok({ op: 'moveChainMember', chainId: 1, version: v, fromTargetId: 11, toTargetId: 41 });
  setStates(fs, 1, [[11, 'serving'], [21, 'serving'], [31, 'serving'], [41, 'serving']]);
  fs.ok({ op: 'endChainMove', chainId: 1, version: fs.state.chains()[0].version, outcome: 'done' });
  const mark = leftAt(11)!;
  assert.equal(mark, fs.state.routing().routingVersion, 'the routing version of the change it left at');
  assert.equal(leftAt(41), undefined);
  assert.equal(MetaState.restore(fs.state.snapshot()).targets().find((t) => t.targetId === 11)!.leftChainAt, mark, 'a snapshot keeps it');
  fs.checkInvariants();
  // Another departure's reclaim, or a target in a chain: nothing changes.
  assert.deepEqual(fs.ok({ op: 'targetReclaimed', targetId: 11, leftChainAt: mark - 1 }), { cleared: false });
  assert.deepEqual(fs.ok({ op: 'targetReclaimed', targetId: 21, leftChainAt: mark }), { cleared: false });
  fs.fails({ op: 'targetReclaimed', targetId: 99, leftChainAt: mark }, 'ENOENT');
  assert.equal(leftAt(11), mark);
  assert.deepEqual(fs.ok({ op: 'targetReclaimed', targetId: 11, leftChainAt: mark }), { cleared: true });
  assert.equal(leftAt(11), undefined);
  // Back into a chain (its resync makes it equal), and out again: a new mark.
  const v2 = fs.state.chains()[0].version;
  fs.ok({ op: 'moveChainMember', chainId: 1, version: v2, fromTargetId: 21, toTargetId: 11 });
  assert.equal(leftAt(11), undefined);
  fs.ok({ op: 'endChainMove', chainId: 1, version: v2 + 1, outcome: 'cancelled' });
  const again = leftAt(11)!;
  assert.ok(again > mark);
  assert.deepEqual(fs.ok({ op: 'targetReclaimed', targetId: 11, leftChainAt: mark }), { cleared: false }, 'a reclaim begun before it rejoined');
  // A restore keeps no mark: the backup's free targets may hold chains that moved after it.
  const restored = MetaState.restore(fs.state.snapshot());
  assert.equal(restored.targets().find((t) => t.targetId === 11)!.leftChainAt, again);
  restored.continueRestored(fs.state.indexApplied + 1, 1);
  assert.deepEqual(restored.targets().filter((t) => t.leftChainAt !== undefined), []);
  fs.checkInvariants();
});

test('moveChainMember only moves a healthy chain\'s member to a worker in service the chain does not use', () => {
  const fs = fourWorkers();
  // A member that does not serve: no move.
  setStates(fs, 1, [[11, 'serving'], [21, 'serving'], [31, 'offline']]);
  fs.fails({ op: 'moveChainMember', chainId: 1, version: fs.state.chains()[0].version, fromTargetId: 11, toTargetId: 41 }, 'EINVAL');
  setStates(fs, 1, [[11, 'serving'], [21, 'serving'], [31, 'serving']]);
  const v = fs.state.chains()[0].version;
  fs.ok({ op: 'registerWorker', workerId: 1, instance: 'i1', address: 'h1:1', domain: '', targets: [{ targetId: 13, path: '/d3', capacityBytes: 100 }] });
  fs.fails({ op: 'moveChainMember', chainId: 1, version: v, fromTargetId: 21, toTargetId: 13 }, 'EINVAL'); // worker 1 holds 11
  fs.fails({ op: 'moveChainMember', chainId: 1, version: v, fromTargetId: 11, toTargetId: 13 }, 'EINVAL'); // within worker 1
  fs.ok({ op: 'decommissionWorker', workerId: 4 });
  fs.fails({ op: 'moveChainMember', chainId: 1, version: v, fromTargetId: 11, toTargetId: 41 }, 'EINVAL'); // worker 4 is out of service
  fs.ok({ op: 'registerWorker', workerId: 5, instance: 'i1', address: 'h5:1', domain: '', targets: [{ targetId: 51, path: '/d', capacityBytes: 1 }] });
  fs.ok({ op: 'decommissionWorker', workerId: 2 });
  fs.fails({ op: 'moveChainMember', chainId: 1, version: v, fromTargetId: 21, toTargetId: 51 }, 'EINVAL'); // 21 is replaced, not moved
  fs.ok({ op: 'moveChainMember', chainId: 1, version: v, fromTargetId: 11, toTargetId: 51 });
  // The decommissioned member 21 is replaced while the move goes on; the move's ends are not.
  const v2 = fs.state.chains()[0].version;
  fs.ok({ op: 'registerWorker', workerId: 6, instance: 'i1', address: 'h6:1', domain: '', targets: [{ targetId: 61, path: '/d', capacityBytes: 1 }] });
  fs.fails({ op: 'replaceChainMember', chainId: 1, version: v2, lostTargetId: 51, newTargetId: 61 }, 'EINVAL');
  fs.fails({ op: 'replaceChainMember', chainId: 1, version: v2, lostTargetId: 11, newTargetId: 61 }, 'EINVAL');
  fs.ok({ op: 'replaceChainMember', chainId: 1, version: v2, lostTargetId: 21, newTargetId: 61 });
  assert.equal(members(fs, 1), '11:serving 31:serving 51:syncing 61:waiting');
  assert.deepEqual(fs.state.chains()[0].moving, { fromTargetId: 11, toTargetId: 51 });
  fs.checkInvariants();
});

test('the cluster is named once', () => {
  const fs = new Fs();
  assert.equal(fs.state.routing().clusterId, '');
  fs.ok({ op: 'initCluster', clusterId: 'one' });
  fs.ok({ op: 'initCluster', clusterId: 'one' });
  fs.fails({ op: 'initCluster', clusterId: 'two' }, 'EEXIST');
  assert.equal(MetaState.restore(fs.state.snapshot()).routing().clusterId, 'one');
});

test('a file records the chunks its writers report; truncation forgets those past the end; too many stop the record', () => {
  const fs = new Fs();
  const f = fs.create('/f');
  assert.deepEqual(f.chunks, []);
  const s = fs.ok({ op: 'openSession', path: '/f', truncate: false });
  fs.ok({ op: 'commitLength', path: '/f', lengthBytes: 3 * 4 * 1024 * 1024, chunks: [0, 2] });
  fs.ok({ op: 'closeSession', sessionId: s.sessionId, lengthBytes: 10 * 4 * 1024 * 1024, chunks: [1, 3, 7, 10] });
  assert.deepEqual(fs.stat('/f').chunks, [0, 3, 7, 10]);
  assert.throws(() => validateCommand({ op: 'commitLength', clientId: 'c', seq: 1, nowMs: 0, caller: rootCaller, path: '/f', lengthBytes: 1, chunks: [2, 1] }), /'chunks' must be sorted, disjoint ranges/);
  fs.ok({ op: 'setattr', path: '/f', sizeBytes: 8 * 4 * 1024 * 1024 + 1, chunksTrimmed: true });
  assert.deepEqual(fs.stat('/f').chunks, [0, 3, 7, 9], 'chunk 8 holds the last byte');
  assert.deepEqual((MetaState.restore(fs.state.snapshot()).stat('/f', rootCaller) as { value: InodeAttr }).value.chunks, [0, 3, 7, 9]);
  fs.ok({ op: 'commitLength', path: '/f', lengthBytes: 1, chunks: null });
  assert.equal(fs.stat('/f').chunks, null);
  fs.ok({ op: 'unlink', path: '/f' });
  assert.equal(fs.state.pendingGc(10)[0].chunks, null);
  fs.checkInvariants();
});

test('a writer that commits a length without listing its chunks makes the file untracked, never holes', () => {
  const fs = new Fs();
  fs.create('/f');
  const s = fs.ok({ op: 'openSession', path: '/f', truncate: false });
  fs.ok({ op: 'closeSession', sessionId: s.sessionId, lengthBytes: 100 });
  assert.equal(fs.stat('/f').chunks, null);
  fs.create('/g');
  const t = fs.ok({ op: 'openSession', path: '/g', truncate: false });
  fs.ok({ op: 'closeSession', sessionId: t.sessionId });
  assert.deepEqual(fs.stat('/g').chunks, [], 'a session that commits nothing changes nothing');
});

test('a file with written chunks past the cut is truncated only by a client that removed them first', () => {
  const fs = new Fs();
  fs.create('/f');
  const mib4 = 4 * 1024 * 1024;
  const s = fs.ok({ op: 'openSession', path: '/f', truncate: false });
  fs.ok({ op: 'closeSession', sessionId: s.sessionId, lengthBytes: 3 * mib4, chunks: [0, 3] });
  fs.fails({ op: 'setattr', path: '/f', sizeBytes: mib4 + 1 }, 'EINVAL');
  fs.fails({ op: 'openSession', path: '/f', truncate: true }, 'EINVAL');
  fs.ok({ op: 'setattr', path: '/f', sizeBytes: 2 * mib4 + 5, chunksTrimmed: true });
  fs.ok({ op: 'setattr', path: '/f', sizeBytes: 2 * mib4 + 5 + 7 }); // growing needs nothing
  fs.ok({ op: 'setattr', path: '/f', sizeBytes: 2 * mib4, chunksTrimmed: true });
  fs.ok({ op: 'setattr', path: '/f', sizeBytes: 2 * mib4 - 1, chunksTrimmed: true });
  assert.deepEqual(fs.stat('/f').chunks, [0, 2]);
  fs.create('/empty');
  fs.ok({ op: 'setattr', path: '/empty', sizeBytes: 100 });
  fs.ok({ op: 'setattr', path: '/empty', sizeBytes: 1 }); // a hole: nothing was written, nothing to remove
  fs.ok({ op: 'openSession', path: '/empty', truncate: true });
});

test('registerWorker is bounded by targetsPerWorkerMax across registrations', () => {
  const fs = new Fs();
  const batch = (from: number) => Array.from({ length: 200 }, (_, i) => ({ targetId: from + i, path: `/t${from + i}`, capacityBytes: 0 }));
  fs.ok({ op: 'registerWorker', workerId: 1, instance: 'i1', address: 'h:1', domain: '', targets: batch(1) });
  fs.fails({ op: 'registerWorker', workerId: 1, instance: 'i1', address: 'h:1', domain: '', targets: batch(1001) }, 'EINVAL');
});

test('failed operations change nothing', () => {
  const fs = new Fs();
  fs.mkdir('/a/b', true);
  fs.create('/a/f');
  const twin = new Fs();
  twin.mkdir('/a/b', true);
  twin.create('/a/f');
  const bad: Body[] = [
    { op: 'rmdir', path: '/a' },
    { op: 'rename', from: '/a', to: '/a/b/c' },
    { op: 'create', path: '/a/f', mode: 0o644, uid: 0, gid: 0, exclusive: true },
    { op: 'link', existing: '/a', path: '/x' },
  ];
  for (const body of bad) {
    assert.equal(fs.run(body).ok, false);
    assert.equal(twin.run({ op: 'noop' }).ok, true);
  }
  // The same indexes applied, failures on one side and noops on the other: the namespaces match.
  assert.deepEqual(fs.state.statfs(), twin.state.statfs());
  for (const path of ['/', '/a', '/a/b', '/a/f']) assert.deepEqual(fs.stat(path), twin.stat(path));
});

test('S3 access keys: added once, listed without secrets, removed; bad keys, secrets and buckets refused', () => {
  const fs = new Fs();
  const added = fs.ok({ op: 's3UserAdd', accessKeyId: 'AKID1', secretKey: 'secret-one', buckets: ['bucket2', 'bucket1', 'bucket1'], uid: 1000, gid: 100 });
  assert.deepEqual(added, { accessKeyId: 'AKID1', buckets: ['bucket1', 'bucket2'], uid: 1000, gid: 100, createdMs: fs.nowMs });
  fs.fails({ op: 's3UserAdd', accessKeyId: 'AKID1', secretKey: 'secret-two', buckets: ['*'], uid: 0, gid: 0 }, 'EEXIST');
  const listed = fs.state.query({ op: 's3Users' });
  assert.ok(listed.ok);
  assert.ok(!JSON.stringify(listed.value).includes('secret-one'), 'a listing never shows a secret');
  const cred = fs.state.query({ op: 's3Credential', accessKeyId: 'AKID1' });
  assert.ok(cred.ok && (cred.value as { secretKey: string }).secretKey === 'secret-one');
  assert.equal(fs.ok({ op: 's3UserRemove', accessKeyId: 'AKID1' }).accessKeyId, 'AKID1');
  fs.fails({ op: 's3UserRemove', accessKeyId: 'AKID1' }, 'ENOENT');
  assert.equal(fs.state.query({ op: 's3Credential', accessKeyId: 'AKID1' }).ok, false);
  const bad = (fields: Record<string, unknown>): string => {
    try {
      validateCommand({ op: 's3UserAdd', clientId: 'c', seq: 1, nowMs: 1, accessKeyId: 'AKID2', secretKey: 'secret-two', buckets: ['*'], uid: 0, gid: 0, ...fields });
      return 'accepted';
    } catch (err) {
      return (err as Error).message;
    }
  };
  assert.equal(bad({}), 'accepted');
  assert.match(bad({ secretKey: '' }), /secretKey/);
  assert.match(bad({ secretKey: 'short' }), /8 to 128 printable/);
  assert.match(bad({ secretKey: 'has a space' }), /8 to 128 printable/);
  assert.match(bad({ accessKeyId: 'a/b' }), /accessKeyId/);
  assert.match(bad({ buckets: [] }), /at least one bucket/);
  assert.match(bad({ buckets: ['*', 'bucket1'] }), /not both/);
  assert.match(bad({ buckets: ['UPPER'] }), /bucket name/);
  assert.match(bad({ buckets: ['..'] }), /bucket name/);
});

test('extended attributes: user.* only, setxattr(2) flags, permissions, bounds; kept through a rename', () => {
  const fs = new Fs();
  fs.create('/f');
  const bob = { uid: 1001, gid: 1001, groups: [] };
  const v = (s: string): Uint8Array => Buffer.from(s);
  const get = (path: string, name: string, caller = rootCaller) => fs.state.query({ op: 'getxattr', path, name, caller });
  fs.ok({ op: 'setxattr', path: '/f', name: 'user.k', value: v('one'), flags: 0 });
  fs.fails({ op: 'setxattr', path: '/f', name: 'user.k', value: v('two'), flags: 1 }, 'EEXIST');
  fs.fails({ op: 'setxattr', path: '/f', name: 'user.other', value: v('x'), flags: 2 }, 'ENODATA');
  fs.ok({ op: 'setxattr', path: '/f', name: 'user.k', value: v('two'), flags: 2 });
  const got = get('/f', 'user.k');
  assert.ok(got.ok && Buffer.from(got.value as Uint8Array).toString() === 'two');
  // Another user: the file is 0644, so bob reads and may not write.
  assert.equal(get('/f', 'user.k', bob).ok, true);
  fs.fails({ op: 'setxattr', path: '/f', name: 'user.k', value: v('bob'), flags: 0, caller: bob }, 'EACCES');
  fs.fails({ op: 'removexattr', path: '/f', name: 'user.k', caller: bob }, 'EACCES');
  // The bound on all of an inode's attributes together.
  fs.ok({ op: 'setxattr', path: '/f', name: 'user.big1', value: new Uint8Array(16 * 1024), flags: 0 });
  fs.ok({ op: 'setxattr', path: '/f', name: 'user.big2', value: new Uint8Array(16 * 1024), flags: 0 });
  fs.ok({ op: 'setxattr', path: '/f', name: 'user.big3', value: new Uint8Array(16 * 1024), flags: 0 });
  fs.fails({ op: 'setxattr', path: '/f', name: 'user.big4', value: new Uint8Array(16 * 1024), flags: 0 }, 'E2BIG');
  fs.ok({ op: 'rename', from: '/f', to: '/g' });
  assert.deepEqual(fs.state.query({ op: 'listxattr', path: '/g', caller: rootCaller }), { ok: true, value: ['user.big1', 'user.big2', 'user.big3', 'user.k'] });
  fs.ok({ op: 'removexattr', path: '/g', name: 'user.k' });
  fs.fails({ op: 'removexattr', path: '/g', name: 'user.k' }, 'ENODATA');
  assert.equal((get('/g', 'user.k') as { code?: string }).code, 'ENODATA');
  fs.ok({ op: 'symlink', path: '/s', target: 'g', uid: 0, gid: 0 });
  fs.fails({ op: 'setxattr', path: '/s', name: 'user.k', value: v('x'), flags: 0 }, 'EPERM');
  // At the boundary: other namespaces and oversize values are refused before the log.
  const refused = (name: string, value: Uint8Array): string => {
    try {
      validateCommand({ op: 'setxattr', clientId: 'c', seq: 1, nowMs: 1, caller: rootCaller, path: '/g', name, value, flags: 0 });
      return 'accepted';
    } catch (err) {
      return (err as { code: string }).code;
    }
  };
  assert.equal(refused('user.ok', v('x')), 'accepted');
  assert.equal(refused('security.capability', v('x')), 'EINVAL');
  assert.equal(refused('user.', v('x')), 'EINVAL');
  assert.equal(refused('user.big', new Uint8Array(16 * 1024 + 1)), 'E2BIG');
  fs.checkInvariants();
});

test('readdir plus: sizes, times, emptiness and one extended attribute per entry, where the caller may read it', () => {
  const fs = new Fs();
  fs.mkdir('/d');
  fs.mkdir('/d/sub');
  fs.create('/d/f');
  fs.ok({ op: 'setattr', path: '/d/f', sizeBytes: 42 });
  fs.ok({ op: 'setxattr', path: '/d/f', name: 'user.s3', value: Buffer.from('meta'), flags: 0 });
  fs.create('/d/secret');
  fs.ok({ op: 'setattr', path: '/d/secret', mode: 0o600 });
  fs.ok({ op: 'setxattr', path: '/d/secret', name: 'user.s3', value: Buffer.from('hidden'), flags: 0 });
  const bob = { uid: 1001, gid: 1001, groups: [] };
  const page = fs.state.query({ op: 'readdir', path: '/d', limit: 10, plus: true, xattr: 'user.s3', caller: bob });
  assert.ok(page.ok);
  const entries = (page.value as { entries: Record<string, unknown>[] }).entries;
  assert.deepEqual(entries.map((e) => [e.name, e.sizeBytes, e.empty, e.xattr === undefined ? undefined : Buffer.from(e.xattr as Uint8Array).toString()]), [
    ['f', 42, undefined, 'meta'],
    ['secret', 0, undefined, undefined],
    ['sub', 0, true, undefined],
  ]);
  const plain = fs.state.query({ op: 'readdir', path: '/d', limit: 10, caller: rootCaller });
  assert.ok(plain.ok && (plain.value as { entries: object[] }).entries.every((e) => !('sizeBytes' in e)));
  assert.throws(() => validateQuery({ op: 'readdir', path: '/d', limit: 1, xattr: 'user.s3', caller: rootCaller }), /'xattr' needs 'plus'/);
});

test('readdir attrs: each entry with its attributes as stat answers them, less a file\'s list of written chunks', () => {
  const fs = new Fs();
  fs.mkdir('/d');
  fs.mkdir('/d/sub');
  fs.create('/d/f');
  fs.ok({ op: 'setattr', path: '/d/f', sizeBytes: 42, mode: 0o640 });
  fs.ok({ op: 'symlink', path: '/d/l', target: 'f', uid: 0, gid: 0 });
  const query = validateQuery({ op: 'readdir', path: '/d', limit: 2, attrs: true, caller: rootCaller });
  const first = fs.state.query(query);
  assert.ok(first.ok);
  const page = first.value as { entries: { name: string; attr?: unknown }[]; next?: string };
  const rest = fs.state.query({ ...query, after: page.next } as typeof query);
  assert.ok(rest.ok);
  const entries = [...page.entries, ...(rest.value as typeof page).entries];
  assert.deepEqual(entries.map((e) => e.name), ['f', 'l', 'sub']);
  for (const e of entries) {
    const stat = fs.state.query({ op: 'stat', path: `/d/${e.name}`, caller: rootCaller });
    assert.ok(stat.ok);
    const { chunks, ...rest } = stat.value as { chunks?: unknown };
    assert.deepEqual(e.attr, rest, e.name);
    assert.equal(e.name === 'f', chunks !== undefined, 'stat lists a file\'s chunks');
  }
});

test('stat and open with one extended attribute: its value with the attributes, only where the caller may read it', () => {
  const fs = new Fs();
  fs.create('/f');
  fs.ok({ op: 'setxattr', path: '/f', name: 'user.s3', value: Buffer.from('meta'), flags: 0 });
  const withIt = fs.state.query({ op: 'open', path: '/f', xattr: 'user.s3', caller: rootCaller });
  assert.ok(withIt.ok && Buffer.from((withIt.value as { xattr: Uint8Array }).xattr).toString() === 'meta');
  const other = fs.state.query({ op: 'stat', path: '/f', xattr: 'user.none', caller: rootCaller });
  assert.ok(other.ok && !('xattr' in (other.value as object)));
  fs.ok({ op: 'setattr', path: '/f', mode: 0o600 });
  const bob = fs.state.query({ op: 'stat', path: '/f', xattr: 'user.s3', caller: { uid: 1001, gid: 1001, groups: [] } });
  assert.ok(bob.ok && !('xattr' in (bob.value as object)), 'not readable by another user');
  assert.throws(() => validateQuery({ op: 'stat', path: '/f', xattr: 'trusted.x', caller: rootCaller }), /user\.\*/);
});

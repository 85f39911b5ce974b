// Tests of rename in MetaState: the POSIX matrix of source and target types, replacement and
// link counts, moves across directories, the no-cycle rule, and no-op renames.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { FsErrorCode, InodeAttr, RenameValue } from '../../src/meta/index.ts';
import { MetaFs } from '../meta-fs.ts';

class Fs extends MetaFs {
  constructor() {
    super({ clientId: 'c', stepMs: 10 });
  }

  mkdir(path: string): InodeAttr {
    return this.ok({ op: 'mkdir', path, mode: 0o755, uid: 0, gid: 0, parents: true });
  }

  create(path: string): InodeAttr {
    return this.ok({ op: 'create', path, mode: 0o644, uid: 0, gid: 0, exclusive: true }).inode;
  }

  rename(from: string, to: string): RenameValue {
    return this.ok({ op: 'rename', from, to });
  }

  renameFails(from: string, to: string, code: FsErrorCode): void {
    this.fails({ op: 'rename', from, to }, code);
  }

  exists(path: string): boolean {
    return this.state.stat(path, this.caller).ok;
  }
}

test('a file moves within a directory and across directories, keeping its inode', () => {
  const fs = new Fs();
  fs.mkdir('/a');
  fs.mkdir('/b');
  const f = fs.create('/a/f');
  assert.deepEqual(fs.rename('/a/f', '/a/g'), { inodeId: f.inodeId, replaced: null });
  assert.equal(fs.exists('/a/f'), false);
  assert.equal(fs.stat('/a/g').inodeId, f.inodeId);
  fs.rename('/a/g', '/b/h');
  assert.equal(fs.stat('/b/h').inodeId, f.inodeId);
  assert.equal(fs.stat('/b/h').ctimeMs, fs.nowMs, 'rename stamps the ctime of what moved');
  assert.equal(fs.stat('/a').mtimeMs, fs.nowMs);
  assert.equal(fs.stat('/b').mtimeMs, fs.nowMs);
  assert.equal(fs.stat('/a').nlink, 2, 'moving a file leaves directory link counts alone');
  fs.checkInvariants();
});

test('a directory moves with its subtree; parent pointers and link counts follow', () => {
  const fs = new Fs();
  fs.mkdir('/a/x/y');
  fs.mkdir('/b');
  fs.create('/a/x/y/f');
  const x = fs.stat('/a/x');
  fs.rename('/a/x', '/b/x2');
  assert.equal(fs.stat('/b/x2').inodeId, x.inodeId);
  assert.equal(fs.stat('/b/x2').parentId, fs.stat('/b').inodeId);
  assert.equal(fs.stat('/a').nlink, 2);
  assert.equal(fs.stat('/b').nlink, 3);
  assert.equal(fs.stat('/b/x2/y/f').type, 'file');
  fs.checkInvariants();
});

test('file over file replaces it and drops one link of the victim', () => {
  const fs = new Fs();
  const f = fs.create('/f');
  const g = fs.create('/g');
  const r = fs.rename('/f', '/g');
  assert.deepEqual(r, { inodeId: f.inodeId, replaced: { inodeId: g.inodeId, nlink: 0, pendingGc: true } });
  assert.equal(fs.stat('/g').inodeId, f.inodeId);
  assert.deepEqual(fs.state.pendingGc(10).map((e) => e.inodeId), [g.inodeId]);
  // A victim with another name survives with one link less.
  const h = fs.create('/h');
  fs.run({ op: 'link', existing: '/h', path: '/h2' });
  assert.equal(fs.stat('/h').nlink, 2);
  assert.deepEqual(fs.rename('/g', '/h').replaced, { inodeId: h.inodeId, nlink: 1, pendingGc: false });
  assert.equal(fs.stat('/h2').nlink, 1);
  assert.equal(fs.state.statfs().files, 2);
  fs.checkInvariants();
});

test('a file replaced while open becomes an orphan', () => {
  const fs = new Fs();
  fs.create('/f');
  const g = fs.create('/g');
  fs.run({ op: 'openSession', path: '/g', sessionId: 's', truncate: false });
  assert.deepEqual(fs.rename('/f', '/g').replaced, { inodeId: g.inodeId, nlink: 0, pendingGc: false });
  assert.equal(fs.state.statfs().orphans, 1);
  fs.checkInvariants();
});

test('directory over an empty directory replaces it; over a non-empty one is ENOTEMPTY', () => {
  const fs = new Fs();
  fs.mkdir('/a/sub');
  fs.mkdir('/b');
  fs.mkdir('/full/child');
  const a = fs.stat('/a');
  const b = fs.stat('/b');
  assert.deepEqual(fs.rename('/a', '/b'), { inodeId: a.inodeId, replaced: { inodeId: b.inodeId, nlink: 0, pendingGc: false } });
  assert.equal(fs.stat('/b').inodeId, a.inodeId);
  assert.equal(fs.state.statInode(b.inodeId).ok, false);
  assert.equal(fs.stat('/').nlink, 4, 'root holds b and full');
  fs.renameFails('/b', '/full', 'ENOTEMPTY');
  fs.checkInvariants();
});

test('type mismatches: file over directory is EISDIR, directory over file is ENOTDIR', () => {
  const fs = new Fs();
  fs.mkdir('/d');
  fs.mkdir('/e');
  fs.create('/f');
  fs.renameFails('/f', '/d', 'EISDIR');
  fs.renameFails('/d', '/f', 'ENOTDIR');
  fs.run({ op: 'symlink', path: '/s', target: '/d', uid: 0, gid: 0 });
  fs.renameFails('/d', '/s', 'ENOTDIR');
  fs.renameFails('/s', '/e', 'EISDIR');
  fs.rename('/s', '/f');
  assert.equal(fs.stat('/f').type, 'symlink');
  fs.checkInvariants();
});

test('a directory cannot move into its own subtree (EINVAL), however deep', () => {
  const fs = new Fs();
  fs.mkdir('/a/b/c/d');
  fs.renameFails('/a', '/a/x', 'EINVAL');
  fs.renameFails('/a', '/a/b/c/d/x', 'EINVAL');
  fs.renameFails('/a/b', '/a/b/c/b', 'EINVAL');
  fs.renameFails('/a/b/c', '/a/b/c/d', 'EINVAL');
  // Onto an ancestor: the ancestor is not empty.
  fs.renameFails('/a/b/c', '/a/b', 'ENOTEMPTY');
  fs.renameFails('/a/b/c', '/a', 'ENOTEMPTY');
  // Sideways and upwards is fine.
  fs.rename('/a/b/c/d', '/a/d');
  fs.rename('/a/b/c', '/c');
  assert.deepEqual([fs.stat('/c').parentId, fs.stat('/a/d').parentId], [1, fs.stat('/a').inodeId]);
  fs.checkInvariants();
});

test('renaming onto itself or onto another link of the same file does nothing', () => {
  const fs = new Fs();
  fs.mkdir('/d');
  const f = fs.create('/d/f');
  const before = fs.stat('/d/f');
  assert.deepEqual(fs.rename('/d/f', '/d/f'), { inodeId: f.inodeId, replaced: null });
  assert.deepEqual(fs.rename('/d', '/d'), { inodeId: fs.stat('/d').inodeId, replaced: null });
  assert.deepEqual(fs.stat('/d/f'), before, 'nothing changed, not even ctime');
  fs.run({ op: 'link', existing: '/d/f', path: '/d/g' });
  fs.rename('/d/f', '/d/g');
  assert.equal(fs.exists('/d/f'), true, 'POSIX: both names stay');
  assert.equal(fs.stat('/d/g').nlink, 2);
  fs.checkInvariants();
});

test('rename errors for missing sources, missing or non-directory target parents, and the root', () => {
  const fs = new Fs();
  fs.mkdir('/d');
  fs.create('/f');
  fs.renameFails('/nope', '/x', 'ENOENT');
  fs.renameFails('/nope/a', '/x', 'ENOENT');
  fs.renameFails('/f/a', '/x', 'ENOTDIR');
  fs.renameFails('/f', '/nope/x', 'ENOENT');
  fs.renameFails('/f', '/f/x', 'ENOTDIR');
  fs.renameFails('/', '/x', 'EINVAL');
  fs.renameFails('/d', '/', 'EINVAL');
  fs.checkInvariants();
});

test('property: random renames among random trees keep the tree sound (no cycles, right link counts)', () => {
  const names = ['a', 'b', 'c'];
  const path = fc.array(fc.constantFrom(...names), { minLength: 1, maxLength: 4 }).map((p) => `/${p.join('/')}`);
  const op = fc.oneof(
    fc.record({ kind: fc.constant('mkdir'), p: path }),
    fc.record({ kind: fc.constant('create'), p: path }),
    fc.record({ kind: fc.constant('rename'), p: path, q: path }),
    fc.record({ kind: fc.constant('rmdir'), p: path }),
    fc.record({ kind: fc.constant('unlink'), p: path }),
  );
  fc.assert(
    fc.property(fc.array(op, { minLength: 1, maxLength: 60 }), (ops) => {
      const fs = new Fs();
      for (const o of ops) {
        if (o.kind === 'mkdir') fs.run({ op: 'mkdir', path: o.p, mode: 0o755, uid: 0, gid: 0, parents: true });
        else if (o.kind === 'create') fs.run({ op: 'create', path: o.p, mode: 0o644, uid: 0, gid: 0, exclusive: false });
        else if (o.kind === 'rename' && 'q' in o) {
          const from = fs.state.stat(o.p, fs.caller);
          const r = fs.run({ op: 'rename', from: o.p, to: o.q });
          if (r.ok && from.ok && from.value.type === 'dir' && o.q !== o.p) {
            assert.ok(!o.q.startsWith(`${o.p}/`), `moved ${o.p} into itself at ${o.q}`);
          }
        } else fs.run({ op: o.kind, path: o.p });
      }
      fs.checkInvariants();
    }),
    { numRuns: 200 },
  );
});

test('a rename that names the inode it replaces (0: none) takes place only if the target is that one now', () => {
  const fs = new Fs();
  const a = fs.create('/a');
  fs.create('/b');
  const c = fs.create('/c');
  // Nothing may be there: RENAME_NOREPLACE.
  fs.fails({ op: 'rename', from: '/a', to: '/c', replacing: 0 }, 'EEXIST');
  fs.ok({ op: 'rename', from: '/a', to: '/d', replacing: 0 });
  // Another inode than the one named, or none: EAGAIN, and both names stay as they were.
  fs.fails({ op: 'rename', from: '/d', to: '/c', replacing: c.inodeId + 100 }, 'EAGAIN');
  fs.fails({ op: 'rename', from: '/d', to: '/e', replacing: c.inodeId }, 'EAGAIN');
  assert.ok(fs.exists('/d') && fs.exists('/c') && !fs.exists('/e'));
  // The one named: replaced.
  assert.equal(fs.ok({ op: 'rename', from: '/d', to: '/c', replacing: c.inodeId }).inodeId, a.inodeId);
  assert.ok(!fs.exists('/d'));
});

// Tests of the permission checks of MetaState on the caller a request presents: search on every
// directory of a path, write and search on the parent for changes, the sticky bit, read and write
// for opening and truncating, the owner-only chmod, chown and times, groups, root's bypass. Every
// refusal is checked to change nothing: the state's hash equals that of a twin that never saw it.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MetaState, rootCaller } from '../../src/meta/index.ts';
import type { Caller, InodeAttr, MetaCommand, MetaQuery, MetaValues, ResultErrorCode } from '../../src/meta/index.ts';
import { MetaFs, type Body } from '../meta-fs.ts';

const root = rootCaller;
const alice: Caller = { uid: 1000, gid: 100, groups: [] };
/** In alice's group. */
const bob: Caller = { uid: 1001, gid: 100, groups: [] };
/** In neither's group; in group 300 through a supplementary group. */
const carol: Caller = { uid: 1002, gid: 200, groups: [300] };

type NsBody = Body & { caller?: Caller };
/** A namespace query without its caller. */
type NsQuery = MetaQuery extends infer Q ? (Q extends { caller: Caller } ? Omit<Q, 'caller'> : never) : never;

/**
 * A namespace that root builds:
 *   /home 0755 0:0, /home/alice 0750 alice:100 with notes (0640) and private/ (0700) holding key (0600),
 *   /shared 0775 0:100, /tmp 1777 0:0 with a (alice's) and b (bob's), /proj 0770 0:300 with plan (0660 0:300),
 *   /ro 0444 alice:100.
 * One client record at most (clientsMax 1), so that a twin that skips a command can match the hash.
 */
class World extends MetaFs {
  constructor() {
    super({ clientId: 'setup', stepMs: 10, state: new MetaState({ clientsMax: 1 }) });
    this.dir('/home', 0o755, root);
    this.dir('/home/alice', 0o750, alice);
    this.file('/home/alice/notes', 0o640, alice);
    this.dir('/home/alice/private', 0o700, alice);
    this.file('/home/alice/private/key', 0o600, alice);
    this.dir('/shared', 0o775, { uid: 0, gid: 100, groups: [] });
    this.dir('/tmp', 0o1777, root);
    this.file('/tmp/a', 0o644, alice);
    this.file('/tmp/b', 0o644, bob);
    this.dir('/proj', 0o770, { uid: 0, gid: 300, groups: [] });
    this.file('/proj/plan', 0o660, { uid: 0, gid: 300, groups: [] });
    this.file('/ro', 0o444, alice);
  }

  /** As root, owned by `owner`'s uid and gid. */
  dir(path: string, mode: number, owner: Caller): void {
    this.ok({ op: 'mkdir', path, mode, uid: owner.uid, gid: owner.gid, parents: false, caller: root });
  }

  file(path: string, mode: number, owner: Caller): void {
    this.ok({ op: 'create', path, mode, uid: owner.uid, gid: owner.gid, exclusive: true, caller: root });
  }

  /** Applies `body` as `caller` and returns its value; it must succeed. */
  as<K extends keyof MetaValues>(caller: Caller, body: NsBody & { op: K }): MetaValues[K] {
    const r = this.run({ ...body, caller } as Body);
    assert.ok(r.ok, `${body.op} as uid ${caller.uid} failed: ${r.ok ? '' : `${r.code} ${r.message}`}`);
    return r.value as MetaValues[K];
  }

  /**
   * Applies `body` as `caller`: it must fail with `code` and change nothing. A twin restored from
   * the state before it gets a noop in its place; after the next command (from another client,
   * which evicts the refused one's record) both must hash the same.
   */
  refused(caller: Caller, body: NsBody, code: ResultErrorCode, why = ''): string {
    const twin = MetaState.restore(this.state.snapshot());
    this.nowMs += this.stepMs;
    const r = this.state.apply(++this.index, { ...body, caller, clientId: 'refused', seq: 1, nowMs: this.nowMs } as MetaCommand);
    assert.ok(!r.ok, `${body.op} as uid ${caller.uid} should fail with ${code} ${why}`);
    assert.equal(r.code, code, `${r.message} ${why}`);
    if (code === 'EACCES') assert.match(r.message, /^permission denied: uid \d+ \(gid \d+.*\) has no .* permission on '.+' \(mode \d{4}, owner \d+:\d+\)$/);
    if (code === 'EPERM') assert.match(r.message, /^operation not permitted: (?=.*'\/.*').*not uid \d+ \(gid \d+/);
    this.nowMs += this.stepMs;
    const next: MetaCommand = { op: 'noop', clientId: `after-${this.index}`, seq: 1, nowMs: this.nowMs };
    this.state.apply(++this.index, next);
    twin.apply(this.index, next);
    assert.equal(this.state.stateHash(), twin.stateHash(), `a refused ${body.op} changed the state`);
    return r.message;
  }

  query(caller: Caller, q: NsQuery): ResultErrorCode | 'ok' {
    const r = this.state.query({ ...q, caller } as MetaQuery);
    return r.ok ? 'ok' : r.code;
  }

  attr(path: string): InodeAttr {
    return this.stat(path);
  }
}

test('search permission on every directory of the path, and nothing leaks past one without it', () => {
  const w = new World();
  for (const who of [alice, bob]) assert.equal(w.query(who, { op: 'stat', path: '/home/alice/notes' }), 'ok');
  assert.equal(w.query(carol, { op: 'stat', path: '/home/alice/notes' }), 'EACCES', 'others have no search on /home/alice');
  assert.equal(w.query(carol, { op: 'stat', path: '/home/alice/nothing' }), 'EACCES', 'EACCES, not ENOENT: a name is not probed');
  assert.equal(w.query(carol, { op: 'stat', path: '/home/alice' }), 'ok', 'stat needs search on the directories above only');
  assert.equal(w.query(bob, { op: 'stat', path: '/home/alice/private/key' }), 'EACCES');
  assert.equal(w.query(bob, { op: 'readlink', path: '/home/alice/private/key' }), 'EACCES');
  assert.equal(w.query(bob, { op: 'stat', path: '/home/alice/private' }), 'ok');
  const aliceDir = w.attr('/home/alice').inodeId;
  assert.equal(w.query(bob, { op: 'lookup', parentId: aliceDir, name: 'notes' }), 'ok');
  assert.equal(w.query(carol, { op: 'lookup', parentId: aliceDir, name: 'notes' }), 'EACCES');
  assert.equal(w.query(carol, { op: 'statInode', inodeId: w.attr('/home/alice/notes').inodeId }), 'ok', 'an inode id is not a path: nothing to search');
  const message = w.refused(carol, { op: 'create', path: '/home/alice/x', mode: 0o644, uid: carol.uid, gid: carol.gid, exclusive: true }, 'EACCES');
  assert.match(message, /uid 1002 .* no search permission on '\/home\/alice' \(mode 0750, owner 1000:100\)/);
  w.refused(carol, { op: 'unlink', path: '/home/alice/notes' }, 'EACCES');
  w.refused(bob, { op: 'setattr', path: '/home/alice/private/key', timesNow: true }, 'EACCES');
  w.refused(bob, { op: 'rename', from: '/tmp/b', to: '/home/alice/private/b' }, 'EACCES');
  w.refused(carol, { op: 'link', existing: '/home/alice/notes', path: '/tmp/n' }, 'EACCES');
  w.refused(bob, { op: 'mkdir', path: '/home/alice/private/x/y', mode: 0o755, uid: bob.uid, gid: bob.gid, parents: true }, 'EACCES');
  w.checkInvariants();
});

test('creating needs write and search on the parent; an existing name answers EEXIST first, as Linux does', () => {
  const w = new World();
  const mine = { uid: bob.uid, gid: bob.gid };
  assert.match(w.refused(bob, { op: 'create', path: '/home/alice/x', mode: 0o644, ...mine, exclusive: true }, 'EACCES'), /uid 1001 \(gid 100\) has no write and search permission on '\/home\/alice'/);
  w.refused(bob, { op: 'mkdir', path: '/home/alice/x', mode: 0o755, ...mine, parents: false }, 'EACCES');
  w.refused(bob, { op: 'symlink', path: '/home/alice/x', target: 'y', ...mine }, 'EACCES');
  w.refused(bob, { op: 'link', existing: '/tmp/b', path: '/home/alice/x' }, 'EACCES');
  w.refused(carol, { op: 'create', path: '/shared/x', mode: 0o644, uid: carol.uid, gid: carol.gid, exclusive: true }, 'EACCES');
  w.refused(bob, { op: 'mkdir', path: '/home/alice/notes', mode: 0o755, ...mine, parents: false }, 'EEXIST');
  w.refused(bob, { op: 'symlink', path: '/home/alice/notes', target: 'y', ...mine }, 'EEXIST');
  assert.equal(w.as(bob, { op: 'create', path: '/home/alice/notes', mode: 0o644, ...mine, exclusive: false }).created, false, 'a create that finds the file creates nothing: no write needed');
  assert.equal(w.as(bob, { op: 'create', path: '/shared/x', mode: 0o644, ...mine, exclusive: true }).inode.uid, bob.uid, 'group 100 may write /shared');
  w.as(bob, { op: 'mkdir', path: '/shared/d', mode: 0o755, ...mine, parents: false });
  w.as(bob, { op: 'symlink', path: '/shared/s', target: '/tmp/b', ...mine });
  w.as(bob, { op: 'link', existing: '/home/alice/notes', path: '/shared/n' });
  w.as(alice, { op: 'create', path: '/home/alice/x', mode: 0o644, uid: alice.uid, gid: alice.gid, exclusive: true });
  w.checkInvariants();
});

test('a new entry is owned by its caller: only root may name another uid, or a group it is not in', () => {
  const w = new World();
  w.refused(alice, { op: 'create', path: '/shared/f', mode: 0o644, uid: bob.uid, gid: 100, exclusive: true }, 'EPERM');
  w.refused(alice, { op: 'mkdir', path: '/shared/d', mode: 0o755, uid: alice.uid, gid: 300, parents: false }, 'EPERM');
  w.refused(alice, { op: 'symlink', path: '/shared/s', target: 't', uid: 0, gid: 0 }, 'EPERM');
  assert.equal(w.as(carol, { op: 'create', path: '/proj/c', mode: 0o644, uid: carol.uid, gid: 300, exclusive: true }).inode.gid, 300, 'a supplementary group');
  assert.equal(w.as(carol, { op: 'create', path: '/proj/d', mode: 0o644, uid: carol.uid, gid: carol.gid, exclusive: true }).inode.gid, 200);
  assert.equal(w.as(root, { op: 'create', path: '/shared/g', mode: 0o644, uid: 4242, gid: 4343, exclusive: true }).inode.uid, 4242, 'root gives to anyone');
});

test('mkdir -p: the directories it makes on the way get owner write and search, and a refused one makes none', () => {
  const w = new World();
  const made = w.as(alice, { op: 'mkdir', path: '/home/alice/a/b/c', mode: 0o500, uid: alice.uid, gid: alice.gid, parents: true });
  assert.equal(made.mode, 0o500, 'the last one has the mode asked for');
  assert.equal(w.attr('/home/alice/a').mode, 0o700);
  assert.equal(w.attr('/home/alice/a/b').mode, 0o700);
  const before = w.state.statfs().dirs;
  w.refused(carol, { op: 'mkdir', path: '/shared/q/r', mode: 0o755, uid: carol.uid, gid: carol.gid, parents: true }, 'EACCES');
  w.refused(alice, { op: 'mkdir', path: '/home/alice/a/b/c/d/e', mode: 0o755, uid: alice.uid, gid: alice.gid, parents: true }, 'EACCES');
  assert.equal(w.state.statfs().dirs, before);
  assert.equal(w.as(bob, { op: 'mkdir', path: '/home/alice/a', mode: 0o755, uid: bob.uid, gid: bob.gid, parents: true }).inodeId, w.attr('/home/alice/a').inodeId, 'an existing directory needs no write');
});

test('unlink and rmdir need write and search on the parent, checked before the type', () => {
  const w = new World();
  w.refused(bob, { op: 'unlink', path: '/home/alice/notes' }, 'EACCES');
  w.refused(bob, { op: 'rmdir', path: '/home/alice/private' }, 'EACCES');
  w.refused(bob, { op: 'unlink', path: '/home/alice/private' }, 'EACCES');
  w.refused(bob, { op: 'unlink', path: '/home/alice/gone' }, 'ENOENT');
  w.refused(alice, { op: 'unlink', path: '/home/alice/private' }, 'EISDIR');
  w.as(alice, { op: 'unlink', path: '/home/alice/private/key' });
  w.as(alice, { op: 'rmdir', path: '/home/alice/private' });
  w.as(alice, { op: 'unlink', path: '/home/alice/notes' });
  w.as(bob, { op: 'mkdir', path: '/shared/d', mode: 0o700, uid: bob.uid, gid: bob.gid, parents: false });
  w.as(alice, { op: 'rmdir', path: '/shared/d' });
  w.checkInvariants();
});

test('the sticky bit: only the entry\'s owner, the directory\'s owner or root removes or renames an entry', () => {
  const w = new World();
  assert.match(w.refused(bob, { op: 'unlink', path: '/tmp/a' }, 'EPERM'), /sticky directory and belongs to uid 1000/);
  w.refused(bob, { op: 'rename', from: '/tmp/a', to: '/tmp/c' }, 'EPERM');
  w.refused(bob, { op: 'rename', from: '/tmp/a', to: '/shared/a' }, 'EPERM');
  w.refused(alice, { op: 'rename', from: '/tmp/a', to: '/tmp/b' }, 'EPERM', 'replacing bob\'s entry is removing it');
  w.refused(bob, { op: 'rename', from: '/tmp/b', to: '/tmp/a' }, 'EPERM');
  w.as(alice, { op: 'rename', from: '/tmp/a', to: '/tmp/c' });
  w.as(root, { op: 'unlink', path: '/tmp/b' });
  w.as(alice, { op: 'unlink', path: '/tmp/c' });
  // The directory's owner may remove anything in it.
  w.dir('/tmp/bobs', 0o1777, bob);
  w.as(alice, { op: 'create', path: '/tmp/bobs/f', mode: 0o644, uid: alice.uid, gid: alice.gid, exclusive: true });
  w.refused(carol, { op: 'unlink', path: '/tmp/bobs/f' }, 'EPERM');
  w.as(bob, { op: 'unlink', path: '/tmp/bobs/f' });
  // Without the sticky bit, write on the directory is enough.
  w.as(root, { op: 'setattr', path: '/tmp', mode: 0o777 });
  w.file('/tmp/x', 0o600, alice);
  w.as(bob, { op: 'unlink', path: '/tmp/x' });
  w.checkInvariants();
});

test('rename needs write and search on both parents, and write on a directory that changes parent', () => {
  const w = new World();
  w.refused(bob, { op: 'rename', from: '/shared', to: '/x' }, 'EACCES');
  w.refused(bob, { op: 'rename', from: '/tmp/b', to: '/home/alice/b' }, 'EACCES');
  w.refused(bob, { op: 'rename', from: '/home/alice/notes', to: '/shared/notes' }, 'EACCES');
  w.refused(carol, { op: 'rename', from: '/home/alice/notes', to: '/tmp/notes' }, 'EACCES');
  w.as(bob, { op: 'mkdir', path: '/shared/d', mode: 0o555, uid: bob.uid, gid: bob.gid, parents: false });
  w.as(bob, { op: 'mkdir', path: '/shared/e', mode: 0o755, uid: bob.uid, gid: bob.gid, parents: false });
  assert.match(w.refused(bob, { op: 'rename', from: '/shared/d', to: '/shared/e/d' }, 'EACCES'), /no write permission on '\/shared\/d'/);
  w.as(bob, { op: 'rename', from: '/shared/d', to: '/shared/f' });
  w.as(alice, { op: 'rename', from: '/home/alice/notes', to: '/shared/notes' });
  w.as(bob, { op: 'rename', from: '/shared/notes', to: '/shared/e/notes' });
  // A rename onto another link of itself does nothing, and Linux answers it before any check.
  w.as(alice, { op: 'link', existing: '/shared/e/notes', path: '/home/alice/again' });
  assert.equal(w.as(bob, { op: 'rename', from: '/shared/e/notes', to: '/home/alice/again' }).replaced, null, 'bob may not write /home/alice');
  w.checkInvariants();
});

test('readdir needs read permission on the directory; search alone lists nothing', () => {
  const w = new World();
  assert.equal(w.query(bob, { op: 'readdir', path: '/home/alice', limit: 10 }), 'ok');
  const listing = w.state.readdir('/home/alice', { limit: 10 }, carol);
  assert.match(listing.ok ? '' : listing.message, /^permission denied: uid 1002 \(gid 200, groups 300\) has no read permission on '\/home\/alice' \(mode 0750, owner 1000:100\)$/);
  w.as(alice, { op: 'mkdir', path: '/home/alice/drop', mode: 0o733, uid: alice.uid, gid: alice.gid, parents: false });
  w.as(bob, { op: 'create', path: '/home/alice/drop/f', mode: 0o644, uid: bob.uid, gid: bob.gid, exclusive: true });
  assert.equal(w.query(bob, { op: 'readdir', path: '/home/alice/drop', limit: 10 }), 'EACCES', 'write and search, no read');
  assert.equal(w.query(bob, { op: 'stat', path: '/home/alice/drop/f' }), 'ok', 'a known name is still reached');
  assert.equal(w.query(alice, { op: 'readdir', path: '/home/alice/drop', limit: 10 }), 'ok');
  assert.equal(w.query(alice, { op: 'readdir', path: '/home/alice/nothing', limit: 10 }), 'ENOENT');
});

test('open for reading needs read; a writer\'s session, truncating or not, needs write', () => {
  const w = new World();
  assert.equal(w.query(bob, { op: 'open', path: '/home/alice/notes' }), 'ok', 'group read');
  assert.equal(w.query(bob, { op: 'open', path: '/home/alice/private/key' }), 'EACCES');
  assert.equal(w.query(carol, { op: 'open', path: '/ro' }), 'ok', 'others read 0444');
  assert.equal(w.query(alice, { op: 'open', path: '/home/alice' }), 'EISDIR');
  w.as(root, { op: 'setattr', path: '/ro', mode: 0o200 });
  assert.equal(w.query(alice, { op: 'open', path: '/ro' }), 'EACCES', 'write-only');
  assert.equal(w.query(root, { op: 'open', path: '/ro' }), 'ok');
  w.refused(bob, { op: 'openSession', path: '/home/alice/notes', truncate: false }, 'EACCES');
  w.refused(bob, { op: 'openSession', path: '/home/alice/notes', truncate: true }, 'EACCES');
  w.as(root, { op: 'setattr', path: '/ro', mode: 0o444 });
  w.refused(alice, { op: 'openSession', path: '/ro', truncate: false }, 'EACCES');
  const s = w.as(alice, { op: 'openSession', path: '/home/alice/notes', truncate: false });
  w.as(carol, { op: 'openSession', path: '/proj/plan', truncate: false });
  // Closing checks nothing: the session was checked when it opened.
  w.as(carol, { op: 'closeSession', sessionId: s.sessionId, lengthBytes: 10 });
  assert.equal(w.attr('/home/alice/notes').sizeBytes, 10);
});

test('truncating (setattr size) and committing a length need write permission', () => {
  const w = new World();
  w.refused(bob, { op: 'setattr', path: '/home/alice/notes', sizeBytes: 0 }, 'EACCES');
  w.refused(carol, { op: 'setattr', path: '/ro', sizeBytes: 5 }, 'EACCES');
  w.refused(alice, { op: 'setattr', path: '/home/alice', sizeBytes: 5 }, 'EISDIR');
  w.refused(bob, { op: 'commitLength', path: '/home/alice/notes', lengthBytes: 5 }, 'EACCES');
  w.refused(bob, { op: 'commitLength', inodeId: w.attr('/home/alice/notes').inodeId, lengthBytes: 5 }, 'EACCES');
  assert.equal(w.as(alice, { op: 'setattr', path: '/home/alice/notes', sizeBytes: 7 }).sizeBytes, 7);
  assert.equal(w.as(carol, { op: 'commitLength', path: '/proj/plan', lengthBytes: 9 }).sizeBytes, 9);
  assert.equal(w.as(carol, { op: 'commitLength', inodeId: w.attr('/proj/plan').inodeId, lengthBytes: 11 }).sizeBytes, 11);
});

test('chmod only by the owner or root; one not in the file\'s group loses setgid', () => {
  const w = new World();
  w.as(bob, { op: 'create', path: '/shared/x', mode: 0o664, uid: bob.uid, gid: bob.gid, exclusive: true });
  assert.match(w.refused(alice, { op: 'setattr', path: '/shared/x', mode: 0o777 }, 'EPERM'), /only the owner of '\/shared\/x' \(uid 1001\) or root may change its mode/);
  assert.equal(w.as(bob, { op: 'setattr', path: '/shared/x', mode: 0o2755 }).mode, 0o2755, 'in the file\'s group: setgid stays');
  w.as(root, { op: 'setattr', path: '/shared/x', gid: 300 });
  assert.equal(w.as(bob, { op: 'setattr', path: '/shared/x', mode: 0o2755 }).mode, 0o755, 'not in group 300: setgid goes');
  assert.equal(w.as(bob, { op: 'setattr', path: '/shared/x', mode: 0o2755, gid: 100 }).mode, 0o2755, 'the group it sets in the same call counts');
  assert.equal(w.as(root, { op: 'setattr', path: '/proj/plan', mode: 0o2770 }).mode, 0o2770, 'root keeps it');
  w.refused(carol, { op: 'setattr', path: '/proj/plan', mode: 0o777 }, 'EPERM');
});

test('chown only by root; the owner may set the group to one of its own, or keep what it has', () => {
  const w = new World();
  w.refused(alice, { op: 'setattr', path: '/ro', uid: bob.uid }, 'EPERM');
  w.refused(alice, { op: 'setattr', path: '/ro', gid: 300 }, 'EPERM');
  w.refused(bob, { op: 'setattr', path: '/ro', gid: 100 }, 'EPERM', 'not the owner');
  assert.equal(w.as(alice, { op: 'setattr', path: '/ro', uid: alice.uid, gid: alice.gid }).uid, alice.uid, 'keeping both is allowed');
  w.as(root, { op: 'setattr', path: '/ro', uid: carol.uid });
  assert.equal(w.as(carol, { op: 'setattr', path: '/ro', gid: 300 }).gid, 300, 'a supplementary group');
  assert.equal(w.as(carol, { op: 'setattr', path: '/ro', gid: 200 }).gid, 200);
  w.refused(carol, { op: 'setattr', path: '/ro', gid: 100 }, 'EPERM');
  w.as(root, { op: 'setattr', path: '/ro', gid: 4242 });
  assert.equal(w.as(carol, { op: 'setattr', path: '/ro', gid: 4242 }).gid, 4242, 'the owner may keep a group it is not in');
  assert.equal(w.as(root, { op: 'setattr', path: '/ro', uid: 7, gid: 8 }).uid, 7);
});

test('times: given values only by the owner or root; now by anyone who may write', () => {
  const w = new World();
  w.as(bob, { op: 'create', path: '/shared/w', mode: 0o664, uid: bob.uid, gid: bob.gid, exclusive: true });
  w.refused(alice, { op: 'setattr', path: '/shared/w', mtimeMs: 5 }, 'EPERM');
  w.refused(alice, { op: 'setattr', path: '/shared/w', atimeMs: 5 }, 'EPERM');
  const now = w.as(alice, { op: 'setattr', path: '/shared/w', timesNow: true });
  assert.equal(now.mtimeMs, w.nowMs, 'the command\'s clock');
  assert.equal(now.atimeMs, w.nowMs);
  assert.match(w.refused(carol, { op: 'setattr', path: '/shared/w', timesNow: true }, 'EACCES'), /no write permission on '\/shared\/w'/);
  assert.equal(w.as(alice, { op: 'setattr', path: '/ro', timesNow: true }).mtimeMs, w.nowMs, 'the owner needs no write permission');
  assert.equal(w.as(bob, { op: 'setattr', path: '/shared/w', atimeMs: 1, mtimeMs: 2 }).mtimeMs, 2);
  assert.equal(w.as(root, { op: 'setattr', path: '/shared/w', mtimeMs: 3 }).mtimeMs, 3);
});

test('one triple applies, as Linux picks it: the owner\'s for the owner, the group\'s for the group, even when another grants more', () => {
  const w = new World();
  w.file('/odd', 0o047, alice);
  assert.equal(w.query(alice, { op: 'open', path: '/odd' }), 'EACCES', 'owner: ---');
  assert.equal(w.query(bob, { op: 'open', path: '/odd' }), 'ok', 'group: r--');
  w.refused(bob, { op: 'openSession', path: '/odd', truncate: false }, 'EACCES');
  assert.equal(w.query(carol, { op: 'open', path: '/odd' }), 'ok', 'other: rwx');
  w.as(carol, { op: 'openSession', path: '/odd', truncate: false });
  w.refused(alice, { op: 'setattr', path: '/odd', sizeBytes: 1 }, 'EACCES');
  assert.equal(w.as(alice, { op: 'setattr', path: '/odd', mode: 0o600 }).mode, 0o600, 'the owner may still chmod');
  assert.equal(w.query(alice, { op: 'open', path: '/odd' }), 'ok');
});

test('root passes every read, write and search check', () => {
  const w = new World();
  w.as(alice, { op: 'setattr', path: '/home/alice', mode: 0 });
  w.as(alice, { op: 'setattr', path: '/ro', mode: 0 });
  assert.equal(w.query(alice, { op: 'stat', path: '/home/alice/notes' }), 'EACCES', 'not even its owner');
  assert.equal(w.query(root, { op: 'stat', path: '/home/alice/private/key' }), 'ok');
  assert.equal(w.query(root, { op: 'readdir', path: '/home/alice', limit: 10 }), 'ok');
  assert.equal(w.query(root, { op: 'open', path: '/ro' }), 'ok');
  w.as(root, { op: 'openSession', path: '/ro', truncate: true });
  w.as(root, { op: 'create', path: '/home/alice/by-root', mode: 0o600, uid: 0, gid: 0, exclusive: true });
  w.as(root, { op: 'unlink', path: '/home/alice/notes' });
  w.as(root, { op: 'rename', from: '/home/alice/private', to: '/tmp/p' });
  w.checkInvariants();
});

test('the same commands applied twice from a snapshot give the same answers and state (determinism)', () => {
  const w = new World();
  const bodies: [Caller, NsBody][] = [
    [bob, { op: 'unlink', path: '/tmp/a' }],
    [alice, { op: 'rename', from: '/tmp/a', to: '/shared/a' }],
    [carol, { op: 'setattr', path: '/proj/plan', timesNow: true }],
    [bob, { op: 'setattr', path: '/shared', mode: 0o777 }],
  ];
  const copy = MetaState.restore(w.state.snapshot());
  bodies.forEach(([caller, body], i) => {
    const cmd = { ...body, caller, clientId: 'x', seq: i + 1, nowMs: 5_000 + i } as MetaCommand;
    assert.deepEqual(copy.apply(w.index + 1 + i, cmd), w.state.apply(w.index + 1 + i, cmd));
  });
  assert.equal(copy.stateHash(), w.state.stateHash());
});

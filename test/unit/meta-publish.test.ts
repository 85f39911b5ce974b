// publish: a put's end (session closed, mode and attribute set, file renamed into place) as one
// command that does all of it or nothing.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { validateCommand, type Caller, type MetaCommand } from '../../src/meta/index.ts';
import { xattrsBytesMax } from '../../src/meta/commands.ts';
import { MetaFs } from '../meta-fs.ts';

const temp = '/d/.obj.cairn-put-0123456789ab';
const user: Caller = { uid: 1000, gid: 1000, groups: [] };

function setUp(caller?: Caller): { fs: MetaFs; sessionId: string; inodeId: number } {
  const fs = new MetaFs({ clientId: 'host:1:aaaa/0', stepMs: 10, ...(caller === undefined ? {} : { caller }) });
  fs.ok({ op: 'mkdir', path: '/d', mode: 0o777, uid: 0, gid: 0, parents: false, caller: { uid: 0, gid: 0, groups: [] } });
  const owner = caller ?? { uid: 0, gid: 0 };
  const made = fs.ok({ op: 'create', path: temp, mode: 0o644, uid: owner.uid, gid: owner.gid, exclusive: true, openSession: true, ephemeral: true });
  return { fs, sessionId: made.sessionId!, inodeId: made.inode.inodeId };
}

/** The state's whole observable namespace state, to compare before and after a refused publish. */
function picture(fs: MetaFs): string {
  const sessions = fs.state.query({ op: 'sessions', limit: 100 });
  return JSON.stringify({ names: fs.names('/d'), temp: fs.state.stat(temp, fs.caller, 'user.meta'), sessions });
}

test('publish commits the length and chunks, sets mode and attribute, ends the session and renames, in one command', () => {
  const { fs, sessionId, inodeId } = setUp();
  fs.ok({ op: 'create', path: '/d/obj', mode: 0o644, uid: 0, gid: 0, exclusive: true });
  const old = fs.stat('/d/obj').inodeId;
  const value = new Uint8Array([1, 2, 3]);
  const body = { op: 'publish' as const, sessionId, from: temp, to: '/d/obj', lengthBytes: 5000, chunks: [0, 1], mode: 0o444, xattrName: 'user.meta', xattrValue: value, replacing: old };
  // The command reads back as it was given: the log entry is validated again when it is applied.
  const stamped = { ...body, clientId: 'c/0', seq: 1, nowMs: 5, caller: fs.caller };
  assert.deepEqual(validateCommand(validateCommand(stamped)), validateCommand(stamped));
  const done = fs.ok(body);
  assert.equal(done.inode.inodeId, inodeId);
  assert.equal(done.inode.sizeBytes, 5000);
  assert.equal(done.inode.mode & 0o7777, 0o444);
  assert.equal(done.replaced?.inodeId, old);
  assert.deepEqual(fs.names('/d'), ['obj']);
  const r = fs.state.stat('/d/obj', fs.caller, 'user.meta');
  assert.ok(r.ok);
  assert.equal(r.value.inodeId, inodeId);
  assert.deepEqual(r.value.xattr, value);
  const sessions = fs.state.query({ op: 'sessions', limit: 100 });
  assert.ok(sessions.ok);
  assert.equal((sessions.value as { open: number }).open, 0);
  // The session is gone: a second publish (or a close) finds nothing to end.
  fs.fails({ op: 'publish', sessionId, from: '/d/obj', to: '/d/obj2', lengthBytes: 1 }, 'ENOENT');
});

test('a publish that cannot be made changes nothing: the session stays open and the temporary file as it was', () => {
  const { fs, sessionId } = setUp(user);
  fs.ok({ op: 'mkdir', path: '/d/sub', mode: 0o755, uid: 0, gid: 0, parents: false, caller: { uid: 0, gid: 0, groups: [] } });
  fs.ok({ op: 'create', path: '/d/taken', mode: 0o644, uid: 1000, gid: 1000, exclusive: true });
  const other = fs.ok({ op: 'create', path: '/d/other', mode: 0o644, uid: 1000, gid: 1000, exclusive: true, openSession: true }).sessionId!;
  const before = picture(fs);
  const base = { op: 'publish' as const, sessionId, from: temp, to: '/d/obj', lengthBytes: 7, chunks: [0, 1], xattrName: 'user.meta', xattrValue: new Uint8Array([9]) };
  const refused: [object, string][] = [
    [{ to: '/d/missing/obj' }, 'ENOENT'], // a directory on the way is missing
    [{ to: '/d/sub/obj' }, 'EACCES'], // the target directory is not the caller's to change
    [{ to: '/d/taken', replacing: 0 }, 'EEXIST'], // a conditional put that found the name taken
    [{ to: '/d/obj', replacing: 12345 }, 'EAGAIN'],
    [{ to: '/d/sub' }, 'EISDIR'], // a file may not replace a directory
    [{ xattrValue: new Uint8Array(xattrsBytesMax) }, 'E2BIG'],
    [{ from: '/d/other' }, 'EINVAL'], // not the session's file
    [{ sessionId: other }, 'EINVAL'],
    [{ sessionId: 'nope' }, 'ENOENT'],
  ];
  for (const [change, code] of refused) {
    fs.fails({ ...base, ...change } as typeof base, code as 'ENOENT');
    assert.equal(picture(fs), before, `${JSON.stringify(change)} changed something`);
  }
  // A mode change is the owner's (or root's): another caller's publish with a mode is refused.
  const rootFs = setUp();
  rootFs.fs.ok({ op: 'setattr', path: temp, uid: 1000 });
  const byOther = new MetaFs({ clientId: 'host:2:bbbb/0', stepMs: 10, state: rootFs.fs.state, caller: { uid: 2000, gid: 2000, groups: [] } });
  byOther.index = 1000;
  byOther.fails({ op: 'publish', sessionId: rootFs.sessionId, from: temp, to: '/d/x', lengthBytes: 0, mode: 0o600 }, 'EPERM');
  assert.deepEqual(rootFs.fs.names('/d'), [temp.slice(3)]);
  // And the one that can be made still is.
  fs.ok(base);
  assert.deepEqual(fs.names('/d'), ['obj', 'other', 'sub', 'taken']);
});

test('publish validation: both attribute fields or neither, paths, lengths and ranges as the commands they replace', () => {
  const stamp = { clientId: 'c/0', seq: 1, nowMs: 5, caller: { uid: 0, gid: 0, groups: [] } };
  const good = { op: 'publish', sessionId: 's', from: '/a/.t', to: '/a/t', lengthBytes: 0, ...stamp };
  assert.equal(validateCommand(good).op, 'publish');
  const bad: object[] = [
    { xattrName: 'user.x' },
    { xattrValue: new Uint8Array(1) },
    { xattrName: 'trusted.x', xattrValue: new Uint8Array(1) },
    { xattrName: 'user.x', xattrValue: 'text' },
    { lengthBytes: -1 },
    { lengthBytes: undefined },
    { to: 'relative' },
    { from: undefined },
    { chunks: [2, 1] },
    { mode: 0o170000 },
    { replacing: -1 },
    { sessionId: 7 },
    { extra: true },
  ];
  for (const change of bad) {
    assert.throws(() => validateCommand({ ...good, ...change } as unknown as MetaCommand), (err: { code?: string }) => typeof err.code === 'string', JSON.stringify(change));
  }
});

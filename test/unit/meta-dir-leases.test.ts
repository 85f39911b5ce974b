// Directory leases in the metadata state: what a held directory refuses to other callers (and what
// it still allows them), the holder's batches with their reserved inode ids, release and expiry,
// snapshots, and validation of the new commands.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MetaState, ResultErrorCode, rootCaller, validateCommand, validateQuery, type Caller, type DirBatchResult, type LeaseDirValue } from '../../src/meta/index.ts';
import { MetaFs } from '../meta-fs.ts';

const holderA: Caller = { ...rootCaller, holder: 'mount-a' };
const holderB: Caller = { ...rootCaller, holder: 'mount-b' };
const leased = ResultErrorCode.DirLeased;

function setup(): { fs: MetaFs; lease: LeaseDirValue } {
  const fs = new MetaFs({ clientId: 'host:1:aaaa/0', stepMs: 10 });
  fs.ok({ op: 'mkdir', path: '/d', mode: 0o777, uid: 0, gid: 0, parents: false });
  fs.ok({ op: 'mkdir', path: '/d/sub', mode: 0o777, uid: 0, gid: 0, parents: false });
  fs.ok({ op: 'create', path: '/d/old', mode: 0o644, uid: 0, gid: 0, exclusive: true });
  const lease = fs.ok({ op: 'leaseDir', path: '/d', caller: holderA }) as LeaseDirValue;
  return { fs, lease };
}

test('a held directory refuses other callers its names, its listing and changes, but not its subdirectories', () => {
  const { fs, lease } = setup();
  assert.equal(lease.idEnd - lease.idNext, 4096);
  const q = (body: object, caller: Caller) => fs.state.query(validateQuery({ ...body, caller }));
  for (const caller of [rootCaller, holderB]) {
    for (const body of [{ op: 'stat', path: '/d/old' }, { op: 'stat', path: '/d/missing' }, { op: 'open', path: '/d/old' }, { op: 'readdir', path: '/d', limit: 10 }, { op: 'lookup', parentId: lease.dir.inodeId, name: 'x' }]) {
      const r = q(body, caller);
      assert.ok(!r.ok && r.code === leased && r.leasedDirId === lease.dir.inodeId, JSON.stringify(body));
    }
    // A subdirectory, the directory itself and what lies below a subdirectory stay open to all.
    assert.ok(q({ op: 'stat', path: '/d/sub' }, caller).ok);
    assert.ok(q({ op: 'stat', path: '/d' }, caller).ok);
    assert.ok(q({ op: 'readdir', path: '/d/sub', limit: 10 }, caller).ok);
    for (const body of [
      { op: 'create', path: '/d/new', mode: 0o644, uid: 0, gid: 0, exclusive: true },
      { op: 'unlink', path: '/d/old' },
      { op: 'mkdir', path: '/d/new', mode: 0o755, uid: 0, gid: 0, parents: false },
      { op: 'rename', from: '/d/old', to: '/elsewhere' },
      { op: 'rename', from: '/d', to: '/moved' },
      { op: 'rmdir', path: '/d' },
      { op: 'symlink', path: '/d/link', target: 'x', uid: 0, gid: 0 },
      { op: 'leaseDir', path: '/d' },
    ] as const) {
      fs.fails({ ...body, caller } as never, body.op !== 'leaseDir' ? leased : caller.holder === undefined ? 'EINVAL' : 'EAGAIN');
    }
  }
  assert.ok(q({ op: 'stat', path: '/d/old' }, holderA).ok, 'the holder itself is answered');
  fs.ok({ op: 'mkdir', path: '/d/sub/deeper', mode: 0o755, uid: 0, gid: 0, parents: false, caller: holderB });
  fs.checkInvariants();
});

test('a refusal for a held directory is not kept as the answer: the same (clientId, seq) retried after the give-back applies', () => {
  const { fs, lease } = setup();
  const create = { op: 'create', path: '/d/retried', mode: 0o644, uid: 0, gid: 0, exclusive: true, caller: rootCaller, clientId: 'other:1/0', seq: 1 } as const;
  const first = fs.state.apply(++fs.index, { ...create, nowMs: fs.nowMs } as never);
  assert.ok(!first.ok && first.code === leased);
  fs.ok({ op: 'releaseDir', dirInodeId: lease.dir.inodeId, caller: holderA });
  const retried = fs.state.apply(++fs.index, { ...create, nowMs: fs.nowMs } as never);
  assert.ok(retried.ok, retried.ok ? '' : retried.message);
  // And the answer that changed something is kept for the next retry, as for any mutation.
  const again = fs.state.apply(++fs.index, { ...create, nowMs: fs.nowMs } as never);
  assert.deepEqual(again, retried);
  fs.checkInvariants();
});

test("the holder's batch applies each op in order with its own outcome, taking the reserved inode ids", () => {
  const { fs, lease } = setup();
  const dirId = lease.dir.inodeId;
  const ops = [
    { op: 'create', name: 'a', inodeId: lease.idNext, mode: 0o644, uid: 0, gid: 0, openSession: false, caller: holderA },
    { op: 'create', name: 'b', inodeId: lease.idNext + 1, mode: 0o600, uid: 0, gid: 0, openSession: true, caller: holderA },
    { op: 'create', name: 'a', inodeId: lease.idNext + 2, mode: 0o644, uid: 0, gid: 0, openSession: false, caller: holderA },
    { op: 'unlink', name: 'old', caller: holderA },
    { op: 'unlink', name: 'gone', caller: holderA },
    { op: 'create', name: 'c', inodeId: lease.idNext, mode: 0o644, uid: 0, gid: 0, openSession: false, caller: holderA },
  ];
  const out = fs.ok({ op: 'dirBatch', dirInodeId: dirId, ops, caller: holderA } as never) as { results: DirBatchResult[] };
  const codes = out.results.map((r) => (r.ok ? 'ok' : r.code));
  assert.deepEqual(codes, ['ok', 'ok', 'EEXIST', 'ok', 'ENOENT', 'EINVAL']);
  assert.equal((out.results[0] as { value: { inode: { inodeId: number } } }).value.inode.inodeId, lease.idNext);
  assert.ok((out.results[1] as { value: { sessionId?: string } }).value.sessionId !== undefined);
  fs.ok({ op: 'releaseDir', dirInodeId: dirId, caller: holderA });
  assert.deepEqual(fs.names('/d'), ['a', 'b', 'sub']);
  assert.equal(fs.stat('/d/b').inodeId, lease.idNext + 1);
  // The range's unused ids went back with the lease: the next file takes the first of them.
  const later = fs.ok({ op: 'create', path: '/d/later', mode: 0o644, uid: 0, gid: 0, exclusive: true }) as { inode: { inodeId: number } };
  assert.equal(later.inode.inodeId, lease.idNext + 2);
  fs.checkInvariants();
});

test('a batch after the lease ended applies nothing; release, expiry and removal end leases; snapshots keep them', () => {
  const { fs, lease } = setup();
  const dirId = lease.dir.inodeId;
  const batch = { op: 'dirBatch', dirInodeId: dirId, ops: [{ op: 'create', name: 'x', inodeId: lease.idNext, mode: 0o644, uid: 0, gid: 0, openSession: false, caller: holderA }] };
  // Kept across a snapshot.
  const restored = MetaState.restore(fs.state.snapshot());
  assert.equal(restored.stateHash(), fs.state.stateHash());
  assert.equal(fs.run({ ...batch, caller: holderB } as never).ok, false, "another holder's batch");
  assert.deepEqual(fs.ok({ op: 'releaseDir', dirInodeId: dirId, caller: holderB }), { released: false });
  fs.ok({ op: 'expireDirLeases', leases: [{ dirInodeId: dirId, holder: 'mount-b' }] } as never);
  fs.fails({ op: 'leaseDir', path: '/d', caller: holderB }, 'EAGAIN');
  fs.ok({ op: 'expireDirLeases', leases: [{ dirInodeId: dirId, holder: 'mount-a' }] } as never);
  fs.fails({ ...batch, caller: holderA } as never, ResultErrorCode.DirLeaseLost);
  assert.deepEqual(fs.names('/d'), ['old', 'sub']);
  // B takes it now; A's rmdir waits; B removes it itself, and the lease goes with it.
  fs.ok({ op: 'leaseDir', path: '/d/sub', caller: holderB });
  fs.fails({ op: 'rmdir', path: '/d/sub', caller: holderA }, leased);
  fs.ok({ op: 'rmdir', path: '/d/sub', caller: holderB });
  fs.checkInvariants();
});

test("others may not move a directory above a held one, nor set a held directory's attributes; a dead writer's file there stays", () => {
  const { fs, lease } = setup();
  fs.ok({ op: 'mkdir', path: '/top', mode: 0o777, uid: 0, gid: 0, parents: false });
  fs.fails({ op: 'rename', from: '/d', to: '/top/d' }, leased);
  fs.ok({ op: 'releaseDir', dirInodeId: lease.dir.inodeId, caller: holderA });
  fs.ok({ op: 'rename', from: '/d', to: '/top/d' });
  fs.ok({ op: 'leaseDir', path: '/top/d/sub', caller: holderA });
  for (const caller of [rootCaller, holderB]) {
    const r = fs.run({ op: 'rename', from: '/top', to: '/moved', caller } as never);
    assert.ok(!r.ok && r.code === leased && r.leasedDirId === fs.stat('/top/d/sub').inodeId, 'a directory above a held one');
    for (const change of [{ mode: 0o700 }, { uid: 5 }, { timesNow: true }]) fs.fails({ op: 'setattr', path: '/top/d/sub', ...change, caller } as never, leased);
  }
  fs.ok({ op: 'setattr', path: '/top/d', mode: 0o755, caller: holderB }); // above a held one: not held itself
  fs.ok({ op: 'setattr', path: '/top/d/sub', mode: 0o755, caller: holderA });
  fs.ok({ op: 'rename', from: '/top', to: '/moved', caller: holderA });
  // A temporary file (a writer that may die) made before the directory was held stays when its writer's session expires.
  const tmp = fs.ok({ op: 'create', path: '/moved/d/.tmp', mode: 0o644, uid: 0, gid: 0, exclusive: true, openSession: true, ephemeral: true });
  fs.ok({ op: 'leaseDir', path: '/moved/d', caller: holderA });
  fs.ok({ op: 'expireSessions', sessionIds: [tmp.sessionId!] } as never);
  assert.ok(fs.state.stat('/moved/d/.tmp', holderA).ok, 'the holder answers for the names in it');
  fs.checkInvariants();
});

test("a batch's create gives away no file; a lease's unused inode ids go back with it; a restore ends every lease", () => {
  const { fs, lease } = setup();
  const user: Caller = { uid: 1000, gid: 1000, groups: [], holder: 'mount-a' };
  const out = fs.ok({ op: 'dirBatch', dirInodeId: lease.dir.inodeId, ops: [{ op: 'create', name: 'theirs', inodeId: lease.idNext, mode: 0o644, uid: 0, gid: 0, openSession: false, caller: user }], caller: holderA } as never) as { results: DirBatchResult[] };
  assert.ok(!out.results[0].ok && out.results[0].code === 'EPERM', JSON.stringify(out.results[0]));
  const mine = fs.ok({ op: 'dirBatch', dirInodeId: lease.dir.inodeId, ops: [{ op: 'create', name: 'mine', inodeId: lease.idNext, mode: 0o644, uid: 1000, gid: 1000, openSession: false, caller: user }], caller: holderA } as never) as { results: DirBatchResult[] };
  assert.ok(mine.results[0].ok);
  assert.equal(fs.state.nextInodeId, lease.idEnd);
  fs.ok({ op: 'releaseDir', dirInodeId: lease.dir.inodeId, caller: holderA });
  assert.equal(fs.state.nextInodeId, lease.idNext + 1, 'all but the one used');
  const again = fs.ok({ op: 'leaseDir', path: '/d', caller: holderA });
  fs.ok({ op: 'mkdir', path: '/later', mode: 0o755, uid: 0, gid: 0, parents: false }); // an id after the range
  fs.ok({ op: 'expireDirLeases', leases: [{ dirInodeId: again.dir.inodeId, holder: 'mount-a' }] } as never);
  assert.equal(fs.state.nextInodeId, again.idEnd + 1, 'ids handed out after the range: the range stays used');
  fs.ok({ op: 'leaseDir', path: '/d', caller: holderA });
  const restored = MetaState.restore(fs.state.snapshot());
  restored.continueRestored(fs.state.indexApplied + 1, 1);
  assert.equal(restored.dirLeases().size, 0);
  fs.checkInvariants();
});

test('the lease commands and the holder token are validated', () => {
  const stamp = { clientId: 'c', seq: 1, nowMs: 1 };
  const bad = [
    { op: 'leaseDir', path: '/d', caller: { uid: 0, gid: 0, holder: '' } },
    { op: 'leaseDir', path: '/d', caller: { uid: 0, gid: 0, holder: 'a b' } },
    { op: 'leaseDir', path: '/d', caller: { uid: 0, gid: 0, holder: 'x'.repeat(65) } },
    { op: 'dirBatch', dirInodeId: 2, ops: [], caller: { uid: 0, gid: 0 } },
    { op: 'dirBatch', dirInodeId: 2, ops: [{ op: 'rename', name: 'a', caller: { uid: 0, gid: 0 } }], caller: { uid: 0, gid: 0, holder: 'h' } },
    { op: 'dirBatch', dirInodeId: 2, ops: [{ op: 'unlink', name: 'a/b', caller: { uid: 0, gid: 0 } }], caller: { uid: 0, gid: 0, holder: 'h' } },
    { op: 'dirBatch', dirInodeId: 2, ops: [{ op: 'unlink', name: 'a', caller: { uid: 0, gid: 0, holder: 'other' } }], caller: { uid: 0, gid: 0, holder: 'h' } },
    { op: 'dirBatch', dirInodeId: 2, ops: [{ op: 'create', name: 'a', mode: 0o644, uid: 0, gid: 0, caller: { uid: 0, gid: 0 } }], caller: { uid: 0, gid: 0, holder: 'h' } },
    { op: 'expireDirLeases', leases: [{ dirInodeId: 2, holder: 'not ok' }] },
    { op: 'expireDirLeases', leases: [{ dirInodeId: 0, holder: 'ok' }] },
  ];
  for (const body of bad) assert.throws(() => validateCommand({ ...body, ...stamp }), (err: { code?: string }) => err.code === 'EINVAL' || err.code === 'ENAMETOOLONG', JSON.stringify(body));
  const good = validateCommand({ op: 'dirBatch', dirInodeId: 2, ops: [{ op: 'unlink', name: 'a', caller: { uid: 5, gid: 5 } }], caller: { uid: 0, gid: 0, holder: 'h' }, ...stamp });
  assert.equal((good as { ops: { caller: Caller }[] }).ops[0].caller.holder, 'h', "an op's caller acts for the batch's holder");
});

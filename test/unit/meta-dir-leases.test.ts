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
  // New files outside the lease never take a reserved id.
  const later = fs.ok({ op: 'create', path: '/d/later', mode: 0o644, uid: 0, gid: 0, exclusive: true }) as { inode: { inodeId: number } };
  assert.ok(later.inode.inodeId >= lease.idEnd);
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

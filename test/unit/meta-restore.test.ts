// Restoring a backup into a new cluster (src/meta/state-machine.ts, restore-floor.ts): the lost
// cluster handed out inode ids, session numbers and routing versions after its backup, which live
// on in workers' chunks and clients' routing. A restore must never hand those out again; a move of
// the inode counter past an id a worker holds must be deterministic, like every other entry.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Packr } from 'msgpackr';
import type { MetaCommand, MetaResult } from '../../src/meta/index.ts';
import { rootCaller } from '../../src/meta/index.ts';
import { encodeCommandEntry, encodeInodeFloor, encodeRestoreBegin, encodeRestoreChunk, encodeRestoreCommit, MetaStateMachine } from '../../src/meta/state-machine.ts';
import { heldInodeIdMax, restoredInstance, restoreFloor, restoreFloorMax, restoreIdsPerMs } from '../../src/meta/restore-floor.ts';

const packr = new Packr({ useRecords: false });

/** A state machine fed entries at consecutive indexes, as the journal feeds it. */
class Replica {
  readonly sm = new MetaStateMachine();
  readonly clientId: string;
  index = 0;
  seq = 0;

  /** The lost cluster's client table comes back with the backup: a restored replica's client is another. */
  constructor(clientId = 'restored') {
    this.clientId = clientId;
  }

  apply(entry: Uint8Array): MetaResult<unknown> {
    return this.sm.apply(++this.index, entry);
  }

  run(body: Record<string, unknown>): MetaResult<unknown> {
    return this.apply(encodeCommandEntry({ ...body, clientId: this.clientId, seq: ++this.seq, nowMs: 1_000 + this.seq } as MetaCommand));
  }

  ok<V>(body: Record<string, unknown>): V {
    const r = this.run(body);
    assert.ok(r.ok, `${String(body.op)}: ${r.ok ? '' : r.message}`);
    return r.value as V;
  }

  create(path: string): number {
    return this.ok<{ inode: { inodeId: number } }>({ op: 'create', path, mode: 0o644, uid: 0, gid: 0, exclusive: true }).inode.inodeId;
  }

  restore(backup: Uint8Array[], commit: Uint8Array): MetaResult<unknown> {
    assert.ok(this.apply(encodeRestoreBegin('r1')).ok);
    for (const c of backup) assert.ok(this.apply(encodeRestoreChunk('r1', c)).ok);
    return this.apply(commit);
  }
}

/** A cluster with a worker, a backup of it, and files created after the backup (the lost cluster's). */
function lostCluster(): { backup: Uint8Array[]; idsAfterBackup: number[]; routingVersion: number } {
  const lost = new Replica('lost');
  lost.ok({ op: 'initCluster', clusterId: 'c1' });
  lost.ok({ op: 'registerWorker', workerId: 1, instance: 'i1', address: 'w:1', domain: '', targets: [{ targetId: 1001, path: '/t', capacityBytes: 1 }] });
  lost.create('/before');
  const backup = [...lost.sm.snapshot()];
  const idsAfterBackup = [lost.create('/after-1'), lost.create('/after-2')];
  lost.ok({ op: 'registerWorker', workerId: 2, instance: 'i1', address: 'w:2', domain: '', targets: [] });
  return { backup, idsAfterBackup, routingVersion: lost.sm.state.routing().routingVersion };
}

test('the danger: a restore without a floor hands out again the inode ids the lost cluster used after its backup', () => {
  const { backup, idsAfterBackup } = lostCluster();
  const restored = new Replica();
  // A RestoreCommit as written before floors existed: it still applies as it did then.
  const legacy = new Uint8Array([4, ...packr.pack({ restoreId: 'r1' })]);
  assert.ok(restored.restore(backup, legacy).ok);
  assert.equal(restored.create('/new'), idsAfterBackup[0], 'the new file takes the id of a file whose chunks the workers still hold');
});

test('a restore moves the inode, session and routing counters to its floor, above all the lost cluster handed out', () => {
  const { backup, idsAfterBackup, routingVersion } = lostCluster();
  const nowMs = 1_760_000_000_000;
  const floor = restoreFloor(nowMs);
  assert.equal(floor, nowMs * restoreIdsPerMs);
  const restored = new Replica();
  const r = restored.restore(backup, encodeRestoreCommit('r1', floor));
  assert.ok(r.ok, r.ok ? '' : r.message);
  assert.deepEqual(r.value, { restoredAt: restored.index, inodes: 2, nextInodeId: floor });
  const id = restored.create('/new');
  assert.equal(id, floor);
  assert.ok(id > Math.max(...idsAfterBackup));
  assert.equal(restored.sm.state.stat('/before', rootCaller).ok, true, 'the backup\'s files are there');
  assert.equal(restored.sm.state.stat('/after-1', rootCaller).ok, false, 'files made after the backup are not');
  const session = restored.ok<{ sessionId: string }>({ op: 'openSession', path: '/new', truncate: false });
  assert.ok(Number(session.sessionId.replace(/^\D+/, '')) >= floor, `session ${session.sessionId} numbered from the floor`);
  const routing = restored.sm.state.routing();
  assert.ok(routing.routingVersion >= floor && routing.routingVersion > routingVersion, 'workers and clients take the restored routing as newer');
  assert.deepEqual(restored.sm.state.workers().map((w) => w.instance), [restoredInstance], 'every worker registers again');
});

test('a floor below what the backup holds moves nothing back', () => {
  const { backup } = lostCluster();
  const restored = new Replica();
  const r = restored.restore(backup, encodeRestoreCommit('r1', 0));
  assert.ok(r.ok);
  const next = (r.value as { nextInodeId: number }).nextInodeId;
  assert.ok(next > 1 && next < 100);
  assert.equal(restored.create('/new'), next);
});

test('a bad floor refuses the restore and changes nothing', () => {
  const { backup } = lostCluster();
  for (const floor of [-1, 1.5, restoreFloorMax + 1]) {
    const restored = new Replica();
    const hash = restored.sm.state.stateHash();
    const r = restored.restore(backup, encodeRestoreCommit('r1', floor));
    assert.ok(!r.ok && r.code === 'EINVAL', `floor ${floor}`);
    assert.equal(restored.sm.state.stateHash(), hash);
  }
});

test('replicas applying the same restore reach the same state', () => {
  const { backup } = lostCluster();
  const [a, b] = [new Replica(), new Replica()];
  for (const r of [a, b]) {
    r.restore(backup, encodeRestoreCommit('r1', restoreFloor(1_700_000_000_000)));
    r.create('/x');
    r.apply(encodeInodeFloor(restoreFloor(1_700_000_000_000) + 50));
  }
  assert.equal(a.sm.state.stateHash(), b.sm.state.stateHash());
});

test('the inode counter moves past an id a worker holds, never back, and refuses ids out of range', () => {
  const r = new Replica();
  r.create('/a');
  const next = r.sm.state.nextInodeId;
  assert.deepEqual(r.apply(encodeInodeFloor(next - 1)), { ok: true, value: { raised: false, nextInodeId: next } });
  assert.deepEqual(r.apply(encodeInodeFloor(next + 10)), { ok: true, value: { raised: true, nextInodeId: next + 11 } });
  assert.equal(r.create('/b'), next + 11);
  for (const bad of [0, heldInodeIdMax + 1, 2.5]) {
    const res = r.apply(encodeInodeFloor(bad));
    assert.ok(!res.ok && res.code === 'EINVAL', `id ${bad}`);
  }
  assert.equal(r.sm.state.nextInodeId, next + 12);
});

test('a restore leaves every chain with no member serving and no lastsrv: which served last is for the workers\' records to say, not the order they come back in', () => {
  const lost = new Replica('lost');
  lost.ok({ op: 'initCluster', clusterId: 'c1' });
  const register = (r: Replica, workerId: number, instance: string) =>
    r.ok({ op: 'registerWorker', workerId, instance, address: `w:${workerId}`, domain: '', targets: [{ targetId: workerId * 1000 + 1, path: '/t', capacityBytes: 1 }] });
  for (const w of [1, 2, 3]) register(lost, w, 'i1');
  lost.ok({ op: 'addChains', tableId: 1, chains: [{ chainId: 1, targetIds: [1001, 2001, 3001] }] });
  const backedUp = lost.sm.state.chains()[0];
  const restored = new Replica();
  assert.ok(restored.restore([...lost.sm.snapshot()], encodeRestoreCommit('r1', restoreFloor(1_760_000_000_000))).ok);
  const chain = restored.sm.state.chains()[0];
  assert.deepEqual(chain.targetIds, backedUp.targetIds);
  assert.ok(chain.version > backedUp.version, 'a new chain version: no worker\'s claim about the old one counts');
  const states = () => restored.sm.state.targets().map((t) => `${t.targetId}:${t.state}`);
  assert.deepEqual(states(), ['1001:offline', '2001:offline', '3001:offline']);
  // The workers register again in any order: none becomes lastsrv by it (before, the last one did).
  for (const w of [2, 3, 1]) register(restored, w, 'i2');
  assert.deepEqual(states(), ['1001:offline', '2001:offline', '3001:offline']);
});

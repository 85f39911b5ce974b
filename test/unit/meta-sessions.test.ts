// The `sessions` query (`cairn admin sessions`): open write sessions filtered by client and age,
// oldest first, bounded, with how many match; and validation of its fields.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MetaState, rootCaller, sessionsLimitMax, validateCommand, validateQuery, type Session } from '../../src/meta/index.ts';
import { MetaFs } from '../meta-fs.ts';

type Reply = { sessions: Session[]; matched: number; open: number };

test('sessions are listed by client prefix and age, oldest first, at most the limit, with the count that matches', () => {
  const state = new MetaState();
  const a = new MetaFs({ clientId: 'hostA:100:aaaa/0', stepMs: 10, state });
  const b = new MetaFs({ clientId: 'hostB:200:bbbb/0', stepMs: 10, state });
  b.index = 100; // after a's commands: one log
  a.ok({ op: 'mkdir', path: '/d', mode: 0o755, uid: 0, gid: 0, parents: false });
  const opened: string[] = [];
  for (let i = 0; i < 3; i++) opened.push(a.ok({ op: 'create', path: `/d/a${i}`, mode: 0o644, uid: 0, gid: 0, exclusive: true, openSession: true }).sessionId!);
  b.nowMs = a.nowMs;
  b.seq = 0;
  const bSession = b.ok({ op: 'create', path: '/d/b', mode: 0o644, uid: 0, gid: 0, exclusive: true, openSession: true }).sessionId!;
  const q = (body: object): Reply => {
    const r = state.query(validateQuery({ op: 'sessions', ...body }));
    assert.ok(r.ok);
    return r.value as Reply;
  };
  const all = q({ limit: 100 });
  assert.equal(all.open, 4);
  assert.equal(all.matched, 4);
  assert.deepEqual(all.sessions.map((s) => s.sessionId), [...opened, bSession]);
  assert.ok(all.sessions.every((s, i, xs) => i === 0 || xs[i - 1].openedMs <= s.openedMs), 'oldest first');
  assert.deepEqual(q({ limit: 100, client: 'hostB:' }).sessions.map((s) => s.sessionId), [bSession]);
  const firstTwo = q({ limit: 2, client: 'hostA:100' });
  assert.deepEqual([firstTwo.matched, firstTwo.sessions.length], [3, 2]);
  const cutoff = all.sessions[1].openedMs;
  assert.deepEqual(q({ limit: 100, openedBeforeMs: cutoff }).sessions.map((s) => s.sessionId), opened.slice(0, 2));
  // Ended sessions are gone from the list.
  a.index = b.index;
  a.ok({ op: 'closeSession', sessionId: opened[0] });
  assert.equal(q({ limit: 100 }).open, 3);
});

test('the sessions query refuses a missing or out-of-range limit, an empty or overlong client, a bad time', () => {
  for (const bad of [{}, { limit: 0 }, { limit: sessionsLimitMax + 1 }, { limit: 1.5 }, { limit: 10, client: 'x'.repeat(200) }, { limit: 10, client: 7 }, { limit: 10, openedBeforeMs: -1 }, { limit: 10, openedBeforeMs: 'now' }]) {
    assert.throws(() => validateQuery({ op: 'sessions', ...bad }), (err: { code?: string }) => err.code === 'EINVAL' || err.code === 'ENAMETOOLONG', JSON.stringify(bad));
  }
});

test('a temporary file whose session expires goes with every chunk of it; renamed or linked elsewhere it stays, and so does any other file; through a snapshot too', () => {
  const fs = new MetaFs({ clientId: 'host:1:aaaa/0', stepMs: 10 });
  fs.ok({ op: 'mkdir', path: '/d', mode: 0o755, uid: 0, gid: 0, parents: false });
  const make = (path: string, ephemeral: boolean) => fs.ok({ op: 'create', path, mode: 0o644, uid: 0, gid: 0, exclusive: true, openSession: true, ...(ephemeral ? { ephemeral } : {}) });
  const dead = make('/d/.f.cairn-put-1', true);
  fs.ok({ op: 'commitLength', inodeId: dead.inode.inodeId, lengthBytes: 10, chunks: [0, 1] });
  const renamed = make('/d/.g.cairn-put-2', true);
  fs.ok({ op: 'rename', from: '/d/.g.cairn-put-2', to: '/d/g' });
  const linked = make('/d/.h.cairn-put-3', true);
  fs.ok({ op: 'link', existing: '/d/.h.cairn-put-3', path: '/d/h' });
  const plain = make('/d/plain', false);
  // Kept by a snapshot: a master restarting from its checkpoint expires the same way.
  const copy = MetaState.restore([...fs.state.snapshot()]);
  assert.equal(copy.stateHash(), fs.state.stateHash());
  assert.deepEqual([...copy.openSessions()].map((s) => s.ephemeral?.name ?? null), ['.f.cairn-put-1', '.g.cairn-put-2', '.h.cairn-put-3', null]);
  const ids = [dead, renamed, linked, plain].map((c) => c.sessionId!);
  const at = { index: fs.index, seq: fs.seq, nowMs: fs.nowMs };
  assert.deepEqual(fs.ok({ op: 'expireSessions', sessionIds: [...ids, 'no-such'] }), { ended: 4, pendingGc: 1 });
  const names = (fs.state.readdir('/d', { limit: 100 }, rootCaller) as { ok: true; value: { entries: { name: string }[] } }).value.entries.map((e) => e.name);
  assert.deepEqual(names.sort(), ['.h.cairn-put-3', 'g', 'h', 'plain']);
  assert.deepEqual(fs.state.pendingGc(10).map((e) => [e.inodeId, e.chunks]), [[dead.inode.inodeId, null]], 'every chunk of it, recorded or not');
  const again = new MetaFs({ clientId: 'host:1:aaaa/0', stepMs: 10, state: copy });
  Object.assign(again, at);
  again.ok({ op: 'expireSessions', sessionIds: [...ids, 'no-such'] });
  assert.equal(copy.stateHash(), fs.state.stateHash(), 'the restored copy ends up in the same state');
  // An operator ending a gone writer's session (admin sessions end) does the same; its own close does not.
  const left = make('/d/.k.cairn-put-4', true);
  const closed = make('/d/.m.cairn-put-5', true);
  fs.ok({ op: 'closeSession', sessionId: left.sessionId!, abandoned: true });
  fs.ok({ op: 'closeSession', sessionId: closed.sessionId!, lengthBytes: 3 });
  const after = (fs.state.readdir('/d', { limit: 100 }, rootCaller) as { ok: true; value: { entries: { name: string }[] } }).value.entries.map((e) => e.name);
  assert.deepEqual([after.includes('.k.cairn-put-4'), after.includes('.m.cairn-put-5')], [false, true]);
  assert.throws(() => validateCommand({ op: 'create', path: '/x', mode: 0o644, uid: 0, gid: 0, exclusive: true, ephemeral: true, clientId: 'c', seq: 1, nowMs: 1, caller: rootCaller }), /'ephemeral' needs 'openSession'/);
});

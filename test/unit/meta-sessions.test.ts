// The `sessions` query (`cairn admin sessions`): open write sessions filtered by client and age,
// oldest first, bounded, with how many match; and validation of its fields.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MetaState, sessionsLimitMax, validateQuery, type Session } from '../../src/meta/index.ts';
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

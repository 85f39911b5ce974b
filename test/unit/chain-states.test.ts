// The cluster manager's target-state rule: the table in src/meta/chain-states.ts, case by case,
// and properties over random chains (order, one syncing, nobody serves without the data).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { inChainOrder, LocalState, markRestarted, nextChainMembers, replaceMember, replacementProblem, restoredSource, type ChainMember, type RestoredReport } from '../../src/meta/index.ts';
import type { TargetState } from '../../src/meta/commands.ts';

const S = 'serving', L = 'lastsrv', Y = 'syncing', W = 'waiting', O = 'offline';
const up = LocalState.UpToDate, on = LocalState.Online, off = LocalState.Offline;

/** Runs the rule on members written as [id, state] with reports by id; returns [id, state] pairs. */
function next(members: [number, TargetState][], reports: Record<number, LocalState>): [number, TargetState][] {
  const out = nextChainMembers(members.map(([targetId, state]) => ({ targetId, state })), (id) => reports[id] ?? off);
  return out.map((m) => [m.targetId, m.state]);
}

test('a healthy chain stays as it is', () => {
  assert.deepEqual(next([[1, S], [2, S], [3, S]], { 1: up, 2: up, 3: up }), [[1, S], [2, S], [3, S]]);
});

test('a dead member goes offline and to the end; the head is the first serving one', () => {
  assert.deepEqual(next([[1, S], [2, S], [3, S]], { 1: off, 2: up, 3: up }), [[2, S], [3, S], [1, O]]);
  assert.deepEqual(next([[1, S], [2, S], [3, S]], { 1: up, 2: off, 3: on }), [[1, S], [3, S], [2, O]]);
});

test('serving members that die together: the lastsrv is one whose worker can come back, not a decommissioned one', () => {
  const leaving = (id: number): boolean => id === 1;
  const out = nextChainMembers([{ targetId: 1, state: S }, { targetId: 2, state: S }], () => off, leaving).map((m) => [m.targetId, m.state]);
  assert.deepEqual(out, [[2, L], [1, O]]);
  // The only one that served last is kept, decommissioned or not: it alone holds every write.
  assert.deepEqual(nextChainMembers([{ targetId: 1, state: S }, { targetId: 2, state: O }], () => off, leaving).map((m) => [m.targetId, m.state]), [[1, L], [2, O]]);
});

test('when the last serving members die, the first of them becomes lastsrv and the chain waits for it', () => {
  assert.deepEqual(next([[1, S], [2, S], [3, O]], { 1: off, 2: off, 3: on }), [[1, L], [3, W], [2, O]]);
  // Only the lastsrv holds every acknowledged write: the others wait for it.
  assert.deepEqual(next([[1, L], [3, W], [2, O]], { 1: off, 2: on, 3: on }), [[1, L], [3, W], [2, W]]);
  assert.deepEqual(next([[1, L], [3, W], [2, W]], { 1: on, 2: on, 3: on }), [[1, S], [3, Y], [2, W]]);
});

test('a returning member syncs, one at a time, and serves once up to date', () => {
  assert.deepEqual(next([[1, S], [2, O], [3, O]], { 1: up, 2: on, 3: on }), [[1, S], [2, Y], [3, W]]);
  assert.deepEqual(next([[1, S], [2, Y], [3, W]], { 1: up, 2: on, 3: on }), [[1, S], [2, Y], [3, W]]);
  assert.deepEqual(next([[1, S], [2, Y], [3, W]], { 1: up, 2: up, 3: on }), [[1, S], [2, S], [3, Y]]);
  assert.deepEqual(next([[1, S], [2, S], [3, Y]], { 1: up, 2: up, 3: up }), [[1, S], [2, S], [3, S]]);
});

test('a syncing member whose source died waits; one that died goes offline', () => {
  assert.deepEqual(next([[1, S], [2, Y]], { 1: off, 2: on }), [[1, L], [2, W]]);
  assert.deepEqual(next([[1, S], [2, Y], [3, W]], { 1: up, 2: off, 3: on }), [[1, S], [3, Y], [2, O]]);
});

test('a lastsrv goes offline once another member serves', () => {
  assert.deepEqual(next([[2, S], [1, L]], { 1: on, 2: up }), [[2, S], [1, O]]);
  assert.deepEqual(next([[2, S], [1, L]], { 1: off, 2: up }), [[2, S], [1, O]]);
});

const stateArb = fc.constantFrom<TargetState>(S, L, Y, W, O);
const reportArb = fc.constantFrom<LocalState>(up, on, off);
/** Chains as the manager keeps them: in order, at most one syncing, no lastsrv beside a serving member. */
const chainArb = fc
  .array(fc.tuple(stateArb, reportArb), { minLength: 1, maxLength: 5 })
  .map((xs) => xs.map(([state, report], i) => ({ targetId: i + 1, state, report })))
  .filter((xs) => xs.filter((m) => m.state === Y).length <= 1 && !(xs.some((m) => m.state === S) && xs.some((m) => m.state === L)) && xs.filter((m) => m.state === L).length <= 1)
  .map((xs) => [...xs].sort((a, b) => 'SLYWO'.indexOf(letter(a.state)) - 'SLYWO'.indexOf(letter(b.state))));

function letter(s: TargetState): string {
  return { serving: 'S', lastsrv: 'L', syncing: 'Y', waiting: 'W', offline: 'O' }[s];
}

test('property: members stay the same set, in chain order, with at most one syncing', () => {
  fc.assert(
    fc.property(chainArb, (chain) => {
      const out = nextChainMembers(chain, (id) => chain.find((m) => m.targetId === id)?.report ?? off);
      assert.deepEqual(out.map((m) => m.targetId).sort(), chain.map((m) => m.targetId).sort());
      assert.ok(inChainOrder(out));
      assert.ok(out.filter((m) => m.state === Y).length <= 1);
      assert.ok(!(out.some((m) => m.state === S) && out.some((m) => m.state === L)), 'no lastsrv beside a serving member');
    }),
    { numRuns: 2000 },
  );
});

test('property: only a member that holds every write comes to serve', () => {
  fc.assert(
    fc.property(chainArb, (chain) => {
      const report = new Map(chain.map((m) => [m.targetId, m.report]));
      const before = new Map(chain.map((m) => [m.targetId, m.state]));
      for (const m of nextChainMembers(chain, (id) => report.get(id)!)) {
        if (m.state !== S) continue;
        const was = before.get(m.targetId);
        const mayServe = was === S || (was === L && !chain.some((x) => x.state === S)) || (was === Y && report.get(m.targetId) === up);
        assert.ok(mayServe, `target ${m.targetId} went from ${was} to serving`);
        assert.notEqual(report.get(m.targetId), off, 'a dead member never serves');
      }
    }),
    { numRuns: 2000 },
  );
});

test('property: with reports unchanged the chain settles within two steps', () => {
  fc.assert(
    fc.property(chainArb, (chain) => {
      const report = new Map(chain.map((m) => [m.targetId, m.report === up ? on : m.report]));
      const step = (ms: ChainMember[]) => nextChainMembers(ms, (id) => report.get(id)!);
      const two = step(step(chain));
      assert.deepEqual(step(two), two);
    }),
    { numRuns: 2000 },
  );
});

test('a restarted worker: its serving members go offline, or lastsrv when nobody else serves', () => {
  const run = (members: [number, TargetState][], restarted: number[]) =>
    markRestarted(members.map(([targetId, state]) => ({ targetId, state })), new Set(restarted)).map((m) => [m.targetId, m.state]);
  assert.deepEqual(run([[1, S], [2, S], [3, S]], [1]), [[2, S], [3, S], [1, O]]);
  assert.deepEqual(run([[1, S], [2, O]], [1]), [[1, L], [2, O]]);
  assert.deepEqual(run([[1, S], [2, S]], [1, 2]), [[1, L], [2, O]]);
  assert.deepEqual(run([[1, S], [2, Y], [3, W]], [2, 3]), [[1, S], [2, O], [3, O]]);
  assert.deepEqual(run([[1, L], [2, O]], [1]), [[1, L], [2, O]], 'a lastsrv stays the one to wait for');
});

const asMembers = (members: [number, TargetState][]): ChainMember[] => members.map(([targetId, state]) => ({ targetId, state }));

test('a replacement enters syncing at the end of the serving members, or waiting while another syncs', () => {
  const run = (members: [number, TargetState][], lost: number, added: number) => replaceMember(asMembers(members), lost, added).map((m) => [m.targetId, m.state]);
  assert.deepEqual(run([[1, S], [2, S], [3, O]], 3, 9), [[1, S], [2, S], [9, Y]]);
  assert.deepEqual(run([[1, S], [2, S], [3, S]], 2, 9), [[1, S], [3, S], [9, Y]], 'a lost member that still serves leaves too');
  assert.deepEqual(run([[1, S], [2, O], [3, O]], 3, 9), [[1, S], [9, Y], [2, O]], 'before the offline ones');
  assert.deepEqual(run([[1, S], [2, Y], [3, O]], 3, 9), [[1, S], [2, Y], [9, W]], 'one syncing at a time');
  assert.deepEqual(run([[1, S], [2, Y], [3, O]], 2, 9), [[1, S], [9, Y], [3, O]], 'the lost one was the syncing one');
});

test('a member may leave only while another one serves', () => {
  const problem = (members: [number, TargetState][], lost: number) => replacementProblem(asMembers(members), lost);
  assert.equal(problem([[1, S], [2, O]], 2), undefined);
  assert.equal(problem([[1, S], [2, S]], 1), undefined);
  assert.match(problem([[1, S], [2, O]], 1)!, /only up-to-date replica \(serving\)/);
  assert.match(problem([[1, L], [2, W]], 1)!, /only up-to-date replica \(lastsrv\)/);
  assert.match(problem([[1, L], [2, W]], 2)!, /no other member serves/);
  assert.match(problem([[1, S]], 7)!, /not a member/);
  assert.throws(() => replaceMember(asMembers([[1, S], [2, O]]), 1, 9), /invariant violated/);
  assert.throws(() => replaceMember(asMembers([[1, S], [2, O]]), 2, 1), /already/);
});

test('property: a replacement keeps chain order and one syncing member, and the state rule goes on from it', () => {
  fc.assert(
    fc.property(chainArb, fc.nat(), (chain, pick) => {
      const lost = chain[pick % chain.length].targetId;
      if (replacementProblem(chain, lost) !== undefined) {
        assert.ok(!chain.some((m) => m.targetId !== lost && m.state === S), 'refused only when no other member serves');
        return;
      }
      const out = replaceMember(chain, lost, 99);
      assert.deepEqual(out.map((m) => m.targetId).sort(), [...chain.map((m) => m.targetId).filter((id) => id !== lost), 99].sort());
      assert.ok(inChainOrder(out));
      assert.ok(out.filter((m) => m.state === Y).length <= 1);
      assert.ok(out.some((m) => m.state === S), 'a serving member stays');
      assert.ok([Y, W].includes(out.find((m) => m.targetId === 99)!.state), 'the newcomer never serves before it synced');
      const report = new Map(chain.map((m) => [m.targetId, m.report]));
      const next = nextChainMembers(out, (id) => (id === 99 ? on : report.get(id)!));
      assert.ok(inChainOrder(next) && next.filter((m) => m.state === Y).length <= 1);
    }),
    { numRuns: 2000 },
  );
});

test('a restored chain (nobody serving, no lastsrv) takes as source the member whose record says it served the chain last', () => {
  const members = (states: [number, TargetState][]): ChainMember[] => states.map(([targetId, state]) => ({ targetId, state }));
  const run = (m: [number, TargetState][], reports: Record<number, RestoredReport>, force = false) => {
    const out = restoredSource(members(m), (id) => reports[id] ?? { heard: false }, force);
    return out === undefined || 'wait' in out ? out : out.members.map((x) => [x.targetId, x.state]);
  };
  // Target 1 was a move's source after the backup: its record is older than the two that served on.
  assert.deepEqual(run([[1, O], [2, O], [3, W]], { 1: { heard: true, servedAt: 40 }, 2: { heard: true, servedAt: 57 }, 3: { heard: true, servedAt: 57 } }), [[2, L], [3, W], [1, O]]);
  // Its record names the chain it moved to: never preferred to one of this chain, nor to none.
  assert.deepEqual(run([[1, W], [2, O], [3, O]], { 1: { heard: true, servedAt: -1 }, 2: { heard: true }, 3: { heard: true, servedAt: 3 } }), [[3, L], [1, W], [2, O]]);
  assert.deepEqual(run([[1, W], [2, O]], { 1: { heard: true, servedAt: -1 }, 2: { heard: true } }), [[2, L], [1, W]]);
  // A silent member may have served last: wait for it, unless forced; then choose among the heard.
  assert.deepEqual(run([[1, O], [2, O], [3, O]], { 1: { heard: true, servedAt: 9 }, 3: { heard: true, servedAt: 5 } }), { wait: [2] });
  assert.deepEqual(run([[1, O], [2, O], [3, O]], { 1: { heard: true, servedAt: 9 }, 3: { heard: true, servedAt: 5 } }, true), [[1, L], [2, O], [3, O]]);
  assert.equal(run([[1, O], [2, O]], {}, true), undefined, 'nobody heard: nothing to choose');
  // A member of a decommissioned worker never reports: nobody waits for it.
  assert.deepEqual(run([[1, O], [2, O], [3, O]], { 1: { heard: false, lost: true }, 2: { heard: true, servedAt: 4 }, 3: { heard: true, servedAt: 5 } }), [[3, L], [1, O], [2, O]]);
  // Records alike (they served together to the end): the first in chain order.
  assert.deepEqual(run([[4, O], [5, O]], { 4: { heard: true, servedAt: 7 }, 5: { heard: true, servedAt: 7 } }), [[4, L], [5, O]]);
  // Any chain with a serving member or a lastsrv is left to the table above.
  assert.equal(run([[1, L], [2, O]], { 2: { heard: true, servedAt: 99 } }), undefined);
  assert.equal(run([[1, S], [2, O]], { 2: { heard: true, servedAt: 99 } }), undefined);
});

// The cluster manager's rebalancing plan (src/master/rebalance.ts): which healthy chain moves a
// member from a busy worker to a free target on an idle one, when a move ends and how; and, driven
// through the real commands until nothing moves, that it converges, keeps the chains' rules and
// never lowers a chain's serving replicas.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { planRebalance, type RebalanceInput } from '../../src/master/rebalance.ts';
import { planReplacements } from '../../src/master/replacements.ts';
import type { TargetState } from '../../src/meta/commands.ts';
import type { ChainInfo, ChainMove, TargetInfo, WorkerInfo } from '../../src/meta/index.ts';
import { MetaFs } from '../meta-fs.ts';

interface Shape {
  /** Workers by id: domain, decommissioned. */
  workers: Record<number, { domain?: string; gone?: boolean }>;
  /** Chains by id: members as [targetId, state]; a target's worker is its id / 10, rounded down. */
  chains: Record<number, { members: [number, TargetState][]; moving?: ChainMove }>;
  free: number[];
}

function tables(shape: Shape): Pick<RebalanceInput, 'workers' | 'targets' | 'chains'> {
  const targets: TargetInfo[] = [];
  const target = (targetId: number, state: TargetState, chainId: number): TargetInfo => ({ targetId, workerId: Math.floor(targetId / 10), path: '/d', capacityBytes: 100, state, chainId });
  const chains: ChainInfo[] = Object.entries(shape.chains).map(([id, c]) => {
    for (const [targetId, state] of c.members) targets.push(target(targetId, state, Number(id)));
    return { chainId: Number(id), version: 5, targetIds: c.members.map(([t]) => t), ...(c.moving === undefined ? {} : { moving: c.moving }) };
  });
  for (const id of shape.free) targets.push(target(id, 'offline', 0));
  const workers: WorkerInfo[] = Object.entries(shape.workers).map(([id, w]) => ({
    workerId: Number(id), instance: 'i', address: 'h:1', domain: w.domain ?? '', targets: targets.filter((t) => t.workerId === Number(id)), registeredMs: 0, updatedMs: 0,
    ...(w.gone ? { decommissionedMs: 1 } : {}),
  }));
  return { workers, targets, chains };
}

function plan(shape: Shape, opts: { dead?: number[]; used?: Record<number, number>; chunks?: Record<number, number | undefined>; movesMax?: number } = {}) {
  const chunks = (t: TargetInfo): number | undefined => (opts.chunks !== undefined && t.targetId in opts.chunks ? opts.chunks[t.targetId] : 0);
  return planRebalance({ ...tables(shape), alive: (t) => !(opts.dead ?? []).includes(t.workerId), usedBytes: (t) => opts.used?.[t.targetId] ?? 0, chunks, movesMax: opts.movesMax ?? 2 });
}

const serving = (...ids: number[]): [number, TargetState][] => ids.map((id) => [id, 'serving']);
const workersUpTo = (n: number, extra: Shape['workers'] = {}): Shape['workers'] => ({ ...Object.fromEntries(Array.from({ length: n }, (_, i) => [i + 1, {}])), ...extra });

test('a new worker takes a member of a chain on the busiest worker; no move that does not lower the imbalance', () => {
  // Workers 1-3 hold chains 1 and 2 on both their targets; worker 4 is new with two free targets.
  const shape: Shape = { workers: workersUpTo(4), chains: { 1: { members: serving(11, 21, 31) }, 2: { members: serving(12, 22, 32) } }, free: [41, 42] };
  const p = plan(shape);
  // First move: from worker 1 (ties by id), the chain with fewer bytes. Second: worker 4 would then
  // hold 2 of 2 while worker 2 keeps 2 of 2: no better, so not made.
  assert.deepEqual(p.start.map((m) => [m.chainId, m.fromTargetId, m.toTargetId]), [[1, 11, 41]]);
  assert.deepEqual(p.end, []);
  assert.deepEqual(plan(shape, { used: { 11: 500, 12: 100 } }).start.map((m) => [m.chainId, m.fromTargetId]), [[2, 12]], 'the cheaper chain moves');
  assert.deepEqual(plan(shape, { movesMax: 0 }).start, [], 'movesMax 0: no new move');
  assert.deepEqual(plan(shape, { dead: [4] }).start, [], 'a dead worker\'s free targets are not used');
  assert.deepEqual(plan({ ...shape, workers: workersUpTo(4, { 4: { gone: true } }) }).start, [], 'nor a decommissioned worker\'s');
  // A free target that holds chunks (it left a chain, or files written after a restored backup are
  // on it) or whose count is not known yet is never a destination: the resync would remove them.
  assert.deepEqual(plan(shape, { chunks: { 41: 3, 42: undefined } }).start, []);
  assert.deepEqual(plan(shape, { chunks: { 41: 3 } }).start.map((m) => m.toTargetId), [42]);
});

test('only healthy chains move, one move per chain, at most movesMax under way', () => {
  const shape: Shape = {
    workers: workersUpTo(6),
    chains: { 1: { members: [[11, 'serving'], [21, 'serving'], [31, 'syncing']] }, 2: { members: serving(12, 22, 32), moving: { fromTargetId: 12, toTargetId: 41 } }, 3: { members: serving(13, 23, 33) } },
    free: [51, 52, 61, 62],
  };
  shape.chains[2].members.push([41, 'syncing']);
  const p = plan(shape, { movesMax: 3 });
  // Chain 1 has a syncing member, chain 2 moves already: only chain 3 may move, once.
  assert.deepEqual(p.start.map((m) => m.chainId), [3]);
  assert.deepEqual(plan(shape, { movesMax: 1 }).start, [], 'one under way already');
});

test('a move ends done once the newcomer serves, cancelled when it is lost before it caught up, never dropping one that served', () => {
  const moving = { fromTargetId: 11, toTargetId: 41 };
  const chain = (state: TargetState, other: TargetState = 'serving'): Shape => ({ workers: workersUpTo(4), chains: { 1: { members: [[11, 'serving'], [21, other], [31, 'serving'], [41, state]], moving } }, free: [] });
  assert.deepEqual(plan(chain('syncing')).end, []);
  assert.deepEqual(plan(chain('serving')).end.map((e) => [e.chainId, e.outcome, e.version]), [[1, 'done', 5]]);
  assert.deepEqual(plan(chain('serving', 'offline')).end.map((e) => e.outcome), ['done'], 'another member is behind: the source goes all the same (the chain keeps what it had)');
  assert.deepEqual(plan(chain('serving'), { dead: [4] }).end.map((e) => e.outcome), ['done'], 'a newcomer that serves is kept even if its worker goes quiet');
  assert.deepEqual(plan(chain('syncing'), { dead: [4] }).end.map((e) => [e.outcome, e.why]), [['cancelled', 'the newcomer\'s worker 4 is not heard from, and it had not caught up']]);
  // The newcomer served last (every other member down): it may hold the only copy of the latest writes.
  const lastsrv: Shape = { workers: workersUpTo(4), chains: { 1: { members: [[41, 'lastsrv'], [11, 'offline'], [21, 'offline'], [31, 'offline']], moving } }, free: [] };
  assert.deepEqual(plan(lastsrv, { dead: [4] }).end, []);
  assert.deepEqual(plan({ ...lastsrv, workers: workersUpTo(4, { 4: { gone: true } }) }).end, []);
  const gone = { ...chain('syncing'), workers: workersUpTo(4, { 4: { gone: true } }) };
  assert.match(plan(gone).end[0].why, /decommissioned/);
  // A move's ends are not replaced as lost members: the move ends first.
  const lost = { ...chain('syncing'), workers: workersUpTo(5, { 1: { gone: true } }), free: [51] };
  assert.deepEqual(planReplacements({ ...tables(lost), alive: () => true, offlineTooLong: () => false, usedBytes: () => 0 }).replacements, []);
});

test('a move never merges failure domains', () => {
  // Chains span domains a, b, c; the new worker 4 is in domain b: only worker 2's members (in b)
  // may go there, not worker 1's, which would leave a chain with two members in b.
  const shape: Shape = { workers: { 1: { domain: 'a' }, 2: { domain: 'b' }, 3: { domain: 'c' }, 4: { domain: 'b' } }, chains: { 1: { members: serving(11, 21, 31) }, 2: { members: serving(12, 22, 32) } }, free: [41, 42] };
  assert.deepEqual(plan(shape).start.map((m) => [m.fromTargetId, m.toTargetId]), [[21, 41]]);
  // A new worker in domain a takes worker 1's member.
  const a: Shape = { ...shape, workers: { ...shape.workers, 4: { domain: 'a' } } };
  assert.deepEqual(plan(a).start.map((m) => [m.fromTargetId, m.toTargetId]), [[11, 41]]);
});

/**
 * Runs the plan through the real commands, standing in for resync (newcomers serve at once), until
 * nothing moves. A target that leaves a chain keeps its chunks, so it is no destination after.
 */
function converge(workers: number, targetsPer: number[], chains: number[][], movesMax: number): { fs: MetaFs; moves: number; chunks: (t: TargetInfo) => number } {
  const fs = new MetaFs({ clientId: 'manager', stepMs: 1 });
  for (let w = 1; w <= workers; w++) {
    fs.ok({ op: 'registerWorker', workerId: w, instance: 'i', address: `h${w}:1`, domain: '', targets: Array.from({ length: targetsPer[w - 1] }, (_, k) => ({ targetId: w * 100 + k, path: `/d${k}`, capacityBytes: 100 })) });
  }
  fs.ok({ op: 'addChains', tableId: 1, chains: chains.map((targetIds, i) => ({ chainId: i + 1, targetIds })) });
  const potential = (): number => {
    let sum = 0;
    for (let w = 1; w <= workers; w++) {
      const members = fs.state.targets().filter((t) => t.workerId === w && t.chainId !== 0).length;
      sum += (members * members) / targetsPer[w - 1];
    }
    return sum;
  };
  let moves = 0;
  const dirty = new Set<number>();
  const chunks = (t: TargetInfo): number => (dirty.has(t.targetId) ? 1 : 0);
  let settled = potential();
  for (let round = 0; round < 10_000; round++) {
    const p = planRebalance({ workers: fs.state.workers(), targets: fs.state.targets(), chains: fs.state.chains(), alive: () => true, usedBytes: () => 0, chunks, movesMax });
    for (const e of p.end) {
      fs.ok({ op: 'endChainMove', chainId: e.chainId, version: e.version, outcome: e.outcome });
      dirty.add(e.outcome === 'done' ? e.fromTargetId : e.toTargetId);
    }
    if (p.end.length > 0) {
      // Every move ended done: the sum of members² / targets fell (which is why rebalancing ends).
      assert.ok(p.end.every((e) => e.outcome === 'done'));
      assert.ok(potential() < settled - 1e-9, `moves ended, and members²/targets went from ${settled} to ${potential()}`);
      settled = potential();
    }
    for (const m of p.start) {
      const membersBefore = fs.state.chains().find((c) => c.chainId === m.chainId)!.targetIds.length;
      const chain = fs.ok({ op: 'moveChainMember', chainId: m.chainId, version: m.version, fromTargetId: m.fromTargetId, toTargetId: m.toTargetId });
      // Resync stands in: the newcomer serves. The chain never had fewer serving members.
      const states = chain.targetIds.map((id) => ({ targetId: id, state: 'serving' as const }));
      fs.ok({ op: 'updateChains', chains: [{ chainId: chain.chainId, version: chain.version, targets: states }] });
      assert.equal(states.length, membersBefore + 1);
      moves++;
    }
    assert.ok(fs.state.chains().filter((c) => c.moving !== undefined).length <= movesMax);
    if (p.end.length === 0 && p.start.length === 0) return { fs, moves, chunks };
  }
  throw new Error('rebalancing did not converge');
}

test('property: rebalancing converges; chains keep their ids, lengths and distinct workers; no move is left that would help', () => {
  fc.assert(
    fc.property(fc.integer({ min: 3, max: 6 }), fc.integer({ min: 1, max: 4 }), fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 4 }), fc.integer({ min: 1, max: 3 }), (oldWorkers, oldTargets, newTargets, movesMax) => {
      // Old workers' targets all in chains of 3 (round robin over workers), then new workers join.
      const chains: number[][] = [];
      for (let k = 0; k < oldTargets; k++) {
        for (let c = 0; c + 3 <= oldWorkers; c += 3) chains.push([c + 1, c + 2, c + 3].map((w) => w * 100 + k));
      }
      if (chains.length === 0) return;
      const workers = oldWorkers + newTargets.length;
      const targetsPer = [...Array(oldWorkers).fill(oldTargets), ...newTargets];
      const before = chains.map((c, i) => [i + 1, c.length]);
      const { fs, chunks } = converge(workers, targetsPer, chains, movesMax);
      const after = fs.state.chains();
      assert.deepEqual(after.map((c) => [c.chainId, c.targetIds.length]), before);
      for (const c of after) {
        assert.equal(c.moving, undefined);
        assert.equal(new Set(c.targetIds.map((id) => Math.floor(id / 100))).size, c.targetIds.length);
      }
      assert.equal(fs.state.chainTables()[0].chainIds.length, chains.length, 'no chain added or dropped');
      // At the end no worker could give a member to another with an empty free target and lower the imbalance by the rule.
      assert.deepEqual(planRebalance({ workers: fs.state.workers(), targets: fs.state.targets(), chains: after, alive: () => true, usedBytes: () => 0, chunks, movesMax }).start, []);
    }),
    { numRuns: 60, seed: 7 },
  );
});

test('worked example: 3 workers x 2 targets and a new worker with 2 spread to members 1, 2, 2, 1', () => {
  const { fs, moves } = converge(4, [2, 2, 2, 2], [[100, 200, 300], [101, 201, 301]], 2);
  assert.equal(moves, 1);
  const per = [1, 2, 3, 4].map((w) => fs.state.targets().filter((t) => t.workerId === w && t.chainId !== 0).length);
  assert.deepEqual(per, [1, 2, 2, 1]);
});

// The cluster manager's replacement plan (src/master/replacements.ts), on plain tables: which lost
// member each chain replaces with which free target, the chains that must wait and why, and what
// decommissioning a worker would do.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decommissionImpact, planReplacements, replacementsPerRoundMax, type ReplacementInput } from '../../src/master/replacements.ts';
import type { TargetState } from '../../src/meta/commands.ts';
import type { ChainInfo, TargetInfo, WorkerInfo } from '../../src/meta/index.ts';

interface Shape {
  /** Workers by id: domain and whether decommissioned. */
  workers: Record<number, { domain?: string; gone?: boolean }>;
  /** Chains by id: members as [targetId, state]; a target's worker is its id / 10, rounded down. */
  chains: Record<number, [number, TargetState][]>;
  /** Free targets (in no chain). */
  free: number[];
}

function tables(shape: Shape): Pick<ReplacementInput, 'workers' | 'targets' | 'chains'> {
  const targets: TargetInfo[] = [];
  const target = (targetId: number, state: TargetState, chainId: number): TargetInfo => ({ targetId, workerId: Math.floor(targetId / 10), path: '/d', capacityBytes: 100, state, chainId });
  const chains: ChainInfo[] = Object.entries(shape.chains).map(([id, members]) => {
    for (const [targetId, state] of members) targets.push(target(targetId, state, Number(id)));
    return { chainId: Number(id), version: 5, targetIds: members.map(([t]) => t) };
  });
  for (const id of shape.free) targets.push(target(id, 'offline', 0));
  const workers: WorkerInfo[] = Object.entries(shape.workers).map(([id, w]) => ({
    workerId: Number(id), instance: 'i', address: 'h:1', domain: w.domain ?? '', targets: targets.filter((t) => t.workerId === Number(id)), registeredMs: 0, updatedMs: 0,
    ...(w.gone ? { decommissionedMs: 1 } : {}),
  }));
  return { workers, targets, chains };
}

function plan(shape: Shape, opts: { dead?: number[]; tooLong?: number[]; used?: Record<number, number> } = {}) {
  return planReplacements({
    ...tables(shape),
    alive: (t) => !(opts.dead ?? []).includes(t.workerId),
    offlineTooLong: (t) => (opts.tooLong ?? []).includes(t.targetId),
    usedBytes: (t) => opts.used?.[t.targetId] ?? 0,
  });
}

const fourWorkers = (gone: number[] = []): Shape['workers'] => Object.fromEntries([1, 2, 3, 4].map((w) => [w, { gone: gone.includes(w) }]));

test('each chain with a decommissioned worker\'s member gets a free target on a worker it does not use', () => {
  const p = plan({ workers: fourWorkers([2]), chains: { 1: [[11, 'serving'], [21, 'serving'], [31, 'serving']], 2: [[12, 'serving'], [41, 'serving'], [22, 'offline']] }, free: [32, 42] }, { dead: [2] });
  assert.deepEqual(p.replacements.map((r) => [r.chainId, r.version, r.lostTargetId, r.newTargetId, r.reason]), [[1, 5, 21, 42, 'decommissioned'], [2, 5, 22, 32, 'decommissioned']]);
  assert.deepEqual(p.stuck, []);
});

test('a chain without a qualifying free target stays degraded, and the plan says why', () => {
  // The only free target is on worker 3, which chain 1 uses; the next round finds nothing at all.
  const p = plan({ workers: fourWorkers([2]), chains: { 1: [[11, 'serving'], [31, 'serving'], [21, 'offline']] }, free: [32] }, { dead: [2] });
  assert.deepEqual(p.replacements, []);
  assert.equal(p.stuck.length, 1);
  assert.deepEqual([p.stuck[0].chainId, p.stuck[0].lostTargetId, p.stuck[0].lostWorkerId, p.stuck[0].reason], [1, 21, 2, 'decommissioned']);
  assert.match(p.stuck[0].why, /free live target\(s\) are all on workers the chain uses \(1, 3\)/);
  const empty = plan({ workers: fourWorkers([2]), chains: { 1: [[11, 'serving'], [31, 'serving'], [21, 'offline']] }, free: [42] }, { dead: [2, 4] });
  assert.match(empty.stuck[0].why, /no free target on a live worker in service; add a worker or a disk/);
  // A decommissioned worker's own free targets never count.
  const own = plan({ workers: fourWorkers([2, 4]), chains: { 1: [[11, 'serving'], [31, 'serving'], [21, 'offline']] }, free: [42, 22] });
  assert.match(own.stuck[0].why, /no free target/);
});

test('a lost member holding the only up-to-date copy stays; one that still serves waits for a resync in progress', () => {
  const only = plan({ workers: fourWorkers([2]), chains: { 1: [[21, 'lastsrv'], [11, 'waiting'], [31, 'offline']] }, free: [41] });
  assert.match(only.stuck[0].why, /cannot leave the chain: target 21 holds the chain's only up-to-date replica \(lastsrv\)/);
  const serving = plan({ workers: fourWorkers([2]), chains: { 1: [[11, 'serving'], [21, 'serving'], [31, 'syncing']] }, free: [41] });
  assert.match(serving.stuck[0].why, /still serves, and waits until member 31 \(syncing\) has caught up/);
  // Once the chain is whole again, it goes.
  const whole = plan({ workers: fourWorkers([2]), chains: { 1: [[11, 'serving'], [21, 'serving'], [31, 'serving']] }, free: [41] });
  assert.deepEqual(whole.replacements.map((r) => [r.lostTargetId, r.newTargetId]), [[21, 41]]);
});

test('of two lost members the one that no longer serves goes first, one per chain and round', () => {
  const p = plan({ workers: fourWorkers([2, 3]), chains: { 1: [[11, 'serving'], [21, 'serving'], [31, 'offline']] }, free: [41] }, { dead: [3] });
  assert.deepEqual(p.replacements.map((r) => [r.lostTargetId, r.newTargetId]), [[31, 41]]);
});

test('--replace-after-ms: an offline member of a worker in service is replaced once it is down too long', () => {
  const shape: Shape = { workers: fourWorkers(), chains: { 1: [[11, 'serving'], [21, 'serving'], [31, 'offline']] }, free: [41] };
  assert.deepEqual(plan(shape, { dead: [3] }), { replacements: [], stuck: [] });
  assert.deepEqual(plan(shape, { dead: [3], tooLong: [31] }).replacements.map((r) => [r.lostTargetId, r.newTargetId, r.reason]), [[31, 41, 'offline']]);
  // Only offline members: a serving one is never replaced this way.
  assert.deepEqual(plan(shape, { tooLong: [21] }).replacements, []);
});

test('replacements prefer new failure domains, then spread over the least loaded workers; a target goes to one chain', () => {
  const workers = { 1: { domain: 'a' }, 2: { domain: 'b', gone: true }, 3: { domain: 'c' }, 4: { domain: 'a' }, 5: { domain: 'd' }, 6: { domain: 'e' } };
  const p = plan({ workers, chains: { 1: [[11, 'serving'], [31, 'serving'], [21, 'offline']], 2: [[12, 'serving'], [32, 'serving'], [22, 'offline']] }, free: [41, 51, 52, 61] }, { dead: [2], used: { 51: 10 } });
  // Chain 1: 41 shares domain a; 51, 52 and 61 are new domains on idle workers; 51 holds bytes; 52 has the lower id.
  // Chain 2: worker 5 now has a member, worker 6 none: 61.
  assert.deepEqual(p.replacements.map((r) => [r.chainId, r.newTargetId, r.distinctDomain]), [[1, 52, true], [2, 61, true]]);
});

test(`at most ${replacementsPerRoundMax} chains change per round; the rest wait`, () => {
  const chains: Shape['chains'] = {};
  const free: number[] = [];
  const workers: Shape['workers'] = {};
  for (let c = 1; c <= replacementsPerRoundMax + 3; c++) {
    // Serving members on workers 100.. and 200.., the lost one on decommissioned workers 20..,
    // a free target on a worker of its own (300 + c).
    chains[c] = [[1000 + c, 'serving'], [2000 + c, 'serving'], [200 + c, 'offline']];
    workers[Math.floor((200 + c) / 10)] = { gone: true };
    free.push((300 + c) * 10 + 1);
  }
  const p = plan({ workers, chains, free });
  assert.equal(p.replacements.length, replacementsPerRoundMax);
  assert.equal(p.stuck.length, 3);
  assert.match(p.stuck[0].why, /waits for a later round/);
});

test('decommissionImpact: what each chain keeps, and the chains it would leave without a serving member', () => {
  const t = tables({ workers: fourWorkers([4]), chains: { 1: [[11, 'serving'], [21, 'serving'], [31, 'serving']], 2: [[22, 'serving'], [12, 'offline'], [32, 'offline']], 3: [[23, 'serving'], [41, 'serving'], [33, 'offline']] }, free: [13, 42] });
  const impact = decommissionImpact(2, t.workers, t.targets, t.chains);
  assert.deepEqual(impact.chains, [
    { chainId: 1, leaving: [21], members: 3, servingLeft: 2 },
    { chainId: 2, leaving: [22], members: 3, servingLeft: 0 },
    // 41 serves, but on a decommissioned worker: it does not count.
    { chainId: 3, leaving: [23], members: 3, servingLeft: 0 },
  ]);
  assert.deepEqual(impact.unsafeChainIds, [2, 3]);
  assert.equal(impact.freeTargets, 1, '13 only: 42 is on decommissioned worker 4');
  assert.deepEqual(decommissionImpact(1, t.workers, t.targets, t.chains).unsafeChainIds, []);
});

// The choice of a replacement target (src/placement/replace.ts): never a worker the chain uses, a
// new failure domain when there is one, then the least loaded worker, the emptiest target, the
// largest, the lowest id.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { pickReplacement, type ReplacementCandidate } from '../../src/placement/index.ts';

const cand = (targetId: number, workerId: number, extra: Partial<ReplacementCandidate> = {}): ReplacementCandidate => ({ targetId, workerId, capacityBytes: 100, usedBytes: 0, ...extra });
const none = new Map<number, number>();

test('a replacement is never on a worker the chain keeps', () => {
  assert.equal(pickReplacement([{ workerId: 1 }, { workerId: 2 }], [cand(11, 1), cand(21, 2)], none), undefined);
  assert.equal(pickReplacement([{ workerId: 1 }, { workerId: 2 }], [cand(11, 1), cand(31, 3)], none)?.target.targetId, 31);
  assert.equal(pickReplacement([{ workerId: 1 }], [], none), undefined);
});

test('a failure domain the chain does not use comes first, when there is one', () => {
  const kept = [{ workerId: 1, domain: 'a' }, { workerId: 2, domain: 'b' }];
  const pick = pickReplacement(kept, [cand(31, 3, { domain: 'a' }), cand(41, 4, { domain: 'c', usedBytes: 50 })], none);
  assert.deepEqual([pick?.target.targetId, pick?.distinctDomain], [41, true]);
  // Only domains already used: still a replacement (on another worker), said to share a domain.
  const shared = pickReplacement(kept, [cand(31, 3, { domain: 'a' })], none);
  assert.deepEqual([shared?.target.targetId, shared?.distinctDomain], [31, false]);
  // A worker without a domain is a domain of its own.
  assert.equal(pickReplacement([{ workerId: 1 }, { workerId: 2, domain: 'b' }], [cand(31, 3, { domain: 'b' }), cand(41, 4)], none)?.target.targetId, 41);
});

test('then the least loaded worker, the emptiest target, the largest, the lowest id', () => {
  const kept = [{ workerId: 1 }];
  assert.equal(pickReplacement(kept, [cand(21, 2), cand(31, 3)], new Map([[2, 5], [3, 4]]))?.target.targetId, 31);
  assert.equal(pickReplacement(kept, [cand(21, 2, { usedBytes: 9 }), cand(31, 3, { usedBytes: 1 })], none)?.target.targetId, 31);
  assert.equal(pickReplacement(kept, [cand(21, 2), cand(31, 3, { capacityBytes: 200 })], none)?.target.targetId, 31);
  assert.equal(pickReplacement(kept, [cand(31, 3), cand(21, 2)], none)?.target.targetId, 21);
});

test('property: the pick is a candidate off the chain\'s workers, the same whatever the candidates\' order', () => {
  const candidate: fc.Arbitrary<ReplacementCandidate> = fc.record({ targetId: fc.integer({ min: 1, max: 500 }), workerId: fc.integer({ min: 1, max: 8 }), domain: fc.constantFrom<string | undefined>(undefined, 'a', 'b', 'c'), capacityBytes: fc.nat(3), usedBytes: fc.nat(3) });
  fc.assert(
    fc.property(fc.uniqueArray(candidate, { selector: (c) => c.targetId, maxLength: 12 }), fc.uniqueArray(fc.integer({ min: 1, max: 8 }), { maxLength: 4 }), (cands, keptWorkers) => {
      const kept = keptWorkers.map((workerId) => ({ workerId }));
      const pick = pickReplacement(kept, cands, none);
      const eligible = cands.filter((c) => !keptWorkers.includes(c.workerId));
      assert.equal(pick === undefined, eligible.length === 0);
      if (pick === undefined) return;
      assert.ok(eligible.includes(pick.target));
      assert.equal(pickReplacement(kept, [...cands].reverse(), none)?.target, pick.target);
    }),
    { numRuns: 500 },
  );
});

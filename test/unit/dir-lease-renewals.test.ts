// The leader's side of directory leases: renewals answer which held directories others wait for
// and which the holder lost; a recalled directory cools down before it is held again; holders not
// named by a renewal for a lease, or kept long after a recall, are ended, but never by a leader
// younger than a lease.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DirLeaseRenewals, dirLeaseCooldownMs, recallGraceLeases, validateRenewDirLeases } from '../../src/master/dir-lease-renewals.ts';
import type { DirLease } from '../../src/meta/index.ts';

const lease = (dirInodeId: number, holder: string): DirLease => ({ dirInodeId, holder, clientId: 'c', grantedMs: 0, idNext: 100, idEnd: 200 });

test('renewals name recalled and lost directories; a recall cools the directory down until it is held anew', () => {
  const r = new DirLeaseRenewals(5_000);
  const leases = new Map([[2, lease(2, 'a')], [3, lease(3, 'a')], [4, lease(4, 'b')]]);
  assert.deepEqual(r.renewHolder('a', [2, 3, 4, 9], leases, 0), { leaseMs: 5_000, recalled: [], lost: [4, 9] });
  r.recall(3, 10);
  assert.deepEqual(r.renewHolder('a', [2, 3], leases, 20).recalled, [3]);
  assert.equal(r.coolingDown(3, 20), true);
  assert.equal(r.coolingDown(3, 10 + dirLeaseCooldownMs), false);
  assert.equal(r.coolingDown(2, 20), false);
  r.granted(3, 30);
  assert.deepEqual(r.renewHolder('a', [2, 3], leases, 30).recalled, [], 'held anew: the old recall is over');
});

test('leases no renewal named for a lease are ended, once this leader has led for a lease', () => {
  const r = new DirLeaseRenewals(5_000);
  const leases = new Map([[2, lease(2, 'a')], [3, lease(3, 'b')], [4, lease(4, 'b')]]);
  r.renewHolder('a', [2], leases, 0);
  r.granted(4, 0);
  assert.deepEqual(r.expired(leases, 1_000, 0), [], 'a young leader ends nothing');
  assert.deepEqual(r.expired(leases, 5_000, 0).map((l) => l.dirInodeId), [3]);
  // b renews, but names only 4: 3 stays unnamed (a give-back that failed) and ends.
  r.renewHolder('b', [4], leases, 5_000);
  assert.deepEqual(r.expired(leases, 6_000, 0).map((l) => l.dirInodeId), [2, 3]);
});

test('a lease being ended answers lost to a renewal that comes before the journal applied its end', () => {
  const r = new DirLeaseRenewals(5_000);
  const leases = new Map([[2, lease(2, 'a')], [3, lease(3, 'a')]]);
  r.renewHolder('a', [3], leases, 4_000);
  assert.deepEqual(r.expired(leases, 6_000, 0).map((l) => l.dirInodeId), [2]);
  // a was cut off and comes back while the end is being proposed: it must stop answering there.
  assert.deepEqual(r.renewHolder('a', [2, 3], leases, 6_001).lost, [2]);
  // A new leadership forgets it (the proposal may have been lost with the old one).
  r.leadershipBegan();
  assert.deepEqual(r.renewHolder('a', [2, 3], leases, 6_002).lost, []);
  // Once the end applied, the state says so; and the lease held anew by its holder is its again.
  r.expired(leases, 12_000, 0);
  leases.delete(2);
  assert.deepEqual(r.renewHolder('a', [2], leases, 12_001).lost, [2]);
  leases.set(2, lease(2, 'a'));
  assert.deepEqual(r.renewHolder('a', [2], leases, 12_002).lost, [], 'held anew');
  r.expired(leases, 18_000, 0);
  leases.set(2, lease(2, 'a')); // ended and held anew by a, with no renewal between
  r.granted(2, 18_001);
  assert.deepEqual(r.renewHolder('a', [2], leases, 18_002).lost, [], 'held anew, told at once');
});

test('a holder that renews but keeps a recalled directory loses it once others waited for it recallGraceLeases leases', () => {
  const r = new DirLeaseRenewals(5_000);
  const grace = recallGraceLeases * 5_000;
  const leases = new Map([[2, lease(2, 'a')], [3, lease(3, 'a')]]);
  r.granted(2, 0);
  r.granted(3, 0);
  // Others are refused directory 2 from 6 s on and keep retrying; a renews both all along.
  let t = 0;
  for (; t <= 6_000 + grace; t += 100) {
    if (t >= 6_000) r.recall(2, t);
    r.renewHolder('a', [2, 3], leases, t);
    if (t < 6_000 + grace) assert.deepEqual(r.expired(leases, t, 0), [], `kept at ${t} ms: within the grace`);
  }
  assert.deepEqual(r.expired(leases, t, 0).map((l) => l.dirInodeId), [2], 'kept past the grace: ended');
  assert.deepEqual(r.renewHolder('a', [2, 3], leases, t + 1).lost, [2], 'and its holder hears it lost');
  // A recall nobody waits on any more (no refusal for a lease) does not end a lease later.
  r.granted(3, t);
  r.recall(3, t);
  for (let u = t; u <= t + 3 * grace; u += 100) r.renewHolder('a', [3], leases, u);
  assert.deepEqual(r.expired(leases, t + 3 * grace, 0).map((l) => l.dirInodeId).filter((id) => id === 3), []);
});

test('a renewal body is validated', () => {
  assert.deepEqual(validateRenewDirLeases({ holder: 'm-1', dirs: [2, 3] }), { holder: 'm-1', dirs: [2, 3] });
  for (const bad of [{}, { holder: 'a b', dirs: [] }, { holder: 'a', dirs: [0] }, { holder: 'a', dirs: [1.5] }, { holder: 'a', dirs: [], extra: 1 }]) {
    assert.throws(() => validateRenewDirLeases(bad), JSON.stringify(bad));
  }
});

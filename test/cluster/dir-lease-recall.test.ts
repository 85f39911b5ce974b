// A holder that renews its directory lease but ignores the leader's recall (a mount stuck in its
// give-back, or a hostile client) cannot shut the directory to everyone else: the leader ends the
// lease once others have waited two leases, and the waiting client's create goes through within
// its retry deadline. A real master process on 127.0.0.1, its default 5 s lease.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MasterClient } from '../../src/client/master-client.ts';
import { dirLeaseMsDefault, recallGraceLeases, type RenewDirLeasesReply } from '../../src/master/dir-lease-renewals.ts';
import { rootCaller, type LeaseDirValue } from '../../src/meta/index.ts';
import { TestCluster } from './harness.ts';

test('a holder that keeps renewing a recalled directory loses it, and the waiting client\'s create goes through', async (t) => {
  const c = await TestCluster.start(t, { masters: 1 });
  const holder = 'stuck-holder';
  const stuck = new MasterClient({ masters: c.addresses(), secret: c.secret, caller: { ...rootCaller, holder } });
  const other = c.client();
  let renewing: NodeJS.Timeout | undefined;
  t.after(() => {
    clearInterval(renewing);
    stuck.close();
  });

  await other.mutate('meta.mutate', { op: 'mkdir', path: '/held', mode: 0o755, uid: 0, gid: 0 });
  const lease = await stuck.mutate<LeaseDirValue>('meta.mutate', { op: 'leaseDir', path: '/held' });
  // Renews every 100 ms as a mount does, and never gives the directory back, recalled or not.
  const replies: RenewDirLeasesReply[] = [];
  const renew = (): void => void stuck.call<RenewDirLeasesReply>('meta.renewDirLeases', { holder, dirs: [lease.dir.inodeId] }).then((r) => replies.push(r), () => undefined);
  renew();
  renewing = setInterval(renew, 100);

  const started = performance.now();
  await other.mutate('meta.mutate', { op: 'create', path: '/held/f', mode: 0o644, uid: 0, gid: 0 });
  const waitedMs = performance.now() - started;
  const graceMs = recallGraceLeases * dirLeaseMsDefault;
  assert.ok(waitedMs >= graceMs - 500, `the holder kept it for its grace first (${Math.round(waitedMs)} ms)`);
  assert.ok(replies.some((r) => r.recalled.includes(lease.dir.inodeId)), 'the holder was asked to give it back');
  // Its renewals now say the lease is lost, so a real mount would stop answering there.
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.deepEqual(replies.at(-1)?.lost, [lease.dir.inodeId]);
});

// The scrubber's passes (src/worker/scrubber.ts). After a restart a worker's targets resync before
// they serve: a pass that skipped them counted as done and slept an hour (its default pause), so
// damage that no read or resync touched went unseen that long after every restart (a probe saw
// "3 passes, 0 chunks verified" with hundreds of MiB stored).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Clock, Disk, Timer } from '../../src/io/index.ts';
import { TargetState } from '../../src/meta/commands.ts';
import { Routing } from '../../src/meta/routing.ts';
import { SimFs } from '../../src/sim/sim-fs.ts';
import { ChunkStore } from '../../src/worker/chunk-store.ts';
import type { ChainReplica } from '../../src/worker/replication.ts';
import { Scrubber } from '../../src/worker/scrubber.ts';

function instantDisk(fs: SimFs): Disk {
  return fs.attach({ later: (_ms, fn) => setImmediate(fn), syncLatencyMs: () => 0, syncFails: () => false, syncLies: () => false, onOp: () => undefined });
}

/** Time that passes only when waited for: every wait ends on the next turn of the event loop. */
function hurriedClock(): Clock {
  let now = 0;
  const after = (ms: number, fn: () => void): Timer => {
    const h = setImmediate(() => {
      now += ms;
      fn();
    });
    return { cancel: () => clearImmediate(h) };
  };
  return {
    now: () => now,
    wallNow: () => now,
    after,
    every: () => assert.fail('not used'),
    sleep: (ms) => new Promise((r) => after(ms, r)),
    randomInt: () => 0,
  };
}

function routingWith(state: TargetState): Routing {
  return new Routing({
    clusterId: 'c',
    routingVersion: 1,
    workers: [{ workerId: 1, address: 'w1:1' }],
    targets: [
      { targetId: 1001, workerId: 1, path: '/t1', capacityBytes: 1, state, chainId: 1 },
      // A free target (in no chain) has nothing to be checked against, and does not hold a pass up.
      { targetId: 1002, workerId: 1, path: '/t2', capacityBytes: 1, state: TargetState.Offline, chainId: 0 },
    ],
    chains: [{ chainId: 1, version: 1, targetIds: [1001] }],
    tables: [],
  });
}

test('a pass waits for a target that does not serve yet (it resyncs after a restart) and verifies it once it does', async () => {
  const store = await ChunkStore.open(instantDisk(new SimFs()), '/t1', { identity: { clusterId: 'c', workerId: 1, targetId: 1001 } });
  for (let i = 0; i < 3; i++) {
    await store.stage({ inodeId: 7, index: i }, { version: 1, chainVersion: 1, offset: 0, data: new Uint8Array(4096).fill(i) });
    await store.commit({ inodeId: 7, index: i }, 1);
  }
  const free = await ChunkStore.open(instantDisk(new SimFs()), '/t2', { identity: { clusterId: 'c', workerId: 1, targetId: 1002 } });
  let routing = routingWith(TargetState.Syncing);
  const scrubber = new Scrubber(
    {
      clock: hurriedClock(),
      targets: () => [
        { targetId: 1001, store },
        { targetId: 1002, store: free },
      ],
      routing: () => routing,
      serving: () => true,
      replica: {} as ChainReplica,
    },
    { rateBytesPerSec: 1 << 30, pauseMs: 3_600_000 },
  );
  scrubber.start();
  try {
    for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
    assert.deepEqual([scrubber.stats.passes, scrubber.stats.chunks], [0, 0], 'no pass ends while its target resyncs');
    routing = routingWith(TargetState.Serving);
    for (let i = 0; i < 500 && scrubber.stats.passes === 0; i++) await new Promise((r) => setImmediate(r));
    assert.deepEqual([scrubber.stats.passes, scrubber.stats.chunks, scrubber.stats.found], [1, 3, 0], 'the pass verified the target once it served');
  } finally {
    scrubber.stop();
  }
});

// The last serving member of a chain holds a version pending (its forward to a syncing member
// after it gave up), and a read comes: it must return that version (a member that served before
// may have returned it), and so the syncing member must have it before the read is answered. Its
// resync may have ended before the write, and it could be made serving without the version
// (src/worker/replication.ts, commitAtTail).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { crc32c } from '@node-rs/crc32';
import type { Connection, Disk } from '../../src/io/index.ts';
import { systemClock } from '../../src/io/system-clock.ts';
import { TargetState } from '../../src/meta/commands.ts';
import { Routing } from '../../src/meta/routing.ts';
import type { CallResult, Reply } from '../../src/rpc/index.ts';
import { SimFs } from '../../src/sim/sim-fs.ts';
import { ChunkStore } from '../../src/worker/chunk-store.ts';
import { WorkerError, WorkerErrorCode } from '../../src/worker/errors.ts';
import { WorkerMethod, type WriteRequest } from '../../src/worker/protocol.ts';
import { ChainReplica } from '../../src/worker/replication.ts';

const chunk = { inodeId: 7, index: 0 };

function instantDisk(fs: SimFs): Disk {
  return fs.attach({ later: (_ms, fn) => setImmediate(fn), syncLatencyMs: () => 0, syncFails: () => false, syncLies: () => false, onOp: () => undefined });
}

test('a pending version a read commits at the last serving member reaches the syncing member after it first; while it cannot, the read fails', async () => {
  const store = await ChunkStore.open(instantDisk(new SimFs()), '/t1001', { identity: { clusterId: 'c', workerId: 1, targetId: 1001 } });
  // Chain 1: target 1001 serves (head, and last serving member), 1002 syncs behind it.
  const routing = new Routing({
    clusterId: 'c',
    routingVersion: 1,
    workers: [1, 2].map((w) => ({ workerId: w, address: `w${w}:1` })),
    targets: [
      { targetId: 1001, workerId: 1, path: '/t1001', capacityBytes: 1, state: TargetState.Serving, chainId: 1 },
      { targetId: 1002, workerId: 2, path: '/t1002', capacityBytes: 1, state: TargetState.Syncing, chainId: 1 },
    ],
    chains: [{ chainId: 1, version: 1, targetIds: [1001, 1002] }],
    tables: [],
  });
  let refusing = false;
  const forwarded: number[] = [];
  const conn: Connection = {
    call: async <T>(method: string, body: unknown): Promise<CallResult<T>> => {
      assert.equal(method, WorkerMethod.forward);
      if (refusing) throw new WorkerError(WorkerErrorCode.TargetUnavailable, 'target 1002 cannot take it now');
      forwarded.push((body as WriteRequest).updateVersion!);
      return { body: {} as T, payload: undefined };
    },
    notify: () => undefined,
    close: () => undefined,
  };
  const replica = new ChainReplica({ clock: systemClock, routing: () => routing, serving: () => true, store: (id) => (id === 1001 ? store : undefined), connect: () => conn, forwardDeadlineMs: 200, syncPageChunks: 4096, callTimeoutMs: 1_000 });
  const write = (fill: number): Promise<unknown> => {
    const data = new Uint8Array(4096).fill(fill);
    return replica.write({ chainId: 1, chainVersion: 1, ...chunk, offset: 0, crc32c: crc32c(data) }, data);
  };
  const read = async (): Promise<number> => ((await replica.read({ chainId: 1, chainVersion: 1, ...chunk, offset: 0, length: 4096 })) as Reply).payload![0];

  await write(1);
  assert.deepEqual(forwarded, [1]);
  refusing = true;
  await assert.rejects(write(2), { code: WorkerErrorCode.TargetUnavailable }, 'the forward of version 2 gives up');
  assert.equal(store.get(chunk)?.pending?.version, 2, 'version 2 stays pending');
  await assert.rejects(read(), { code: WorkerErrorCode.TargetUnavailable }, 'not served while the syncing member cannot take it');
  assert.equal(store.get(chunk)?.commitVersion, 1, 'nor committed');
  refusing = false;
  assert.equal(await read(), 2, 'the read returns the pending version...');
  assert.deepEqual(forwarded, [1, 2], '...once the syncing member has it');
  assert.equal(store.get(chunk)?.commitVersion, 2);
});

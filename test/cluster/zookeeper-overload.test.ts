// The ZooKeeper journal's queues under overload (src/journal/zookeeper/zk-journal.ts): proposals
// waiting for a batch and reads waiting for a barrier are bounded; beyond, CAIRN_BUSY at once, the
// refused proposal never applied, and the journal serves normally afterwards.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { ErrorCode } from '../../src/errors.ts';
import { nodeDisk } from '../../src/io/node-disk.ts';
import { ZkJournal } from '../../src/journal/zookeeper/zk-journal.ts';
import { zkClusterFor, zooKeeperSkipReason } from '../zookeeper-fixture.ts';
import { waitFor } from './harness.ts';

const skip = zooKeeperSkipReason();

/** 'ok', or the error's code. */
function outcome(p: Promise<unknown>): Promise<string> {
  return p.then(() => 'ok', (err: unknown) => (err as { code?: string }).code ?? String(err));
}

test('zookeeper journal: proposals beyond proposalsQueuedMax and reads beyond barrierWaitersMax are refused with CAIRN_BUSY, and nothing refused is applied', { skip }, async (t) => {
  const zk = await zkClusterFor(t);
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-zk-overload-'));
  const journal = new ZkJournal({
    id: 1,
    address: '127.0.0.1:7301',
    connect: zk.connectString,
    clusterId: zk.clusterId,
    secret: 'overload',
    dir,
    disk: nodeDisk,
    transport: { handle: () => undefined, connect: () => assert.fail('no peer fetch expected') },
    proposalsQueuedMax: 4,
    barrierWaitersMax: 2,
  });
  t.after(async () => {
    await journal.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const applied: string[] = [];
  await journal.start({
    apply: (index, entry) => {
      applied.push(Buffer.from(entry).toString());
      return index;
    },
    snapshot: () => [],
    restore: () => undefined,
  });
  await waitFor(() => journal.isLeader(), 'the journal to lead', 10_000);
  // Proposed in one turn of the event loop: they wait for the batch that goes out on the next.
  const proposals = await Promise.all(Array.from({ length: 10 }, (_, i) => outcome(journal.propose(Buffer.from(`p${i}`)))));
  assert.deepEqual(proposals, [...Array(4).fill('ok'), ...Array(6).fill(ErrorCode.Busy)]);
  // The first read runs its barrier at once; two more wait for the next; the rest are refused.
  const reads = await Promise.all(Array.from({ length: 5 }, () => outcome(journal.readBarrier())));
  assert.deepEqual(reads, ['ok', 'ok', 'ok', ErrorCode.Busy, ErrorCode.Busy]);
  assert.equal(await outcome(journal.propose(Buffer.from('after'))), 'ok');
  await journal.readBarrier();
  assert.deepEqual(applied, ['p0', 'p1', 'p2', 'p3', 'after']);
});

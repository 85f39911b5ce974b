// statfs's size and free space (src/fuse/space.ts): each worker's disk once, its real free space.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mountSpace } from '../../src/fuse/space.ts';
import { TargetState } from '../../src/meta/commands.ts';
import type { TargetInfo } from '../../src/meta/namespace-state.ts';
import type { WorkerHealth } from '../../src/worker/protocol.ts';

const GiB = 2 ** 30;

function target(targetId: number, workerId: number, chainId: number): TargetInfo {
  return { targetId, workerId, path: `/w${workerId}/t${targetId}`, capacityBytes: 100 * GiB, state: TargetState.Serving, chainId } as TargetInfo;
}

function health(workerId: number, targets: { targetId: number; freeBytes?: number; device?: number }[]): WorkerHealth {
  return {
    workerId,
    heartbeatAgeMs: 0,
    targets: targets.map((t) => ({ chunks: 0, chunksCorrupt: 0, usedBytes: 0, capacityBytes: 100 * GiB, ...t })),
    scrub: undefined,
    bytesRead: 0,
    bytesWritten: 0,
  };
}

// Three workers with two targets each on one disk of 100 GiB, 40 GiB of it free; replication 3.
const targets = [1, 2, 3].flatMap((w) => [target(w * 1000 + 1, w, 1), target(w * 1000 + 2, w, 2)]);

test('targets of a worker on one disk count it once; free space is what the disks have, over the replication', () => {
  const h = [1, 2, 3].map((w) => health(w, [{ targetId: w * 1000 + 1, freeBytes: 40 * GiB, device: 7 }, { targetId: w * 1000 + 2, freeBytes: 40 * GiB, device: 7 }]));
  assert.deepEqual(mountSpace(targets, h, 3, 5 * GiB), { bytesTotal: 100 * GiB, bytesFree: 40 * GiB });
});

test('targets on separate disks each count; a target outside chains counts nothing', () => {
  const h = [1, 2, 3].map((w) => health(w, [{ targetId: w * 1000 + 1, freeBytes: 40 * GiB, device: 7 }, { targetId: w * 1000 + 2, freeBytes: 10 * GiB, device: 8 }]));
  const free = { ...target(4001, 4, 0) };
  assert.deepEqual(mountSpace([...targets, free], [...h, health(4, [{ targetId: 4001, freeBytes: 100 * GiB, device: 1 }])], 3, 0), { bytesTotal: 200 * GiB, bytesFree: 50 * GiB });
});

test('without free space in the heartbeats (older workers, none yet): capacity less the files\' bytes', () => {
  assert.deepEqual(mountSpace(targets, [], 3, 50 * GiB), { bytesTotal: 200 * GiB, bytesFree: 150 * GiB });
  const some = [health(1, [{ targetId: 1001, freeBytes: 1 * GiB, device: 7 }])];
  assert.equal(mountSpace(targets, some, 3, 50 * GiB).bytesFree, 150 * GiB, 'one disk unknown: all of it estimated');
});

// statfs's size and free space (src/fuse/space.ts): a chain holds what its smallest member can;
// targets sharing a disk share it; free space is what the disks really have.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mountSpace } from '../../src/fuse/space.ts';
import { TargetState } from '../../src/meta/commands.ts';
import type { ChainInfo, TargetInfo } from '../../src/meta/namespace-state.ts';
import type { WorkerHealth } from '../../src/worker/protocol.ts';

const GiB = 2 ** 30;

function target(targetId: number, workerId: number, chainId: number, capacityBytes = 100 * GiB): TargetInfo {
  return { targetId, workerId, path: `/w${workerId}/t${targetId}`, capacityBytes, state: TargetState.Serving, chainId } as TargetInfo;
}

function health(workerId: number, targets: { targetId: number; capacityBytes?: number; freeBytes?: number; device?: number }[]): WorkerHealth {
  return { workerId, heartbeatAgeMs: 0, targets: targets.map((t) => ({ chunks: 0, chunksCorrupt: 0, usedBytes: 0, capacityBytes: 100 * GiB, ...t })), scrub: undefined, bytesRead: 0, bytesWritten: 0 };
}

// Three workers with two targets each, chains 1 and 2 across them; replication 3.
const targets = [1, 2, 3].flatMap((w) => [target(w * 1000 + 1, w, 1), target(w * 1000 + 2, w, 2)]);
const chains: ChainInfo[] = [1, 2].map((c) => ({ chainId: c, version: 1, targetIds: [1000 + c, 2000 + c, 3000 + c] }));
const oneDiskEach = (freeBytes: number): WorkerHealth[] => [1, 2, 3].map((w) => health(w, [1, 2].map((i) => ({ targetId: w * 1000 + i, freeBytes, device: 7 }))));

test('each worker\'s two targets on one disk of 100 GiB, 40 GiB free: the mount is one disk, 40 GiB free', () => {
  assert.deepEqual(mountSpace(targets, chains, oneDiskEach(40 * GiB), 5 * GiB), { bytesTotal: 100 * GiB, bytesFree: 40 * GiB });
});

test('targets on a disk of their own each count whole; a target outside chains counts nothing', () => {
  const h = [1, 2, 3].map((w) => health(w, [{ targetId: w * 1000 + 1, freeBytes: 40 * GiB, device: 7 }, { targetId: w * 1000 + 2, freeBytes: 10 * GiB, device: 8 }]));
  const spare = target(4001, 4, 0);
  assert.deepEqual(mountSpace([...targets, spare], chains, [...h, health(4, [{ targetId: 4001, freeBytes: 100 * GiB, device: 1 }])], 0), { bytesTotal: 200 * GiB, bytesFree: 50 * GiB });
});

test('a chain holds what its smallest member can: one small full disk fills the mount', () => {
  const small = [...oneDiskEach(40 * GiB).slice(0, 2), health(3, [{ targetId: 3001, capacityBytes: 1 * GiB, freeBytes: 0, device: 8 }, { targetId: 3002, capacityBytes: 1 * GiB, freeBytes: 0, device: 9 }])];
  assert.deepEqual(mountSpace(targets, chains, small, 0), { bytesTotal: 2 * GiB, bytesFree: 0 });
});

test('without free space in the heartbeats (older workers, none yet): the size less the files\' bytes', () => {
  assert.deepEqual(mountSpace(targets, chains, [], 50 * GiB), { bytesTotal: 200 * GiB, bytesFree: 150 * GiB });
  const some = [health(1, [{ targetId: 1001, freeBytes: 1 * GiB, device: 7 }])];
  assert.equal(mountSpace(targets, chains, some, 50 * GiB).bytesFree, 150 * GiB, 'one disk unknown: all of it estimated');
});

// What a restored state moves forward so that nothing the lost cluster handed out after its backup
// is handed out again: workers still hold that cluster's chunks under its inode ids (a new file
// under one of them would find another file's old bytes), and workers and clients hold its routing
// versions (a lower version looks stale and is ignored). Pure: the floor comes inside the entry.

import { assert } from '../errors.ts';
import { TargetState } from './commands.ts';
import type { MetaTables } from './namespace-state.ts';

/**
 * Ids (and routing versions) a cluster may hand out per millisecond since its restore, on average,
 * without reaching the range of a restore made later: a restore at wall-clock time T starts its
 * counters at T × this, so one at T' > T starts (T' - T) × 1024 above it. The metadata journal
 * commits far fewer than a million creates a second.
 */
export const restoreIdsPerMs = 1024;

/** The largest floor: ids keep room above it (Number.MAX_SAFE_INTEGER is about 8.8 × 10^15; now × 1024 is about 1.8 × 10^15). */
export const restoreFloorMax = 2 ** 52;

/**
 * The instance a restored state gives every worker: no process runs under it, so each worker's next
 * heartbeat is refused and it registers again (the backup's picture of the workers says nothing
 * about the processes now).
 */
export const restoredInstance = 'restored';

/** The counters' floor for a restore whose leader reads wall-clock time `nowMs`. */
export function restoreFloor(nowMs: number): number {
  assert(Number.isSafeInteger(nowMs) && nowMs > 0, `restoreFloor: bad time ${nowMs}`);
  return Math.min(nowMs * restoreIdsPerMs, restoreFloorMax);
}

/** Why `floor` cannot be a restore's floor, or undefined if it can. */
export function floorProblem(floor: unknown): string | undefined {
  if (typeof floor !== 'number' || !Number.isSafeInteger(floor) || floor < 0 || floor > restoreFloorMax) return `the restore floor ${String(floor)} is not an integer in [0, ${restoreFloorMax}]`;
  return undefined;
}

/**
 * Continues a state restored from a backup in this cluster: at this log position (the backup's own
 * means nothing here), with its inode, session and routing counters at `floor` or above, and every
 * worker to register again. No free target is reclaimed as one that left a chain. Every chain
 * member is offline, with no lastsrv: which member served last is the lost cluster's knowledge, not
 * the backup's, so the cluster manager asks the workers' records (restoredSource) before any serves.
 */
export function continueRestored(t: MetaTables, index: number, floor: number): void {
  assert(floorProblem(floor) === undefined, floorProblem(floor) ?? '');
  t.indexApplied = index;
  t.nextInodeId = Math.max(t.nextInodeId, floor);
  t.nextSessionNo = Math.max(t.nextSessionNo, floor);
  for (const w of t.workers.values()) w.instance = restoredInstance;
  // The mounts that held directories then hold nothing in the cluster that goes on from here.
  t.dirLeases.clear();
  // The backup's picture of which targets left a chain is not the lost cluster's last: a target it
  // shows free may have joined a chain since and hold that chain's only copies. None is reclaimed.
  for (const target of t.targets.values()) delete target.leftChainAt;
  for (const chain of t.chains.values()) {
    for (const id of chain.targetIds) t.targets.get(id)!.state = TargetState.Offline;
    t.chains.set(chain.chainId, Object.freeze({ ...chain, version: chain.version + 1 }));
  }
  t.routingVersion = Math.max(t.routingVersion + 1, floor);
}

/** The largest inode id a worker may report holding for raiseInodeIds: ids above it are refused. */
export const heldInodeIdMax = 2 ** 53 - 2 ** 32;

/**
 * Moves the inode counter past `heldInodeId`, an inode a worker holds chunks of that the counter has
 * not reached (a restore whose floor fell short, as when the clock was wrong). True if it moved.
 */
export function raiseInodeIds(t: MetaTables, heldInodeId: number): boolean {
  assert(Number.isSafeInteger(heldInodeId) && heldInodeId >= 1 && heldInodeId <= heldInodeIdMax, `raiseInodeIds: bad id ${heldInodeId}`);
  if (heldInodeId < t.nextInodeId) return false;
  t.nextInodeId = heldInodeId + 1;
  return true;
}

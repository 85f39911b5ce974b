// What statfs reports as a mount's size and free space: the disks under the chains' targets, each
// counted once, divided by the replication (every byte is stored once per replica).

import type { TargetInfo } from '../meta/namespace-state.ts';
import type { WorkerHealth } from '../worker/protocol.ts';

export interface MountSpace {
  bytesTotal: number;
  bytesFree: number;
}

/**
 * The size and free space of the file system as users see it. A worker's targets on one disk (one
 * device number) count it once, and its free space is what the disk really has (other files on it
 * included), as the workers' heartbeats last said. Targets outside chains hold no data and count
 * nothing. Without free space in the heartbeats (workers older than this), the free space is the
 * capacity less the files' bytes, as before.
 */
export function mountSpace(targets: readonly TargetInfo[], health: readonly WorkerHealth[], replication: number, logicalBytes: number): MountSpace {
  const reports = new Map(health.flatMap((w) => w.targets.map((t) => [t.targetId, t] as const)));
  const disks = new Map<string, { total: number; free: number | undefined }>();
  for (const t of targets) {
    if (t.chainId === 0) continue;
    const r = reports.get(t.targetId);
    const key = r?.device === undefined ? `target ${t.targetId}` : `worker ${t.workerId} device ${r.device}`;
    const disk = disks.get(key) ?? { total: 0, free: 0 };
    disk.total = Math.max(disk.total, r?.capacityBytes ?? t.capacityBytes);
    disk.free = disk.free === undefined || r?.freeBytes === undefined ? undefined : Math.max(disk.free, r.freeBytes);
    disks.set(key, disk);
  }
  const copies = Math.max(1, replication);
  let total = 0;
  let free: number | undefined = 0;
  for (const d of disks.values()) {
    total += d.total;
    free = free === undefined || d.free === undefined ? undefined : free + d.free;
  }
  const bytesTotal = Math.floor(total / copies);
  const bytesFree = free === undefined ? Math.max(0, bytesTotal - logicalBytes) : Math.min(bytesTotal, Math.floor(free / copies));
  return { bytesTotal, bytesFree };
}

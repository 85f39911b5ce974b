// What statfs reports as a mount's size and free space, from the chains' members: a file's bytes
// go to every member of a chain, so a chain holds what its smallest member can, and the mount what
// its chains hold together.

import type { ChainInfo, TargetInfo } from '../meta/namespace-state.ts';
import type { WorkerHealth } from '../worker/protocol.ts';

export interface MountSpace {
  bytesTotal: number;
  bytesFree: number;
}

/**
 * The size and free space of the file system as users see it. A target's share of its disk is the
 * disk over the chain targets its worker keeps there (targets on one device share it), and its
 * free space the same share of what the disk really has (other files on it included), as the
 * workers' heartbeats last said. A chain holds its smallest member's share. Without free space in
 * the heartbeats (workers older than this), the free space is the size less the files' bytes.
 */
export function mountSpace(targets: readonly TargetInfo[], chains: readonly ChainInfo[], health: readonly WorkerHealth[], logicalBytes: number): MountSpace {
  const reports = new Map(health.flatMap((w) => w.targets.map((t) => [t.targetId, t] as const)));
  const byId = new Map(targets.map((t) => [t.targetId, t]));
  const diskOf = (t: TargetInfo): string => {
    const device = reports.get(t.targetId)?.device;
    return device === undefined ? `target ${t.targetId}` : `worker ${t.workerId} device ${device}`;
  };
  const sharing = new Map<string, number>();
  for (const t of targets) if (t.chainId !== 0) sharing.set(diskOf(t), (sharing.get(diskOf(t)) ?? 0) + 1);
  let total = 0;
  let free: number | undefined = 0;
  for (const chain of chains) {
    let chainTotal = Infinity;
    let chainFree: number | undefined = Infinity;
    for (const id of chain.targetIds) {
      const t = byId.get(id);
      if (t === undefined) continue;
      const r = reports.get(id);
      const k = sharing.get(diskOf(t)) ?? 1;
      chainTotal = Math.min(chainTotal, (r?.capacityBytes ?? t.capacityBytes) / k);
      chainFree = chainFree === undefined || r?.freeBytes === undefined ? undefined : Math.min(chainFree, r.freeBytes / k);
    }
    if (chainTotal === Infinity) continue;
    total += chainTotal;
    free = free === undefined || chainFree === undefined ? undefined : free + Math.min(chainFree, chainTotal);
  }
  const bytesTotal = Math.floor(total);
  const bytesFree = free === undefined ? Math.max(0, bytesTotal - logicalBytes) : Math.floor(free);
  return { bytesTotal, bytesFree };
}

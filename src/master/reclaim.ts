// Reclaiming free targets: a target that left its chain (a member moved to another worker, or one
// replaced after --replace-after-ms that came back) keeps the chain's chunks, which nothing reads.
// The leader lists such a target's inodes (chunk.inventory) and removes those of files the
// namespace knows (live, or deleted and waiting for garbage collection): their chains hold them.
// Chunks of inodes it does not know are the quarantine's (quarantine.ts), kept until an operator
// purges them. The worker removes only while its routing shows the target in no chain, looking
// again under each chunk's lock, so a target picked for a chain meanwhile keeps what it is sent.

import type { Connection } from '../io/index.ts';
import { WorkerMethod, type ChunkPurgeReply } from '../worker/protocol.ts';
import { inventoryPages, type InodeStatus } from './quarantine.ts';

/** Inodes per chunk.purge call: a call stays well inside its timeout on a slow disk. */
const purgeInodesPerCall = 256;

export interface ReclaimDeps {
  inodeStatus(inodeId: number): InodeStatus;
  callTimeoutMs: number;
}

export interface ReclaimResult {
  chunks: number;
  inodes: number;
  /** The target joined a chain while it was being emptied: the rest stayed. */
  stopped: boolean;
  /** Chunks of inodes the namespace does not know, left for the quarantine. */
  left: number;
}

/** Removes the chunks of known inodes from one free target, page by page of its inventory. */
export async function reclaimTarget(deps: ReclaimDeps, conn: Connection, targetId: number): Promise<ReclaimResult> {
  const result: ReclaimResult = { chunks: 0, inodes: 0, stopped: false, left: 0 };
  for await (const page of inventoryPages(conn, targetId, deps.callTimeoutMs)) {
    const known: number[] = [];
    for (const h of page.inodes) {
      if (deps.inodeStatus(h.inodeId) === 'unknown') result.left += h.chunks;
      else known.push(h.inodeId);
    }
    for (let i = 0; i < known.length; i += purgeInodesPerCall) {
      const inodeIds = known.slice(i, i + purgeInodesPerCall);
      const p = await conn.call<ChunkPurgeReply>(WorkerMethod.purge, { targetId, inodeIds, freeOnly: true }, { timeoutMs: deps.callTimeoutMs });
      result.chunks += p.body.removed;
      result.inodes += inodeIds.length;
      if (p.body.stopped === true) return { ...result, stopped: true };
    }
  }
  return result;
}

// Garbage collection of deleted files' chunks, run by the leading master's cluster manager: for
// each file on the pending GC list (deleted, and no session holds it) it removes the chunks from
// every member on each chain's write path, then journals gcDone. A member that is offline now is
// cleaned by its resync, which removes what its predecessor no longer holds. A chain with no
// member on its write path (unavailable) keeps its files on the list until it returns.

import type { Connection } from '../io/index.ts';
import type { GcEntry, RoutingInfo } from '../meta/namespace-state.ts';
import { Routing } from '../meta/routing.ts';
import { chunksByChain, fileChains } from '../placement/index.ts';
import { indexesIn } from '../meta/chunk-ranges.ts';
import { removeChunksMax, WorkerMethod, type ChunkRef } from '../worker/protocol.ts';

export interface GcPass {
  /** Files whose chunks are gone from every chain member that takes writes. */
  done: number[];
  /** Files left for a later pass (a chain unavailable, a worker that did not answer). */
  left: number;
}

/** Removes the chunks of `entries`; answers which files are done. */
export async function collectChunks(entries: readonly GcEntry[], info: RoutingInfo, connect: (address: string) => Connection, callTimeoutMs: number): Promise<GcPass> {
  const routing = new Routing(info);
  const done: number[] = [];
  let left = 0;
  for (const entry of entries) {
    try {
      if (await collectFile(entry, routing, connect, callTimeoutMs)) done.push(entry.inodeId);
      else left++;
    } catch {
      left++;
    }
  }
  return { done, left };
}

async function collectFile(entry: GcEntry, routing: Routing, connect: (address: string) => Connection, callTimeoutMs: number): Promise<boolean> {
  const tableChains = routing.tableChains(entry.layout.chainTableId, entry.layout.chainTableVersion);
  if (tableChains === undefined || tableChains.length === 0) return true; // it never had a chain, so no chunks
  const stripe = fileChains(tableChains, entry.layout.stripeWidth, entry.layout.shuffleSeed);
  // The chunks on each chain: listed from the record, or (untracked) every chunk of the inode.
  const byChain = new Map<number, ChunkRef[] | 'all'>();
  if (entry.chunks === null) for (const chainId of stripe) byChain.set(chainId, 'all');
  else for (const [chainId, indexes] of chunksByChain(stripe, indexesIn(entry.chunks))) byChain.set(chainId, indexes.map((index) => ({ inodeId: entry.inodeId, index })));
  for (const [chainId, chunks] of byChain) {
    const chain = routing.chain(chainId);
    const members = routing.writeMembers(chainId);
    if (chain === undefined || members.length === 0) return false;
    for (const member of members) {
      const address = routing.workerAddress(member.workerId);
      if (address === undefined) return false;
      const conn = connect(address);
      const call = { chainId, chainVersion: chain.version, targetId: member.targetId };
      if (chunks === 'all') {
        await conn.call(WorkerMethod.removeInodes, { ...call, inodeIds: [entry.inodeId] }, { timeoutMs: callTimeoutMs });
        continue;
      }
      for (let i = 0; i < chunks.length; i += removeChunksMax) {
        await conn.call(WorkerMethod.remove, { ...call, chunks: chunks.slice(i, i + removeChunksMax) }, { timeoutMs: callTimeoutMs });
      }
    }
  }
  return true;
}

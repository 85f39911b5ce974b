// Lookups over the routing picture the masters publish (RoutingInfo): which targets of a chain take
// writes and reads, who follows whom, where a target's worker listens, and which chains a file's
// layout sees. Pure; workers and clients keep one per routing version.

import { TargetState } from './commands.ts';
import type { ChainInfo, ChainTableInfo, RoutingInfo, TargetInfo } from './namespace-state.ts';

export class Routing {
  readonly info: RoutingInfo;
  private readonly chains = new Map<number, ChainInfo>();
  private readonly targets = new Map<number, TargetInfo>();
  private readonly addresses = new Map<number, string>();
  private readonly tables = new Map<number, ChainTableInfo>();

  constructor(info: RoutingInfo) {
    this.info = info;
    for (const c of info.chains) this.chains.set(c.chainId, c);
    for (const t of info.targets) this.targets.set(t.targetId, t);
    for (const w of info.workers) this.addresses.set(w.workerId, w.address);
    for (const t of info.tables) this.tables.set(t.tableId, t);
  }

  get version(): number {
    return this.info.routingVersion;
  }

  chain(chainId: number): ChainInfo | undefined {
    return this.chains.get(chainId);
  }

  target(targetId: number): TargetInfo | undefined {
    return this.targets.get(targetId);
  }

  workerAddress(workerId: number): string | undefined {
    return this.addresses.get(workerId);
  }

  /**
   * The members a write passes through, head first: serving ones, then the one syncing. None when
   * no member serves: a syncing member lacks writes, so it must never head a chain (the chain is
   * unavailable until its lastsrv returns).
   */
  writeMembers(chainId: number): TargetInfo[] {
    const members = this.members(chainId);
    if (!members.some((t) => t.state === TargetState.Serving)) return [];
    return members.filter((t) => t.state === TargetState.Serving || t.state === TargetState.Syncing);
  }

  /** The members that may answer reads: serving ones, the tail last. */
  readMembers(chainId: number): TargetInfo[] {
    return this.members(chainId).filter((t) => t.state === TargetState.Serving);
  }

  /** The read members in the order a client tries them for chunk `index` of `inodeId`: reads are spread by chunk. */
  readOrder(chainId: number, inodeId: number, index: number): TargetInfo[] {
    return spreadByChunk(this.readMembers(chainId), inodeId, index);
  }

  /** The member after `targetId` on the write path, if any (none: it is the tail). */
  successor(chainId: number, targetId: number): TargetInfo | undefined {
    const path = this.writeMembers(chainId);
    const i = path.findIndex((t) => t.targetId === targetId);
    return i === -1 ? undefined : path[i + 1];
  }

  /** The member before `targetId` on the write path, if any (none: it is the head). */
  predecessor(chainId: number, targetId: number): TargetInfo | undefined {
    const path = this.writeMembers(chainId);
    const i = path.findIndex((t) => t.targetId === targetId);
    return i <= 0 ? undefined : path[i - 1];
  }

  /** The chains a layout of table `tableId` at `version` sees: the first ones published by then. */
  tableChains(tableId: number, version: number): readonly number[] | undefined {
    const table = this.tables.get(tableId);
    if (table === undefined || version < 1 || version > table.version) return undefined;
    return table.chainIds.slice(0, table.chainCounts[version - 1]);
  }

  /** The chain's members in chain order, whatever their states. */
  members(chainId: number): TargetInfo[] {
    const chain = this.chains.get(chainId);
    if (chain === undefined) return [];
    return chain.targetIds.map((id) => this.targets.get(id)).filter((t): t is TargetInfo => t !== undefined);
  }
}

/** `members` (a chain's read members) in the order reads of chunk `index` of `inodeId` try them: the first is member (inode + index) mod n. */
export function spreadByChunk(members: TargetInfo[], inodeId: number, index: number): TargetInfo[] {
  if (members.length === 0) return members;
  const first = (inodeId + index) % members.length;
  return [...members.slice(first), ...members.slice(0, first)];
}

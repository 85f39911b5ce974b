// The quarantine: chunks on workers of inodes the namespace does not know (neither live nor waiting
// for garbage collection). After a restore from an older backup they are the chunks of files written
// after the backup; otherwise leftovers (a client that wrote to a file already collected). Nothing
// removes them by itself: the leading master lists every target's inodes (chunk.inventory), reports
// the unknown ones, and removes them only when an operator says so (`cairn admin quarantine purge`).
//
// An unknown inode below the inode counter can never become known: ids are handed out once, in
// order. One at or past the counter can (a restore whose floor fell short): it is reported apart
// and never purged.

import type { Connection } from '../io/index.ts';
import type { RoutingInfo } from '../meta/namespace-state.ts';
import { inventoryLimitMax, WorkerMethod, type InodeHolding, type InventoryReply } from '../worker/protocol.ts';

/** Unknown inode ids a report lists per target; the counts cover them all. */
export const quarantineListedMax = 1000;
/** Pages of one target's inventory an audit reads at most (16 M inodes at the largest page). */
const inventoryPagesMax = 4096;

export type InodeStatus = 'live' | 'pendingGc' | 'unknown';

export interface QuarantinedTarget {
  targetId: number;
  workerId: number;
  /** Chunks of unknown inodes, and what their files take on disk. */
  chunks: number;
  bytes: number;
  inodes: number;
  /** The first quarantineListedMax unknown inodes, ascending. */
  inodeIds: number[];
  /** Unknown inodes at or past the inode counter: not purged, as a create could still take them. */
  aheadOfCounter: number;
  /** Why the target could not be listed (its worker did not answer); counts are then 0. */
  error?: string;
}

export interface QuarantineReport {
  /** When the audit ran (the leader's wall clock, ms); null before the first one. */
  auditedMs: number | null;
  /** The inode counter when it ran. */
  nextInodeId: number;
  targets: QuarantinedTarget[];
  chunks: number;
  bytes: number;
  /** Targets whose worker did not answer. */
  targetsUnreached: number;
}

export interface AuditDeps {
  routing: RoutingInfo;
  /** Read at classification time, from the leader's applied state. */
  inodeStatus(inodeId: number): InodeStatus;
  nextInodeId(): number;
  connect(address: string): Connection;
  /** Why a worker is not asked (silent past the offline timeout), or undefined to ask it. */
  skip(workerId: number): string | undefined;
  callTimeoutMs: number;
  wallNowMs: number;
}

export const emptyQuarantine: QuarantineReport = { auditedMs: null, nextInodeId: 0, targets: [], chunks: 0, bytes: 0, targetsUnreached: 0 };

/** Lists every target of every worker in service and reports the chunks of unknown inodes. */
export async function auditQuarantine(deps: AuditDeps): Promise<QuarantineReport> {
  const address = new Map(deps.routing.workers.map((w) => [w.workerId, w.address]));
  const targets: QuarantinedTarget[] = [];
  for (const t of deps.routing.targets) {
    const at = address.get(t.workerId);
    const entry: QuarantinedTarget = { targetId: t.targetId, workerId: t.workerId, chunks: 0, bytes: 0, inodes: 0, inodeIds: [], aheadOfCounter: 0 };
    try {
      const skipped = deps.skip(t.workerId);
      if (skipped !== undefined) throw new Error(skipped);
      if (at === undefined) throw new Error(`no address for worker ${t.workerId}`);
      await listTarget(deps, deps.connect(at), entry);
    } catch (err) {
      Object.assign(entry, { chunks: 0, bytes: 0, inodes: 0, inodeIds: [], aheadOfCounter: 0, error: (err as Error).message });
    }
    targets.push(entry);
  }
  return summarize(targets, deps.nextInodeId(), deps.wallNowMs);
}

async function listTarget(deps: AuditDeps, conn: Connection, entry: QuarantinedTarget): Promise<void> {
  let last: InventoryReply | undefined;
  for await (const page of inventoryPages(conn, entry.targetId, deps.callTimeoutMs)) {
    addUnknown(entry, page.inodes, deps.inodeStatus, deps.nextInodeId());
    last = page;
  }
  if (last?.more === true && last.inodes.length > 0) throw new Error(`more than ${inventoryPagesMax} pages of inodes`);
}

/**
 * One target's inodes (chunk.inventory), a page at a time, inventoryPagesMax pages at most: a last
 * page that still says `more` was cut short by that bound.
 */
export async function* inventoryPages(conn: Connection, targetId: number, callTimeoutMs: number): AsyncGenerator<InventoryReply> {
  let after = 0;
  for (let page = 0; page < inventoryPagesMax; page++) {
    const r = await conn.call<InventoryReply>(WorkerMethod.inventory, { targetId, afterInodeId: after, limit: inventoryLimitMax }, { timeoutMs: callTimeoutMs });
    yield r.body;
    if (!r.body.more || r.body.inodes.length === 0) return;
    after = r.body.inodes[r.body.inodes.length - 1].inodeId;
  }
}

/** Adds the unknown inodes of one page to a target's entry (pure). */
export function addUnknown(entry: QuarantinedTarget, page: readonly InodeHolding[], status: (inodeId: number) => InodeStatus, nextInodeId: number): void {
  for (const h of page) {
    if (status(h.inodeId) !== 'unknown') continue;
    entry.chunks += h.chunks;
    entry.bytes += h.bytes;
    entry.inodes++;
    if (entry.inodeIds.length < quarantineListedMax) entry.inodeIds.push(h.inodeId);
    if (h.inodeId >= nextInodeId) entry.aheadOfCounter++;
  }
}

export function summarize(targets: QuarantinedTarget[], nextInodeId: number, auditedMs: number): QuarantineReport {
  return {
    auditedMs,
    nextInodeId,
    targets,
    chunks: targets.reduce((n, t) => n + t.chunks, 0),
    bytes: targets.reduce((n, t) => n + t.bytes, 0),
    targetsUnreached: targets.filter((t) => t.error !== undefined).length,
  };
}

/**
 * The inodes of a target's entry a purge may remove: unknown now, and below the inode counter (so
 * no create can take them later). Only the listed ones: a purge covers what a report showed.
 */
export function purgeable(entry: QuarantinedTarget, status: (inodeId: number) => InodeStatus, nextInodeId: number): number[] {
  return entry.inodeIds.filter((id) => id < nextInodeId && status(id) === 'unknown');
}

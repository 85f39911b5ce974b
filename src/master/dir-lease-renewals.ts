// The leader's side of directory leases (src/meta/dir-leases.ts): who renewed lately, which held
// directories others are waiting for, and which holders are gone. Like write sessions'
// renewals (session-leases.ts) these live in the leader's memory only: a new leader ends no lease
// before it has led for a whole lease, which gives every live holder time to find it. A holder
// renews every dirLeaseRenewMs, naming the directories it holds, and learns in the answer which to
// give back; a lease its holder stopped naming (a give-back that failed) ends like one whose holder
// is gone. The holder stops answering from a directory once half a lease passed without a renewal,
// so it has stopped long before the leader ends its lease. Pure: the cluster manager brings the clock.

import { CairnError, ErrorCode } from '../errors.ts';
import { Fields } from '../fields.ts';
import { holderPattern } from '../meta/commands.ts';
import type { DirLease } from '../meta/index.ts';

/** Five seconds: a holder cut off for that long loses its directories, and others wait that long for them at most. */
export const dirLeaseMsDefault = 5_000;
/** How often a holder renews: the longest another client waits before the holder hears of a recall. */
export const dirLeaseRenewMs = 100;
/** After a recall, the directory is not held again for this long: the clients that waited get their turn. */
export const dirLeaseCooldownMs = 1_000;
/**
 * A holder that still holds a recalled directory this many leases after the recall began (it
 * renews but does not give it back: hung in its give-back, or hostile) loses it, so that the
 * clients waiting there, who retry for 15 s, are not shut out for good.
 */
export const recallGraceLeases = 2;
/** Directories one renewal names at most. */
export const renewDirLeasesMax = 65_536;

export interface RenewDirLeasesReply {
  leaseMs: number;
  /** Directories others wait for: the holder gives them back (releaseDir) once its batches there landed. */
  recalled: number[];
  /** Directories named that the holder no longer holds (its lease ended): what it answered there since may be lost. */
  lost: number[];
}

export class DirLeaseRenewals {
  readonly leaseMs: number;
  /** Held directory → when this leader last heard its holder name it (monotonic clock). */
  private readonly renewed = new Map<number, number>();
  /** Held directory → when another client last asked for it. */
  private readonly recalls = new Map<number, number>();
  /** Held directory → when the recall others are still waiting on began. */
  private readonly recalledSince = new Map<number, number>();
  /**
   * Held directory → its holder, for leases this leader is ending (expired() named them): until
   * the journal applied that, a late renewal must not tell the holder it still holds them.
   */
  private readonly ending = new Map<number, string>();

  constructor(leaseMs = dirLeaseMsDefault) {
    this.leaseMs = leaseMs;
  }

  /** This master leads anew: the leases it was ending before may live on (that proposal was lost, or done). */
  leadershipBegan(): void {
    this.ending.clear();
  }

  /** Another client was refused a held directory: its holder is asked to give it back. */
  recall(dirInodeId: number, nowMs: number): void {
    this.recalls.set(dirInodeId, nowMs);
    if (!this.recalledSince.has(dirInodeId)) this.recalledSince.set(dirInodeId, nowMs);
  }

  /** The directory was just held anew (its first renewal): a recall from before is over. */
  granted(dirInodeId: number, nowMs: number): void {
    this.recalls.delete(dirInodeId);
    this.recalledSince.delete(dirInodeId);
    this.ending.delete(dirInodeId);
    this.renewed.set(dirInodeId, nowMs);
  }

  /** Whether a lease on the directory would be refused now: others waited for it a moment ago. */
  coolingDown(dirInodeId: number, nowMs: number): boolean {
    const at = this.recalls.get(dirInodeId);
    return at !== undefined && nowMs - at < dirLeaseCooldownMs;
  }

  /** A holder's renewal of the directories it names, against the leases the state holds. */
  renewHolder(holder: string, dirs: readonly number[], leases: ReadonlyMap<number, DirLease>, nowMs: number): RenewDirLeasesReply {
    const recalled: number[] = [];
    const lost: number[] = [];
    for (const id of dirs) {
      if (leases.get(id)?.holder !== holder || this.ending.get(id) === holder) {
        lost.push(id);
        continue;
      }
      this.renewed.set(id, nowMs);
      if (this.recalls.has(id)) recalled.push(id);
    }
    this.forget(nowMs, leases);
    return { leaseMs: this.leaseMs, recalled, lost };
  }

  /**
   * Leases no renewal named within a lease, or not given back recallGraceLeases after a recall
   * others still wait on, which the caller ends; none while this leadership is younger than a
   * lease. From now on renewals of them answer lost.
   */
  expired(leases: ReadonlyMap<number, DirLease>, nowMs: number, leadingSinceMs: number): DirLease[] {
    this.forget(nowMs, leases);
    if (nowMs - leadingSinceMs < this.leaseMs) return [];
    const out: DirLease[] = [];
    for (const l of leases.values()) {
      const recalledAt = this.recalledSince.get(l.dirInodeId);
      const keptAfterRecall = recalledAt !== undefined && nowMs - recalledAt > recallGraceLeases * this.leaseMs;
      if (this.renewed.has(l.dirInodeId) && !keptAfterRecall) continue;
      out.push(l);
      this.ending.set(l.dirInodeId, l.holder);
    }
    return out;
  }

  private forget(nowMs: number, leases: ReadonlyMap<number, DirLease>): void {
    for (const [dir, holder] of this.ending) if (leases.get(dir)?.holder !== holder) this.ending.delete(dir);
    for (const [dir, at] of this.renewed) if (nowMs - at > this.leaseMs) this.renewed.delete(dir);
    for (const [dir, at] of this.recalls) if (nowMs - at > Math.max(this.leaseMs, dirLeaseCooldownMs)) this.recalls.delete(dir);
    // Nobody waits any more (no refusal for a lease), or the lease ended: the recall is over.
    for (const dir of this.recalledSince.keys()) if (!this.recalls.has(dir) || !leases.has(dir)) this.recalledSince.delete(dir);
  }
}

const renewFieldErrors = {
  invalid: (message: string) => new CairnError(ErrorCode.InvalidArgument, message),
  tooLong: (message: string) => new CairnError(ErrorCode.InvalidArgument, message),
};

/** A meta.renewDirLeases body: { holder, dirs: [inode ids] }. */
export function validateRenewDirLeases(body: unknown): { holder: string; dirs: number[] } {
  const f = new Fields(body, 'renewDirLeases', renewFieldErrors);
  const holder = f.str('holder', 64);
  if (!holderPattern.test(holder)) throw new CairnError(ErrorCode.InvalidArgument, `renewDirLeases: holder must be a lease holder's token, not ${JSON.stringify(holder)}`);
  const dirs = f.array('dirs', renewDirLeasesMax).map((id, i) => f.checkInt(`dirs[${i}]`, id, 1, Number.MAX_SAFE_INTEGER));
  f.done();
  return { holder, dirs };
}

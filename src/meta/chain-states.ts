// The cluster manager's rule for target states (3FS's generateNewChain): from a chain's members
// with their public states, and what each target's worker reports, the chain's next members.
// Pure: the leading master calls it every second and journals what changed.
//
// | public state | alive (up-to-date or online)                          | dead (offline, or restarted)            |
// |--------------|--------------------------------------------------------|-----------------------------------------|
// | serving      | serving                                                | lastsrv if no serving is left (the first such in chain order), else offline |
// | lastsrv      | serving if no serving is left, else offline            | lastsrv, or offline once another serves |
// | syncing      | up-to-date: serving; online: syncing if one serves, else waiting | offline                       |
// | waiting      | syncing if one serves and none syncs yet, else waiting | offline                                 |
// | offline      | as waiting                                             | offline                                 |
//
// Members are then ordered serving, lastsrv, syncing, waiting, offline (stable within a state), so
// the head is the first serving target and a failed one moves to the end. At most one target per
// chain syncs at a time. A chain with no serving target is unavailable, never wrong: it waits for
// its lastsrv, the one that served last and so holds every acknowledged write (a chain restored
// from a backup has none until the workers' records name it: restoredSource).
//
// Membership changes once, in replaceMember: a lost member (of a decommissioned worker, or
// offline too long) leaves, and a free target enters as a returning one would, syncing (or
// waiting while another member syncs); from then on the table above moves it like any other.

import { assert } from '../errors.ts';
import { TargetState } from './commands.ts';

/** What a worker reports about one of its targets. */
export const LocalState = {
  /** Holds every committed write of its chain: serving, or done syncing. */
  UpToDate: 'up-to-date',
  /** Running, but may lack writes (just started, or being synced). */
  Online: 'online',
  /** Not running, not heard from within the timeout, or restarted since its state was set. */
  Offline: 'offline',
} as const;
export type LocalState = (typeof LocalState)[keyof typeof LocalState];
export const localStates: readonly string[] = Object.values(LocalState);

export interface ChainMember {
  targetId: number;
  state: TargetState;
}

const stateRank: Record<TargetState, number> = { serving: 0, lastsrv: 1, syncing: 2, waiting: 3, offline: 4 };

/** Whether members are in the order chains keep: by state, serving first. */
export function inChainOrder(members: readonly ChainMember[]): boolean {
  return members.every((m, i) => i === 0 || stateRank[members[i - 1].state] <= stateRank[m.state]);
}

/**
 * The chain's next members (new objects, in chain order); equal to the old ones when nothing changes.
 * `leaving` marks members of decommissioned workers: when serving members die together, each holds
 * every acknowledged write, and the lastsrv is one that can come back (a decommissioned worker never
 * registers again, and a chain waiting for it would wait for ever).
 */
export function nextChainMembers(members: readonly ChainMember[], local: (targetId: number) => LocalState, leaving: (targetId: number) => boolean = () => false): ChainMember[] {
  const next = new Map<number, TargetState>();
  const alive = (m: ChainMember): boolean => local(m.targetId) !== LocalState.Offline;
  const serving = (): boolean => [...next.values()].includes(TargetState.Serving);
  const byOld = (state: TargetState): ChainMember[] => members.filter((m) => m.state === state);

  const deadServing: ChainMember[] = [];
  for (const m of byOld(TargetState.Serving)) {
    if (alive(m)) next.set(m.targetId, TargetState.Serving);
    else deadServing.push(m);
  }
  const last = serving() ? undefined : (deadServing.find((m) => !leaving(m.targetId)) ?? deadServing[0]);
  for (const m of deadServing) next.set(m.targetId, m === last ? TargetState.LastServing : TargetState.Offline);
  for (const m of byOld(TargetState.LastServing)) {
    if (serving()) next.set(m.targetId, TargetState.Offline);
    else next.set(m.targetId, alive(m) ? TargetState.Serving : TargetState.LastServing);
  }
  for (const m of byOld(TargetState.Syncing)) {
    const report = local(m.targetId);
    if (report === LocalState.UpToDate) next.set(m.targetId, TargetState.Serving);
    else if (report === LocalState.Online) next.set(m.targetId, serving() ? TargetState.Syncing : TargetState.Waiting);
    else next.set(m.targetId, TargetState.Offline);
  }
  for (const m of members.filter((x) => x.state === TargetState.Waiting || x.state === TargetState.Offline)) {
    if (!alive(m)) next.set(m.targetId, TargetState.Offline);
    else if (serving() && ![...next.values()].includes(TargetState.Syncing)) next.set(m.targetId, TargetState.Syncing);
    else next.set(m.targetId, TargetState.Waiting);
  }
  // A target that served last is only needed while nobody serves.
  if (serving()) for (const [id, state] of next) if (state === TargetState.LastServing) next.set(id, TargetState.Offline);

  return inStateOrder(members, members.map((m) => ({ targetId: m.targetId, state: next.get(m.targetId)! })));
}

/** `next` sorted by state, members of one state kept in their order in `before`. */
function inStateOrder(before: readonly ChainMember[], next: ChainMember[]): ChainMember[] {
  const order = new Map(before.map((m, i) => [m.targetId, i]));
  return next.sort((a, b) => stateRank[a.state] - stateRank[b.state] || order.get(a.targetId)! - order.get(b.targetId)!);
}

/** Whether two member lists are the same targets in the same order with the same states. */
export function sameMembers(a: readonly ChainMember[], b: readonly ChainMember[]): boolean {
  return a.length === b.length && a.every((m, i) => m.targetId === b[i].targetId && m.state === b[i].state);
}

/**
 * A worker restarted: its members may have lost writes that were in flight, so they stop serving
 * until they resync. A serving member becomes offline, or lastsrv when no other member serves
 * (it still holds every acknowledged write: a write is acknowledged only once every member has it
 * on disk); a syncing member becomes offline and starts over. Other members keep their states.
 */
export function markRestarted(members: readonly ChainMember[], restarted: ReadonlySet<number>): ChainMember[] {
  const othersServe = members.some((m) => m.state === TargetState.Serving && !restarted.has(m.targetId));
  let lastServing = false;
  const next = members.map((m): ChainMember => {
    if (!restarted.has(m.targetId)) return { ...m };
    if (m.state === TargetState.Serving && !othersServe && !lastServing) {
      lastServing = true;
      return { targetId: m.targetId, state: TargetState.LastServing };
    }
    if (m.state === TargetState.Serving || m.state === TargetState.Syncing || m.state === TargetState.Waiting) return { targetId: m.targetId, state: TargetState.Offline };
    return { ...m };
  });
  return inStateOrder(members, next);
}

/** What the cluster manager knows of a member of a restored chain (restoredSource). */
export interface RestoredReport {
  /** Its worker registered again since the restore and reported it. */
  heard: boolean;
  /** Its worker was decommissioned: it never reports, so nobody waits for it. */
  lost?: boolean;
  /**
   * Its worker's record of where it last served (served-record.ts): the routing version of the last
   * change of this chain it served through, or -1 if the record names another chain (it left this
   * one); undefined without a record.
   */
  servedAt?: number;
}

/**
 * A chain restored from a backup has no serving member and no lastsrv (restore-floor.ts): which
 * member served last is the lost cluster's knowledge. The workers' records tell it: the member that
 * served this chain through its latest change holds every write acknowledged before the loss; the
 * emptied source of a move made after the backup has an older record, or one of another chain. That
 * member becomes the lastsrv, and the table above makes the others equal to it.
 *
 * Until every member was heard from, the answer is `wait` with the silent ones (one of them may have
 * served last); with `force` (the manager waited long enough), the choice is among those heard.
 * Undefined: not such a chain, or none heard. Ties go to the first in chain order.
 */
export function restoredSource(members: readonly ChainMember[], report: (targetId: number) => RestoredReport, force: boolean): { source: number; members: ChainMember[] } | { wait: number[] } | undefined {
  if (members.length === 0 || members.some((m) => m.state === TargetState.Serving || m.state === TargetState.LastServing)) return undefined;
  const reports = new Map(members.map((m) => [m.targetId, report(m.targetId)]));
  const silent = members.filter((m) => !reports.get(m.targetId)!.heard && reports.get(m.targetId)!.lost !== true).map((m) => m.targetId);
  if (silent.length > 0 && !force) return { wait: silent };
  let best: { targetId: number; rank: number } | undefined;
  for (const m of members) {
    const r = reports.get(m.targetId)!;
    // No record ranks below any record of this chain and above one of another chain.
    const rank = r.servedAt ?? 0;
    if (r.heard && (best === undefined || rank > best.rank)) best = { targetId: m.targetId, rank };
  }
  if (best === undefined) return undefined;
  const source = best.targetId;
  return { source, members: inStateOrder(members, members.map((m) => ({ targetId: m.targetId, state: m.targetId === source ? TargetState.LastServing : m.state }))) };
}

/**
 * Why `lostId` cannot leave the chain now, or undefined. Only a member beside which another one
 * serves may go: a serving member holds every acknowledged write and can resync the newcomer; a
 * chain whose only serving (or lastsrv) member is the lost one would lose writes without it.
 */
export function replacementProblem(members: readonly ChainMember[], lostId: number): string | undefined {
  if (!members.some((m) => m.targetId === lostId)) return `target ${lostId} is not a member`;
  if (!members.some((m) => m.targetId !== lostId && m.state === TargetState.Serving)) {
    const lost = members.find((m) => m.targetId === lostId)!;
    return lost.state === TargetState.Serving || lost.state === TargetState.LastServing
      ? `target ${lostId} holds the chain's only up-to-date replica (${lost.state})`
      : 'no other member serves to resync a new one from';
  }
  return undefined;
}

/**
 * The chain's members with `newId` in place of `lostId` (checked by replacementProblem first): the
 * newcomer enters syncing, so the last serving member resyncs it, or waiting when another member
 * syncs already (one at a time); members stay in state order.
 */
export function replaceMember(members: readonly ChainMember[], lostId: number, newId: number): ChainMember[] {
  const problem = replacementProblem(members, lostId);
  assert(problem === undefined, `replacing ${lostId}: ${problem}`);
  assert(!members.some((m) => m.targetId === newId), `target ${newId} is a member already`);
  const kept = members.filter((m) => m.targetId !== lostId).map((m) => ({ ...m }));
  const syncing = kept.some((m) => m.state === TargetState.Syncing);
  const next = [...kept, { targetId: newId, state: syncing ? TargetState.Waiting : TargetState.Syncing }];
  return inStateOrder(next, next);
}

// The cluster manager's plan for chains that lost members for good: which lost member each chain
// replaces this round and with which free target, and why the others wait. Pure (the manager
// gathers liveness and heartbeats and journals the plan), so tests drive it with plain data.

import { replacementProblem, type ChainMember } from '../meta/chain-states.ts';
import { TargetState } from '../meta/commands.ts';
import type { ChainInfo, TargetInfo, WorkerInfo } from '../meta/namespace-state.ts';
import { pickReplacement, type ReplacementCandidate } from '../placement/index.ts';

/** Chains one round changes at most; the rest wait for the next round. */
export const replacementsPerRoundMax = 64;

/** Why a member is lost: its worker was decommissioned, or it stayed offline past --replace-after-ms. */
export type LostReason = 'decommissioned' | 'offline';

export interface Replacement {
  chainId: number;
  /** The chain version the choice was made at (the command is refused once it moved on). */
  version: number;
  lostTargetId: number;
  newTargetId: number;
  reason: LostReason;
  /** The new member's failure domain differs from every other member's. */
  distinctDomain: boolean;
}

/** A chain with a lost member that no replacement can take this round, and why (for logs and `admin report`). */
export interface StuckChain {
  chainId: number;
  lostTargetId: number;
  lostWorkerId: number;
  reason: LostReason;
  why: string;
}

export interface ReplacementInput {
  workers: readonly WorkerInfo[];
  targets: readonly TargetInfo[];
  chains: readonly ChainInfo[];
  /** Whether the target's worker was heard from recently and reports it running. */
  alive: (target: TargetInfo) => boolean;
  /** Whether a member has been offline longer than --replace-after-ms (always false when that is off). */
  offlineTooLong: (target: TargetInfo) => boolean;
  /** Bytes a target holds, from heartbeats (0 when unknown). */
  usedBytes: (target: TargetInfo) => number;
}

export interface ReplacementPlan {
  replacements: Replacement[];
  stuck: StuckChain[];
}

/**
 * One replacement per chain at most (its version moves), up to replacementsPerRoundMax in all.
 * A lost member that is offline goes before one that still serves (a decommissioned worker that
 * runs on), and one that serves waits while another member syncs, so a chain never drops a
 * working replica while it is short of one already.
 */
export function planReplacements(input: ReplacementInput): ReplacementPlan {
  const workers = new Map(input.workers.map((w) => [w.workerId, w]));
  const targets = new Map(input.targets.map((t) => [t.targetId, t]));
  const decommissioned = (t: TargetInfo): boolean => workers.get(t.workerId)?.decommissionedMs !== undefined;
  const domain = (workerId: number): string | undefined => workers.get(workerId)?.domain || undefined;
  const free: ReplacementCandidate[] = input.targets
    .filter((t) => t.chainId === 0 && !decommissioned(t) && input.alive(t))
    .map((t) => ({ targetId: t.targetId, workerId: t.workerId, domain: domain(t.workerId), capacityBytes: t.capacityBytes, usedBytes: input.usedBytes(t) }));
  const load = new Map<number, number>();
  for (const t of input.targets) if (t.chainId !== 0) load.set(t.workerId, (load.get(t.workerId) ?? 0) + 1);
  const plan: ReplacementPlan = { replacements: [], stuck: [] };
  for (const chain of input.chains) {
    const members: ChainMember[] = chain.targetIds.map((id) => ({ targetId: id, state: targets.get(id)!.state }));
    const lost = lostMembers(chain, targets, decommissioned, input.offlineTooLong);
    if (lost.length === 0) continue;
    const stuck = (t: TargetInfo, reason: LostReason, why: string): StuckChain => ({ chainId: chain.chainId, lostTargetId: t.targetId, lostWorkerId: t.workerId, reason, why });
    const first = lost[0];
    if (plan.replacements.length >= replacementsPerRoundMax) {
      plan.stuck.push(stuck(first.target, first.reason, `waits for a later round (at most ${replacementsPerRoundMax} replacements a round)`));
      continue;
    }
    const problem = replacementProblem(members, first.target.targetId);
    if (problem !== undefined) {
      plan.stuck.push(stuck(first.target, first.reason, `cannot leave the chain: ${problem}`));
      continue;
    }
    const syncing = members.find((m) => m.targetId !== first.target.targetId && (m.state === TargetState.Syncing || m.state === TargetState.Waiting));
    if (first.target.state === TargetState.Serving && syncing !== undefined) {
      plan.stuck.push(stuck(first.target, first.reason, `still serves, and waits until member ${syncing.targetId} (${syncing.state}) has caught up`));
      continue;
    }
    const kept = members.filter((m) => m.targetId !== first.target.targetId).map((m) => ({ workerId: targets.get(m.targetId)!.workerId, domain: domain(targets.get(m.targetId)!.workerId) }));
    const pick = pickReplacement(kept, free, load);
    if (pick === undefined) {
      const used = [...new Set(kept.map((m) => m.workerId))].sort((a, b) => a - b).join(', ');
      const why = free.length === 0 ? 'no free target on a live worker in service' : `the ${free.length} free live target(s) are all on workers the chain uses (${used})`;
      plan.stuck.push(stuck(first.target, first.reason, `no replacement: ${why}; add a worker or a disk`));
      continue;
    }
    free.splice(free.indexOf(pick.target), 1);
    load.set(pick.target.workerId, (load.get(pick.target.workerId) ?? 0) + 1);
    plan.replacements.push({ chainId: chain.chainId, version: chain.version, lostTargetId: first.target.targetId, newTargetId: pick.target.targetId, reason: first.reason, distinctDomain: pick.distinctDomain });
  }
  return plan;
}

/** A chain's lost members, those that no longer serve first, each in chain order. */
function lostMembers(chain: ChainInfo, targets: ReadonlyMap<number, TargetInfo>, decommissioned: (t: TargetInfo) => boolean, offlineTooLong: (t: TargetInfo) => boolean): { target: TargetInfo; reason: LostReason }[] {
  const lost: { target: TargetInfo; reason: LostReason }[] = [];
  for (const id of chain.targetIds) {
    // A move's ends leave when it ends (rebalance.ts): its source once done, its newcomer if cancelled.
    if (chain.moving !== undefined && (id === chain.moving.fromTargetId || id === chain.moving.toTargetId)) continue;
    const target = targets.get(id)!;
    if (decommissioned(target)) lost.push({ target, reason: 'decommissioned' });
    else if (target.state === TargetState.Offline && offlineTooLong(target)) lost.push({ target, reason: 'offline' });
  }
  const serving = (t: TargetInfo): number => (t.state === TargetState.Serving ? 1 : 0);
  return lost.sort((a, b) => serving(a.target) - serving(b.target));
}

/** What decommissioning a worker does to one chain it holds a member of. */
export interface ChainImpact {
  chainId: number;
  /** The worker's members of the chain, which will leave it. */
  leaving: number[];
  members: number;
  /** Members that serve on workers in service other than this one: the copies the chain keeps. */
  servingLeft: number;
}

export interface DecommissionImpact {
  workerId: number;
  chains: ChainImpact[];
  /** Chains left with no serving member: their data would be unavailable, or lost with the worker. */
  unsafeChainIds: number[];
  /** Free targets on other workers in service: replacements, if their workers are alive. */
  freeTargets: number;
}

/** What `cairn admin worker decommission` would do, judged on the tables (the CLI and the leader agree on it). */
export function decommissionImpact(workerId: number, workers: readonly WorkerInfo[], targets: readonly TargetInfo[], chains: readonly ChainInfo[]): DecommissionImpact {
  const out = new Set(workers.filter((w) => w.workerId === workerId || w.decommissionedMs !== undefined).map((w) => w.workerId));
  const byId = new Map(targets.map((t) => [t.targetId, t]));
  const impact: DecommissionImpact = { workerId, chains: [], unsafeChainIds: [], freeTargets: targets.filter((t) => t.chainId === 0 && !out.has(t.workerId)).length };
  for (const chain of chains) {
    const members = chain.targetIds.map((id) => byId.get(id)!);
    const leaving = members.filter((t) => t.workerId === workerId).map((t) => t.targetId);
    if (leaving.length === 0) continue;
    const servingLeft = members.filter((t) => !out.has(t.workerId) && t.state === TargetState.Serving).length;
    impact.chains.push({ chainId: chain.chainId, leaving, members: members.length, servingLeft });
    if (servingLeft === 0) impact.unsafeChainIds.push(chain.chainId);
  }
  return impact;
}

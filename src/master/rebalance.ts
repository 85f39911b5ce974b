// The cluster manager's plan for spreading chains onto new workers (rebalancing): a member of a
// healthy chain on a busy worker moves to a free target on an idle one. A move adds the newcomer
// as an extra member, which resyncs; only once the newcomer serves does the source leave
// (endChainMove), so a chain never has fewer up-to-date replicas than it would without the move. Its
// chunks stay in the chain: the chain keeps its id, only its members change. Pure (the manager
// gathers liveness and journals the plan), so tests drive it with plain data.
//
// Balance is by chain members per target on each worker in service. A move from worker A (a
// members on tA live targets) to worker B (b on tB) is made only when (2b + 1) / tB < (2a - 1) / tA:
// exactly when it lowers the sum over workers of members² / targets, so the moves always end.

import { TargetState } from '../meta/commands.ts';
import type { ChainInfo, TargetInfo, WorkerInfo } from '../meta/namespace-state.ts';
import { domainOf } from '../placement/index.ts';

export interface MoveStart {
  chainId: number;
  /** The chain version the move was chosen at (the command is refused once it moved on). */
  version: number;
  fromTargetId: number;
  toTargetId: number;
  fromWorkerId: number;
  toWorkerId: number;
}

export interface MoveEnd {
  chainId: number;
  version: number;
  outcome: 'done' | 'cancelled';
  fromTargetId: number;
  toTargetId: number;
  why: string;
}

export interface RebalanceInput {
  workers: readonly WorkerInfo[];
  targets: readonly TargetInfo[];
  chains: readonly ChainInfo[];
  /** Whether the target's worker was heard from recently and reports it running. */
  alive: (target: TargetInfo) => boolean;
  /** Bytes a target holds, from heartbeats (0 when unknown): a cheaper move goes first. */
  usedBytes: (target: TargetInfo) => number;
  /** Chunks a free target holds, from heartbeats; undefined when unknown. */
  chunks: (target: TargetInfo) => number | undefined;
  /** Moves under way at most, cluster-wide (0: no new ones; those under way still end). */
  movesMax: number;
}

export interface RebalancePlan {
  end: MoveEnd[];
  start: MoveStart[];
}

interface Load {
  members: number;
  targets: number;
}

export function planRebalance(input: RebalanceInput): RebalancePlan {
  const workers = new Map(input.workers.map((w) => [w.workerId, w]));
  const targets = new Map(input.targets.map((t) => [t.targetId, t]));
  const inService = (workerId: number): boolean => workers.get(workerId)?.decommissionedMs === undefined;
  const plan: RebalancePlan = { end: [], start: [] };

  let moving = 0;
  for (const chain of input.chains) {
    if (chain.moving === undefined) continue;
    const end = moveEnd(chain, targets, inService, input.alive);
    if (end === undefined) moving++;
    else plan.end.push(end);
  }

  // Loads count the live targets of workers in service, each move as it will end: the source of a
  // move under way or done is counted out already, the newcomer of a cancelled one too.
  const leaving = new Set<number>();
  for (const chain of input.chains) if (chain.moving !== undefined) leaving.add(chain.moving.fromTargetId);
  for (const end of plan.end) {
    if (end.outcome !== 'cancelled') continue;
    leaving.delete(end.fromTargetId);
    leaving.add(end.toTargetId);
  }
  const loads = new Map<number, Load>();
  for (const t of input.targets) {
    if (!inService(t.workerId) || !input.alive(t)) continue;
    const load = loads.get(t.workerId) ?? { members: 0, targets: 0 };
    load.targets++;
    if (t.chainId !== 0 && !leaving.has(t.targetId)) load.members++;
    loads.set(t.workerId, load);
  }
  // Only empty targets: one in no chain that holds chunks may hold the only copy of files written
  // after a restored backup (the quarantine keeps those), and a move's resync would remove them.
  const free = input.targets.filter((t) => t.chainId === 0 && inService(t.workerId) && input.alive(t) && input.chunks(t) === 0);
  const busy = new Set(plan.end.map((e) => e.chainId));
  const domainOfWorker = (workerId: number): string => domainOf({ workerId, domain: workers.get(workerId)?.domain });

  while (moving + plan.start.length < input.movesMax && free.length > 0) {
    const move = bestMove(input, loads, free, targets, busy, inService, domainOfWorker);
    if (move === undefined) break;
    plan.start.push(move);
    busy.add(move.chainId);
    free.splice(free.findIndex((t) => t.targetId === move.toTargetId), 1);
    // Counted as done already, so that one round does not pile moves onto one worker.
    loads.get(move.fromWorkerId)!.members--;
    loads.get(move.toWorkerId)!.members++;
  }
  return plan;
}

/**
 * How a chain's move ends this round, or undefined while it goes on. A newcomer that serves (or
 * served last: lastsrv) may hold writes no other member has, so it is never the one dropped.
 */
function moveEnd(chain: ChainInfo, targets: ReadonlyMap<number, TargetInfo>, inService: (workerId: number) => boolean, alive: (t: TargetInfo) => boolean): MoveEnd | undefined {
  const { fromTargetId, toTargetId } = chain.moving!;
  const to = targets.get(toTargetId)!;
  const base = { chainId: chain.chainId, version: chain.version, fromTargetId, toTargetId };
  if (to.state === TargetState.Serving) return { ...base, outcome: 'done', why: 'the newcomer serves' };
  if (to.state === TargetState.LastServing) return undefined;
  if (!inService(to.workerId)) return { ...base, outcome: 'cancelled', why: `the newcomer's worker ${to.workerId} was decommissioned before it caught up` };
  if (!alive(to)) return { ...base, outcome: 'cancelled', why: `the newcomer's worker ${to.workerId} is not heard from, and it had not caught up` };
  return undefined;
}

/** The move that lowers the imbalance most: from the busiest worker that has a movable member to the idlest with a free target. */
function bestMove(
  input: RebalanceInput,
  loads: ReadonlyMap<number, Load>,
  free: readonly TargetInfo[],
  targets: ReadonlyMap<number, TargetInfo>,
  busy: ReadonlySet<number>,
  inService: (workerId: number) => boolean,
  domainOf: (workerId: number) => string,
): MoveStart | undefined {
  const leaveKey = (w: number): number => (2 * loads.get(w)!.members - 1) / loads.get(w)!.targets;
  const joinKey = (w: number): number => (2 * loads.get(w)!.members + 1) / loads.get(w)!.targets;
  const sources = [...loads.keys()].filter((w) => loads.get(w)!.members > 0).sort((a, b) => leaveKey(b) - leaveKey(a) || a - b);
  // Each destination worker's free targets, largest first (then by id).
  const freeBy = new Map<number, TargetInfo[]>();
  for (const t of free) {
    if (!freeBy.has(t.workerId)) freeBy.set(t.workerId, []);
    freeBy.get(t.workerId)!.push(t);
  }
  for (const list of freeBy.values()) list.sort((a, b) => b.capacityBytes - a.capacityBytes || a.targetId - b.targetId);
  const dests = [...freeBy.keys()].sort((a, b) => joinKey(a) - joinKey(b) || a - b);

  const chainsOn = new Map<number, ChainInfo[]>();
  for (const chain of input.chains) {
    if (chain.moving !== undefined || busy.has(chain.chainId)) continue;
    const members = chain.targetIds.map((id) => targets.get(id)!);
    if (!members.every((t) => t.state === TargetState.Serving && inService(t.workerId) && input.alive(t))) continue;
    for (const t of members) {
      if (!chainsOn.has(t.workerId)) chainsOn.set(t.workerId, []);
      chainsOn.get(t.workerId)!.push(chain);
    }
  }

  for (const a of sources) {
    for (const b of dests) {
      if (joinKey(b) >= leaveKey(a)) break; // the destinations are sorted: none further helps either
      // The cheapest member of A to move (fewest bytes), of a chain that B is not in already and
      // whose failure domains the move does not merge.
      let best: { chain: ChainInfo; from: TargetInfo; bytes: number } | undefined;
      for (const chain of chainsOn.get(a) ?? []) {
        const members = chain.targetIds.map((id) => targets.get(id)!);
        if (members.some((t) => t.workerId === b)) continue;
        const from = members.find((t) => t.workerId === a)!;
        const domains = new Set(members.map((t) => domainOf(t.workerId))).size;
        const after = new Set([...members.filter((t) => t !== from).map((t) => domainOf(t.workerId)), domainOf(b)]).size;
        if (after < domains) continue;
        const bytes = input.usedBytes(from);
        if (best === undefined || bytes < best.bytes || (bytes === best.bytes && chain.chainId < best.chain.chainId)) best = { chain, from, bytes };
      }
      if (best === undefined) continue;
      const to = freeBy.get(b)![0];
      return { chainId: best.chain.chainId, version: best.chain.version, fromTargetId: best.from.targetId, toTargetId: to.targetId, fromWorkerId: a, toWorkerId: b };
    }
  }
  return undefined;
}

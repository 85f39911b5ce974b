// The cluster at a glance, from the routing picture: what `cairn admin report` prints and the
// dashboard's overview shows. Pure.

import type { ChainInfo, RoutingInfo } from '../meta/index.ts';

export interface ClusterSummary {
  clusterId: string;
  routingVersion: number;
  workers: number;
  targets: number;
  targetsByState: Record<string, number>;
  chains: number;
  /** Chains with a serving member and a member not serving (a moving chain's newcomer aside). */
  chainsDegraded: number[];
  /** Chains without a serving member: no reads or writes until one returns. */
  chainsUnavailable: number[];
  chainsMoving: { chainId: number; fromTargetId: number; toTargetId: number; toState: string }[];
  capacityBytes: number;
}

export function clusterSummary(routing: RoutingInfo): ClusterSummary {
  const stateOf = new Map(routing.targets.map((t) => [t.targetId, t.state as string]));
  const state = (id: number): string => stateOf.get(id) ?? 'unknown';
  const targetsByState: Record<string, number> = {};
  for (const t of routing.targets) targetsByState[t.state] = (targetsByState[t.state] ?? 0) + 1;
  const unavailable = routing.chains.filter((ch) => !ch.targetIds.some((id) => state(id) === 'serving'));
  // A moving chain's newcomer syncs beside a full set of serving members: that chain is not degraded.
  const degraded = routing.chains.filter((ch) => !unavailable.includes(ch) && ch.targetIds.some((id) => id !== ch.moving?.toTargetId && state(id) !== 'serving'));
  const moving = routing.chains.filter((ch): ch is ChainInfo & { moving: NonNullable<ChainInfo['moving']> } => ch.moving !== undefined);
  return {
    clusterId: routing.clusterId,
    routingVersion: routing.routingVersion,
    workers: routing.workers.length,
    targets: routing.targets.length,
    targetsByState,
    chains: routing.chains.length,
    chainsDegraded: degraded.map((ch) => ch.chainId),
    chainsUnavailable: unavailable.map((ch) => ch.chainId),
    chainsMoving: moving.map((ch) => ({ chainId: ch.chainId, fromTargetId: ch.moving.fromTargetId, toTargetId: ch.moving.toTargetId, toState: state(ch.moving.toTargetId) })),
    capacityBytes: routing.targets.reduce((n, t) => n + t.capacityBytes, 0),
  };
}

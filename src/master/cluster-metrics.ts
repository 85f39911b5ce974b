// The cluster as the replicated metadata describes it, for /metrics: chains and targets by state,
// workers, capacity and the routing version. Every master reports the same picture as of its
// applied index (graph the leader's, `cairn_journal_is_leader == 1`, or take the max).

import { Gauge, type Registry } from 'prom-client';
import { gaugeOf } from '../metrics.ts';
import { TargetState } from '../meta/commands.ts';
import type { RoutingInfo } from '../meta/index.ts';
import { clusterSummary, type ClusterSummary } from './cluster-summary.ts';

/** A scrape reads many gauges: the picture is built once per this many milliseconds. */
const summaryReuseMs = 1000;

interface Picture {
  summary: ClusterSummary;
  workersOnline: number;
}

export function clusterMetrics(registry: Registry, routing: () => RoutingInfo): void {
  let cached: { atMs: number; picture: Picture } | undefined;
  const picture = (): Picture => {
    const now = performance.now();
    if (cached === undefined || now - cached.atMs > summaryReuseMs) cached = { atMs: now, picture: take(routing()) };
    return cached.picture;
  };
  const registers = [registry];
  new Gauge({
    name: 'cairn_chains',
    help: "chains by state: healthy (every member serving), degraded (one serving, another not), unavailable (none serving); 'moving' counts chains with a member moving to another worker, also counted in their state",
    labelNames: ['state'],
    registers,
    collect() {
      const s = picture().summary;
      this.set({ state: 'healthy' }, s.chains - s.chainsDegraded.length - s.chainsUnavailable.length);
      this.set({ state: 'degraded' }, s.chainsDegraded.length);
      this.set({ state: 'unavailable' }, s.chainsUnavailable.length);
      this.set({ state: 'moving' }, s.chainsMoving.length);
    },
  });
  new Gauge({
    name: 'cairn_targets',
    help: 'storage targets by public state (serving, syncing, waiting, lastsrv, offline)',
    labelNames: ['state'],
    registers,
    collect() {
      const byState = picture().summary.targetsByState;
      // Every state is shown, 0 included, so a state that empties reads 0 rather than vanishing.
      for (const state of Object.values(TargetState)) this.set({ state }, byState[state] ?? 0);
    },
  });
  gaugeOf(registry, 'cairn_workers', 'workers registered and not decommissioned', () => picture().summary.workers);
  gaugeOf(registry, 'cairn_workers_online', 'workers with at least one target not offline', () => picture().workersOnline);
  gaugeOf(registry, 'cairn_capacity_bytes', 'capacity of all targets', () => picture().summary.capacityBytes);
  gaugeOf(registry, 'cairn_routing_version', 'version of the routing picture (goes up with every change to workers, targets, chains, tables)', () => picture().summary.routingVersion);
}

function take(routing: RoutingInfo): Picture {
  const online = new Set<number>();
  for (const t of routing.targets) if (t.state !== TargetState.Offline) online.add(t.workerId);
  return { summary: clusterSummary(routing), workersOnline: online.size };
}

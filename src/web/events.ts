// Recent cluster events for the dashboard, found by comparing what a master sees from one second to
// the next: leader changes, checkpoints, workers joining or leaving, target state changes (a
// target going offline, resyncing, serving again) and chain membership changes. Every master keeps
// its own list from when it started, so the leader shows what happened while it was up. Pure.

import type { RoutingInfo, WorkerInfo } from '../meta/index.ts';

export type EventKind = 'leader' | 'checkpoint' | 'worker' | 'target' | 'chain';

export interface ClusterEvent {
  atMs: number;
  kind: EventKind;
  text: string;
}

/** What one look at the cluster saw. */
export interface Picture {
  leaderId: number | undefined;
  term: number;
  snapshotIndex: number;
  routing: RoutingInfo;
  workers: WorkerInfo[];
}

export const eventsKeptMax = 500;

/** What changed from `before` to `now`, as events stamped `atMs`. */
export function eventsBetween(before: Picture, now: Picture, atMs: number): ClusterEvent[] {
  const out: ClusterEvent[] = [];
  const add = (kind: EventKind, text: string): void => void out.push({ atMs, kind, text });
  if (now.leaderId !== before.leaderId) {
    add('leader', now.leaderId === undefined ? `no leader (term ${now.term}): an election is under way` : `master ${now.leaderId} leads (term ${now.term})`);
  }
  if (now.snapshotIndex > before.snapshotIndex) add('checkpoint', `checkpoint at index ${now.snapshotIndex}`);
  const workersBefore = new Map(before.workers.map((w) => [w.workerId, w]));
  for (const w of now.workers) {
    const was = workersBefore.get(w.workerId);
    if (was === undefined) add('worker', `worker ${w.workerId} registered at ${w.address}`);
    else if (was.instance !== w.instance) add('worker', `worker ${w.workerId} restarted`);
    if (w.decommissionedMs !== undefined && was?.decommissionedMs === undefined) add('worker', `worker ${w.workerId} decommissioned`);
  }
  const targetsBefore = new Map(before.routing.targets.map((t) => [t.targetId, t]));
  for (const t of now.routing.targets) {
    const was = targetsBefore.get(t.targetId);
    if (was === undefined || was.state === t.state) continue;
    add('target', `target ${t.targetId} (worker ${t.workerId}): ${was.state} → ${t.state}${resyncNote(was.state, t.state)}`);
  }
  const chainsBefore = new Map(before.routing.chains.map((c) => [c.chainId, c]));
  for (const c of now.routing.chains) {
    const was = chainsBefore.get(c.chainId);
    if (was === undefined) add('chain', `chain ${c.chainId} created: ${c.targetIds.join(', ')}`);
    else if (was.targetIds.join() !== c.targetIds.join()) add('chain', `chain ${c.chainId} v${c.version}: ${was.targetIds.join(', ')} → ${c.targetIds.join(', ')}`);
  }
  return out;
}

function resyncNote(from: string, to: string): string {
  if (to === 'syncing') return ' (resync started)';
  if (from === 'syncing' && to === 'serving') return ' (resync done)';
  if (to === 'offline') return ' (failed or unreachable)';
  return '';
}

/** The newest events, oldest first, at most eventsKeptMax. */
export class EventLog {
  private readonly list: ClusterEvent[] = [];

  add(events: ClusterEvent[]): void {
    this.list.push(...events);
    if (this.list.length > eventsKeptMax) this.list.splice(0, this.list.length - eventsKeptMax);
  }

  recent(): ClusterEvent[] {
    return [...this.list];
  }
}

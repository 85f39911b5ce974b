// `cairn admin nodes|targets|chains|report`: the cluster manager's view of workers, targets and
// chains, as tables or JSON.

import type { Command } from 'commander';
import { formatBytes } from '../bytes.ts';
import type { MasterClient } from '../client/index.ts';
import type { ChainInfo, RoutingInfo, TargetInfo, WorkerInfo } from '../meta/index.ts';
import { chainBalance, formatBalance } from '../placement/index.ts';
import { MasterWorkerMethod, type ScrubReport, type WorkerHealth } from '../worker/protocol.ts';
import { withClient as run, type TargetFlags } from './cluster-target.ts';
import { jsonLine, printable } from './format.ts';
import { decommissionReport } from './worker-cmd.ts';
import type { QuarantineReport } from '../master/quarantine.ts';
import { clusterSummary } from '../master/cluster-summary.ts';

type Flags = TargetFlags & { json?: boolean };

export function registerClusterCommands(admin: Command, addTargetOptions: (c: Command) => Command): void {
  addTargetOptions(admin.command('nodes').option('--json', 'print JSON'))
    .description('workers: address, failure domain, targets and their states')
    .action((o: Flags) =>
      run(o, async (c) => {
        const workers = await c.query<WorkerInfo[]>('meta.query', { op: 'workers' });
        if (o.json) return console.log(jsonLine(workers));
        console.log(table(['worker', 'address', 'domain', 'targets', 'registered'], workers.map((w) => [w.workerId, w.address, w.domain || '-', w.targets.map((t) => `${t.targetId}:${t.state}`).join(' '), registeredColumn(w)])));
      }),
    );

  addTargetOptions(admin.command('targets').option('--json', 'print JSON'))
    .description('targets: worker, chain, public state, capacity, path')
    .action((o: Flags) =>
      run(o, async (c) => {
        const targets = await c.query<TargetInfo[]>('meta.query', { op: 'targets' });
        if (o.json) return console.log(jsonLine(targets));
        // A free target that left a chain still holds that chain's chunks until the leader reclaims them.
        const chain = (t: TargetInfo): string | number => t.chainId || (t.leftChainAt === undefined ? '-' : '- (left one; to reclaim)');
        console.log(table(['target', 'worker', 'chain', 'state', 'capacity', 'path'], targets.map((t) => [t.targetId, t.workerId, chain(t), t.state, formatBytes(t.capacityBytes), t.path])));
      }),
    );

  addTargetOptions(admin.command('chains').option('--json', 'print JSON').option('--balance', 'how evenly workers share chains and positions'))
    .description('chains: version and members in order (head first) with their states')
    .action((o: Flags & { balance?: boolean }) =>
      run(o, async (c) => {
        const routing = await c.query<RoutingInfo>('cluster.routing', {});
        const balance = chainBalance(routing.chains.map((ch) => ch.targetIds), routing.targets.map((t) => ({ targetId: t.targetId, workerId: t.workerId, capacityBytes: t.capacityBytes })));
        if (o.json) return console.log(jsonLine(o.balance ? { chains: routing.chains, balance } : routing.chains));
        console.log(table(['chain', 'version', 'members'], routing.chains.map((ch) => [ch.chainId, ch.version, members(routing, ch)])));
        if (o.balance) console.log(`\n${formatBalance(balance)}`);
      }),
    );

  addTargetOptions(admin.command('report').option('--json', 'print JSON'))
    .description('the cluster at a glance: masters, workers, targets by state, chains that are degraded or unavailable')
    .action((o: Flags) => run(o, (c) => report(c, o)));
}

/** When the worker registered, and when it was decommissioned if it was. */
function registeredColumn(w: WorkerInfo): string {
  const registered = new Date(w.registeredMs).toISOString();
  return w.decommissionedMs === undefined ? registered : `${registered}, DECOMMISSIONED ${new Date(w.decommissionedMs).toISOString()}`;
}

async function report(c: MasterClient, o: Flags): Promise<void> {
  const routing = await c.query<RoutingInfo>('cluster.routing', {});
  const decommissioned = await decommissionReport(c, await c.query<WorkerInfo[]>('meta.query', { op: 'workers' }));
  const summary = { ...clusterSummary(routing), ...(await dataHealth(c)), quarantine: await c.query<QuarantineReport>(MasterWorkerMethod.quarantine, {}) };
  const byState = summary.targetsByState;
  const chainsById = new Map(routing.chains.map((ch) => [ch.chainId, ch]));
  const degraded = summary.chainsDegraded.map((id) => chainsById.get(id)!);
  const unavailable = summary.chainsUnavailable.map((id) => chainsById.get(id)!);
  const moving = routing.chains.filter((ch) => ch.moving !== undefined);
  const state = (id: number): string => routing.targets.find((t) => t.targetId === id)?.state ?? 'unknown';
  const workerOf = (id: number): number | undefined => routing.targets.find((t) => t.targetId === id)?.workerId;
  if (o.json) return console.log(jsonLine({ ...summary, ...decommissioned.json }));
  console.log(`cluster ${summary.clusterId || '(not named yet)'}, routing version ${summary.routingVersion}`);
  console.log(`workers: ${summary.workers}, targets: ${summary.targets} (${Object.entries(byState).map(([s, n]) => `${n} ${s}`).join(', ') || 'none'}), raw capacity ${formatBytes(summary.capacityBytes)}`);
  console.log(`chains: ${summary.chains}, degraded: ${degraded.length === 0 ? 'none' : degraded.map((ch) => `${ch.chainId} (${members(routing, ch)})`).join(', ')}`);
  if (moving.length > 0) {
    const move = (ch: ChainInfo): string => `chain ${ch.chainId}: target ${ch.moving!.fromTargetId} (worker ${workerOf(ch.moving!.fromTargetId)}) to ${ch.moving!.toTargetId} (worker ${workerOf(ch.moving!.toTargetId)}, ${state(ch.moving!.toTargetId)})`;
    console.log(`rebalancing (each newcomer resyncs, then its source leaves): ${moving.map(move).join(', ')}`);
  }
  const waitsFor = (ch: ChainInfo): string => (ch.targetIds.some((id) => state(id) === 'lastsrv') ? 'its lastsrv' : "its members' workers, restored from a backup");
  if (unavailable.length > 0) console.log(`UNAVAILABLE (no serving member): ${unavailable.map((ch) => `${ch.chainId} (${members(routing, ch)}; waiting for ${waitsFor(ch)})`).join(', ')}`);
  const corrupt = Object.entries(summary.chunksCorruptByTarget);
  console.log(`corrupt chunks: ${corrupt.length === 0 ? 'none reported' : corrupt.map(([t, n]) => `${n} on target ${t}`).join(', ')}`);
  const s = summary.scrub;
  console.log(`scrub (since each worker started; ${summary.workersReporting} reporting): ${s.chunks} chunks (${formatBytes(s.bytes)}) verified, ${s.found} damaged found, ${s.repaired} repaired, ${s.unrepaired} not repairable yet, ${s.passes} passes`);
  for (const line of decommissioned.lines) console.log(line);
  const q = summary.quarantine;
  if (q.auditedMs === null) console.log('quarantined chunks: not audited yet by this leader (cairn admin quarantine list audits now)');
  else console.log(`quarantined chunks (of inodes the namespace does not know; kept): ${q.chunks === 0 ? 'none' : `${q.chunks} (${formatBytes(q.bytes)}) on targets ${q.targets.filter((t) => t.chunks > 0).map((t) => t.targetId).join(', ')}: see cairn admin quarantine list`}, audit at ${new Date(q.auditedMs).toISOString()}${q.targetsUnreached > 0 ? `, ${q.targetsUnreached} targets not reached` : ''}`);
}

/**
 * What the leader heard in workers' latest heartbeats: corrupt chunks by target and the scrubbers'
 * counts summed. The leader keeps these in memory only: after a failover they refill within a heartbeat.
 */
async function dataHealth(c: MasterClient): Promise<{ workersReporting: number; chunksCorruptByTarget: Record<string, number>; scrub: ScrubReport }> {
  const health = await c.query<WorkerHealth[]>(MasterWorkerMethod.health, {});
  const scrub: ScrubReport = { passes: 0, chunks: 0, bytes: 0, found: 0, repaired: 0, unrepaired: 0 };
  const chunksCorruptByTarget: Record<string, number> = {};
  for (const w of health) {
    for (const t of w.targets) if (t.chunksCorrupt > 0) chunksCorruptByTarget[String(t.targetId)] = t.chunksCorrupt;
    for (const k of Object.keys(scrub) as (keyof ScrubReport)[]) scrub[k] += w.scrub?.[k] ?? 0;
  }
  return { workersReporting: health.length, chunksCorruptByTarget, scrub };
}

function members(routing: RoutingInfo, chain: ChainInfo): string {
  return chain.targetIds.map((id) => `${id}:${routing.targets.find((t) => t.targetId === id)?.state ?? '?'}`).join(' ');
}

/** Aligned columns; every cell escaped (format.ts), as paths and failure domains come from workers' flags. */
function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map((c) => printable(String(c))))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n');
}

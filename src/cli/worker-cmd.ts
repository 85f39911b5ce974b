// `cairn admin worker decommission ID`: tells the cluster a worker is lost for good. It shows what
// that does to each chain the worker is in, refuses what would give data up (unless --force), asks
// before it acts (or takes --yes), and leaves the rest to the cluster manager, which puts free
// targets into those chains and resyncs them. Also the decommission lines of `admin report`.

import { confirm } from './ask.ts';
import type { Command } from 'commander';
import type { MasterClient } from '../client/index.ts';
import type { DecommissionReply, ReplacementsReply } from '../master/cluster-manager.ts';
import { decommissionImpact, type DecommissionImpact } from '../master/replacements.ts';
import type { RoutingInfo, WorkerInfo } from '../meta/index.ts';
import { WorkerError, WorkerErrorCode } from '../worker/errors.ts';
import { MasterWorkerMethod } from '../worker/protocol.ts';
import { withClient as run, type TargetFlags } from './cluster-target.ts';
import { configError, parsePositiveInt } from './config.ts';
import { jsonLine, printable } from './format.ts';

type Flags = TargetFlags & { json?: boolean; yes?: boolean; force?: boolean };

export function registerWorkerCommands(admin: Command, addTargetOptions: (c: Command) => Command): void {
  const worker = admin.command('worker').description('storage workers');
  addTargetOptions(
    worker
      .command('decommission')
      .argument('<id>', 'the worker id')
      .option('--yes', 'do not ask for confirmation (needed when not on a terminal)')
      .option('--force', 'decommission even when the worker holds a chain\'s only up-to-date replica (that chain\'s data is then given up)')
      .option('--json', 'print the result as JSON'),
  )
    .description('a worker lost for good: its chains get free targets in its place, filled by resync; its id is never registered again')
    .action((id: string, o: Flags) => run(o, (c) => decommission(c, parsePositiveInt(id, 'id'), o)));
}

async function decommission(c: MasterClient, workerId: number, o: Flags): Promise<void> {
  const [workers, routing] = await Promise.all([c.query<WorkerInfo[]>('meta.query', { op: 'workers' }), c.query<RoutingInfo>('cluster.routing', {})]);
  const worker = workers.find((w) => w.workerId === workerId);
  if (worker === undefined) throw configError(`no worker ${workerId}: the workers are ${workers.map((w) => w.workerId).join(', ') || 'none'} (see cairn admin nodes)`);
  if (worker.decommissionedMs !== undefined) {
    console.log(`worker ${workerId} was decommissioned at ${new Date(worker.decommissionedMs).toISOString()}; nothing to do`);
    return;
  }
  const impact = decommissionImpact(workerId, workers, routing.targets, routing.chains);
  if (!o.json) for (const line of describeImpact(worker, impact)) console.log(line);
  if (impact.unsafeChainIds.length > 0 && o.force !== true) {
    throw new WorkerError(
      WorkerErrorCode.DecommissionUnsafe,
      `refused: worker ${workerId} holds the only up-to-date replica of chain(s) ${impact.unsafeChainIds.join(', ')}; bring another member of them back first, or give --force to give their data up`,
    );
  }
  await confirm(o.yes === true, `cairn: decommission worker ${workerId}? Its id is never used again. [y/N] `, `decommissioning worker ${workerId} is for good`, 'changed');
  const reply = await c.call<DecommissionReply>(MasterWorkerMethod.decommission, { workerId, force: o.force === true });
  if (o.json) return console.log(jsonLine(reply));
  console.log(`worker ${workerId} decommissioned; the cluster manager now replaces its members in ${reply.impact.chains.length} chain(s) as free targets allow: follow it with cairn admin report`);
}

/** What the operator reads before confirming: the chains, what each keeps, the warnings. */
function describeImpact(worker: WorkerInfo, impact: DecommissionImpact): string[] {
  const lines = [`worker ${worker.workerId} at ${printable(worker.address)}${worker.domain === '' ? '' : ` (domain ${printable(worker.domain)})`}: targets ${worker.targets.map((t) => `${t.targetId}:${t.state}`).join(' ') || 'none'}`];
  if (impact.chains.length === 0) lines.push('it is in no chain: nothing to replace');
  for (const ch of impact.chains) {
    lines.push(`  chain ${ch.chainId}: target ${ch.leaving.join(', ')} leaves; ${ch.servingLeft} of its ${ch.members} members serve on other workers`);
  }
  const unsafe = new Set(impact.unsafeChainIds);
  for (const ch of impact.chains) {
    if (unsafe.has(ch.chainId)) lines.push(`DANGER: chain ${ch.chainId} has no serving member on another worker: its data is only on this worker`);
    else if (ch.servingLeft < ch.members - 1) lines.push(`warning: chain ${ch.chainId} keeps ${ch.servingLeft} serving replica(s) until its replacement has resynced`);
  }
  if (impact.freeTargets < impact.chains.length) {
    lines.push(`warning: only ${impact.freeTargets} free target(s) on other workers for ${impact.chains.length} chain(s): some chains stay degraded until a worker or disk is added`);
  }
  return lines;
}

/** `admin report`'s lines about decommissioned workers and chains waiting for a replacement member. */
export async function decommissionReport(c: MasterClient, workers: readonly WorkerInfo[]): Promise<{ lines: string[]; json: object }> {
  const gone = workers.filter((w) => w.decommissionedMs !== undefined);
  const replacements = await c.call<ReplacementsReply>(MasterWorkerMethod.replacements, {});
  const lines: string[] = [];
  if (gone.length > 0) lines.push(`decommissioned workers: ${gone.map((w) => `${w.workerId} (${new Date(w.decommissionedMs!).toISOString()})`).join(', ')}`);
  for (const s of replacements.stuck) lines.push(`chain ${s.chainId} waits for a replacement of target ${s.lostTargetId} (worker ${s.lostWorkerId}, ${s.reason}): ${s.why}`);
  return { lines, json: { decommissionedWorkers: gone.map((w) => w.workerId), chainsAwaitingReplacement: replacements.stuck, replaceAfterMs: replacements.replaceAfterMs } };
}

// `cairn admin chain recover ID`: a chain whose only up-to-date member is gone for good (its disk
// died, or its worker was decommissioned with --force) is unavailable, never wrong, and stays so.
// This gives up the writes only that member held: the leader shows which member it would make
// serve (the one whose record says it served the chain last) and which it gives up; after a
// confirmation (or --yes) the chain serves from it and the others resync.

import type { Command } from 'commander';
import type { MasterClient } from '../client/index.ts';
import type { RecoverChainReply } from '../master/cluster-manager.ts';
import { MasterWorkerMethod } from '../worker/protocol.ts';
import { confirm } from './ask.ts';
import { withClient as run, type TargetFlags } from './cluster-target.ts';
import { parsePositiveInt } from './config.ts';
import { jsonLine } from './format.ts';

type Flags = TargetFlags & { json?: boolean; yes?: boolean };

export function registerChainCommands(admin: Command, addTargetOptions: (c: Command) => Command): void {
  const chain = admin.command('chain').description('one chain');
  addTargetOptions(
    chain
      .command('recover')
      .argument('<id>', 'the chain id (cairn admin chains)')
      .option('--yes', 'do not ask for confirmation (needed when not on a terminal)')
      .option('--json', 'print the result as JSON'),
  )
    .description("a chain whose only up-to-date member is lost for good: serve from the best member left, giving up the writes only the lost one held")
    .action((id: string, o: Flags) => run(o, (c) => recover(c, parsePositiveInt(id, 'id'), o)));
}

async function recover(c: MasterClient, chainId: number, o: Flags): Promise<void> {
  const plan = await c.call<RecoverChainReply>(MasterWorkerMethod.recoverChain, { chainId, dryRun: true });
  if (!o.json) for (const line of describePlan(plan)) console.log(line);
  await confirm(o.yes === true, `cairn: recover chain ${chainId} from target ${plan.source}, giving up what only the lost member held? [y/N] `, `recovering chain ${chainId} gives up writes`, 'changed');
  const done = await c.call<RecoverChainReply>(MasterWorkerMethod.recoverChain, { chainId });
  if (o.json) return console.log(jsonLine(done));
  console.log(`chain ${chainId} serves from target ${done.source}; its other members resync from it (follow with cairn admin chains)`);
}

/** What the operator reads before confirming. */
function describePlan(plan: RecoverChainReply): string[] {
  const lines = [`chain ${plan.chainId}: no member serves`];
  for (const r of plan.records) {
    const record = !r.heard ? (r.lost === true ? 'its worker was decommissioned' : 'its worker is not running') : r.servedAt === undefined ? 'running, no record of serving' : r.servedAt < 0 ? 'running, last served another chain' : `running, served this chain through routing version ${r.servedAt}`;
    lines.push(`  target ${r.targetId} (${r.state}): ${record}`);
  }
  const given = plan.given === null ? 'the member that served it last, which is not running,' : `target ${plan.given}`;
  lines.push(`target ${plan.source} would serve; writes that only ${given} held are given up (files whose chunks were only there read as EIO or older content)`);
  return lines;
}

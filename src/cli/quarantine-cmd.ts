// `cairn admin quarantine list|purge`: chunks on workers of inodes the namespace does not know (after
// a restore from an older backup, the files written after it), which nothing removes by itself. The
// leading master audits the workers (src/master/quarantine.ts); a purge is confirmed first.

import type { Command } from 'commander';
import { formatBytes } from '../bytes.ts';
import type { MasterClient } from '../client/index.ts';
import type { PurgeReply } from '../master/cluster-manager.ts';
import type { QuarantineReport } from '../master/quarantine.ts';
import { MasterWorkerMethod } from '../worker/protocol.ts';
import { confirm } from './ask.ts';
import { withClient as run, type TargetFlags } from './cluster-target.ts';
import { jsonLine } from './format.ts';

type Flags = TargetFlags & { json?: boolean; yes?: boolean };

/** Inode ids printed per target; the JSON has every one the leader listed. */
const idsPrintedMax = 20;

export function registerQuarantineCommands(admin: Command, addTargetOptions: (c: Command) => Command): void {
  const q = admin.command('quarantine').description('chunks of inodes the namespace does not know (kept until purged)');
  addTargetOptions(q.command('list').option('--json', 'print JSON'))
    .description('audit the workers now and list, per target, the chunks of inodes the namespace does not know')
    .action((o: Flags) =>
      run(o, async (c) => {
        const report = await audit(c);
        if (o.json) return console.log(jsonLine(report));
        for (const line of describe(report)) console.log(line);
      }),
    );
  addTargetOptions(q.command('purge').option('--yes', 'do not ask for confirmation (needed when not on a terminal)').option('--json', 'print the result as JSON'))
    .description('remove the quarantined chunks from the workers, for good')
    .action((o: Flags) => run(o, (c) => purge(c, o)));
}

function audit(c: MasterClient): Promise<QuarantineReport> {
  return c.query<QuarantineReport>(MasterWorkerMethod.quarantine, { refresh: true });
}

/** The report as lines: a summary, a row per target holding any, the targets not reached. */
export function describe(r: QuarantineReport): string[] {
  if (r.auditedMs === null) return ['quarantine: not audited yet by this leader'];
  const holding = r.targets.filter((t) => t.chunks > 0);
  const lines = [`audit at ${new Date(r.auditedMs).toISOString()}, inode counter ${r.nextInodeId}: ${r.chunks} chunks (${formatBytes(r.bytes)}) of inodes the namespace does not know, on ${holding.length} of ${r.targets.length} targets`];
  for (const t of holding) {
    const ids = t.inodeIds.slice(0, idsPrintedMax).join(' ') + (t.inodes > idsPrintedMax ? ' ...' : '');
    lines.push(`  target ${t.targetId} (worker ${t.workerId}): ${t.chunks} chunks, ${formatBytes(t.bytes)}, ${t.inodes} inodes: ${ids}`);
    if (t.aheadOfCounter > 0) lines.push(`  WARNING: ${t.aheadOfCounter} of them at or past the inode counter: kept even by a purge (the leader moves the counter past ids its workers hold)`);
  }
  for (const t of r.targets.filter((x) => x.error !== undefined)) lines.push(`  target ${t.targetId} (worker ${t.workerId}) not listed: ${t.error}`);
  return lines;
}

async function purge(c: MasterClient, o: Flags): Promise<void> {
  const report = await audit(c);
  if (!o.json) for (const line of describe(report)) console.log(line);
  if (report.chunks === 0) {
    if (o.json) console.log(jsonLine({ chunks: 0, inodes: 0, passes: 0, left: report }));
    else console.log('nothing to purge');
    return;
  }
  const what = `${report.chunks} chunks (${formatBytes(report.bytes)})`;
  await confirm(o.yes === true, `cairn: remove ${what} of inodes the namespace does not know, for good? [y/N] `, `purging removes ${what} for good`, 'removed');
  const reply = await c.call<PurgeReply>(MasterWorkerMethod.quarantinePurge, {});
  if (o.json) return console.log(jsonLine(reply));
  console.log(`removed ${reply.chunks} chunks of ${reply.inodes} inodes (${reply.passes} passes); left: ${reply.left.chunks} chunks`);
}

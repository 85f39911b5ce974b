#!/usr/bin/env node
// The `cairn` command.

import { Command } from 'commander';
import { runDemo } from './demo.ts';

const program = new Command();
program.name('cairn').description('cairn: a distributed file system for large files (Raft-replicated metadata, CRAQ-replicated chunks)');

program
  .command('demo')
  .description('run a 3-node Raft group in this process: commit entries, kill the leader, watch another take over')
  .option('--dir <path>', 'keep the nodes\' WALs in this directory (default: a temporary one, removed afterwards)')
  .action(async (opts: { dir?: string }) => {
    await runDemo({ dir: opts.dir, keep: opts.dir !== undefined, log: (line) => console.log(line) });
  });

program.parseAsync().catch((err: unknown) => {
  console.error(`cairn: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});

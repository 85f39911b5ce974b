// Profile mode of the journal benchmark: the load on one backend with every master under
// node --cpu-prof, then the leader's top self-time functions over the measured window.

import { readdirSync } from 'node:fs';
import path from 'node:path';
import type { ProcessGroup } from '../../test/cluster/process-cluster.ts';
import { measureLoad, type LoadResult } from '../cluster.ts';
import { summarizeProfile, type ProfileSummary } from '../cpuprofile.ts';
import { formatNumber, type Report } from '../report.ts';
import { CairnSystem, CairnWriters, journalDir, masterName, warmUpEnsemble } from './cairn.ts';
import { reportLoad } from './figures.ts';
import type { Backend, Options } from './options.ts';

const profileTopFunctions = 25;
const profileTopFiles = 10;

export async function runProfile(report: Report, procs: ProcessGroup, backend: Backend, opts: Options, dir: string, padBytes: number): Promise<void> {
  const label = `cairn ${backend}`;
  const sys = await CairnSystem.start(procs, backend, opts, (id) => ['--cpu-prof', '--cpu-prof-dir', path.join(dir, masterName(id))]);
  const { masters } = sys;
  let leader: number;
  let load: LoadResult;
  try {
    await masters.client().mutate('meta.mutate', { op: 'mkdir', path: journalDir, mode: 0o755, uid: 0, gid: 0, parents: false });
    const writers = new CairnWriters(masters, opts.proposers, padBytes);
    if (sys.zk !== undefined) await warmUpEnsemble(sys, sys.zk.ensemble, opts, writers.op);
    leader = await masters.waitForLeader();
    console.log(`${label} under --cpu-prof: ${opts.proposers} writers for ${opts.warmupSeconds} + ${opts.seconds} s...`);
    load = await measureLoad(opts.proposers, opts.seconds, opts.warmupSeconds, writers.op, sys.pids());
    const leaderAfter = await masters.waitForLeader();
    if (leaderAfter !== leader) report.note(`leadership moved from ${masterName(leader)} to ${masterName(leaderAfter)} during the load: the profile mixes roles`);
  } finally {
    await sys.stop(); // SIGTERM: a clean exit writes the profiles
  }
  reportLoad(report, `${label} (profiled)`, load);
  const leaderDir = path.join(dir, masterName(leader));
  const files = readdirSync(leaderDir).filter((f) => f.endsWith('.cpuprofile'));
  if (files.length !== 1) throw new Error(`expected one .cpuprofile in ${leaderDir}, found ${files.length}`);
  const summary = summarizeProfile(path.join(leaderDir, files[0]), path.join(import.meta.dirname, '..', '..'), load.windowMonotonicUs);
  printProfile(`${masterName(leader)} (the leader)`, summary);
  report.note(`leader profile: ${path.join(leaderDir, files[0])} (open in Chrome DevTools > Performance)`);
  report.figure('leader: main thread busy (not idle) share of the measured window', 1 - summary.idleMs / summary.sampledMs, 'fraction');
  report.attach('leaderProfile', { file: path.join(leaderDir, files[0]), sampledMs: summary.sampledMs, idleMs: summary.idleMs, functions: summary.functions.slice(0, 50), files: summary.files.slice(0, 20) });
}

function printProfile(who: string, s: ProfileSummary): void {
  console.log(`profile of ${who}, measured window only: ${formatNumber(s.sampledMs)} ms sampled, ${formatNumber(s.idleMs)} ms idle`);
  console.log(`top ${profileTopFunctions} functions by self time (share of non-idle time):`);
  for (const f of s.functions.slice(0, profileTopFunctions)) console.log(`  ${(f.share * 100).toFixed(1).padStart(5)}%  ${formatNumber(f.selfMs).padStart(7)} ms  ${f.name}`);
  console.log(`top ${profileTopFiles} files by self time:`);
  for (const f of s.files.slice(0, profileTopFiles)) console.log(`  ${(f.share * 100).toFixed(1).padStart(5)}%  ${formatNumber(f.selfMs).padStart(7)} ms  ${f.name}`);
}

// Whole-cluster chaos (cluster-chaos.ts): one test per schedule seed. `npm test` runs two short
// schedules; `npm run chaos -- --schedules 50` the full run, `npm run chaos -- --seed S` one again.
// A seed fixes the schedule's choices (which fault, which process, how long, which operations),
// not the timing of real processes: a replay takes the same decisions, not the same interleaving.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { fdGrowthMax, rssGrowthMaxBytes, runSchedule, type ScheduleResult } from './cluster-chaos.ts';
import { netLabUnavailable } from './netlab.ts';
import { zooKeeperSkipReason } from '../zookeeper-fixture.ts';

const seconds = Number(process.env.CAIRN_CLUSTER_CHAOS_SECONDS ?? 30);
const seeds = (process.env.CAIRN_CLUSTER_CHAOS_SEEDS ?? '1,2').split(',').map(Number);
const unavailable = await netLabUnavailable();
// In CI a missing system dependency fails the test; elsewhere it is skipped with the reason.
const skip = unavailable !== undefined && process.env.CI !== 'true' ? `needs network namespaces: ${unavailable}` : undefined;
const results: ScheduleResult[] = [];

const zkMissing = zooKeeperSkipReason();

// Odd seeds run the masters on the Raft journal, even seeds on ZooKeeper.
for (const seed of seeds) {
  const journal = seed % 2 === 1 ? 'raft' : 'zookeeper';
  test(`whole-cluster chaos, schedule ${seed} (${journal}): ${seconds} s of kills, pauses, partitions and full and slow disks under file and metadata clients`, { skip: skip ?? (journal === 'zookeeper' ? zkMissing : undefined) }, async (t) => {
    assert.equal(unavailable, undefined, `network namespaces are needed (each process on a host of its own): ${unavailable}`);
    const r = await runSchedule(t, seed, seconds, journal);
    results.push(r);
    t.diagnostic(`schedule ${seed}: ${JSON.stringify(r.figures)}`);
    t.diagnostic(`faults: ${r.faults.join('; ')}`);
    assert.ok(r.figures.fileOpsAcknowledged > 0 && r.figures.metadataOpsAnswered > 0, `the workload made no progress: ${JSON.stringify(r.figures)}`);
    assert.deepEqual(r.failures, [], `schedule ${seed} failed (replay: npm run chaos -- --seed ${seed}):\n${r.failures.join('\n')}\nfaults: ${r.faults.join('; ')}`);
  });
}

after(() => {
  if (results.length === 0) return;
  const failed = results.filter((r) => r.failures.length > 0);
  const sum = (k: string): number => results.reduce((a, r) => a + (r.figures[k] ?? 0), 0);
  console.log(
    `whole-cluster chaos: ${results.length - failed.length} passed, ${failed.length} failed (${results.filter((r) => r.journal === 'raft').length} on Raft, ${results.filter((r) => r.journal === 'zookeeper').length} on ZooKeeper)${failed.length > 0 ? ` (seeds ${failed.map((r) => r.seed).join(', ')})` : ''}; ` +
      `network faults through network namespaces; slow disks ${results[0].slowDisks}; ${sum('faults')} faults injected, ${sum('fileOpsAcknowledged')} file writes acknowledged (${sum('fileOpsUnknown')} of unknown outcome), ` +
      `${sum('readsChecked')} reads checked, ${sum('metadataOpsAnswered')} metadata operations checked for linearizability; ` +
      `bounds: ${fdGrowthMax} descriptors, ${rssGrowthMaxBytes / 2 ** 20} MiB resident growth per process`,
  );
});

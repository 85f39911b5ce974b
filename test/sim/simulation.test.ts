// The bounded simulation run of `npm test`: many seeds of both workloads (the key-value store and
// the metadata state machine) must pass every checker, a seed must replay byte for byte, and every
// named bug must be caught under each workload (proving the checkers can fail).
// Longer runs: `npm run sim -- --seeds 2000`. CAIRN_SIM_SEEDS overrides the seed count here.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { metaWorkload } from '../../src/sim/meta-workload.ts';
import { namespaceModel } from '../../src/sim/namespace-model.ts';
import { emptyStats, runSimulation, runWorkload, simBugs, type SimOptions, type SimResult, type SimStats } from '../../src/sim/simulation.ts';
import { workloadNames, type WorkloadName } from '../../src/sim/workload.ts';

const seeds = Number(process.env.CAIRN_SIM_SEEDS ?? 200);
/** The bound: every bug must be caught within this many seeds. */
const bugSeedsMax = 200;

function describeFailure(r: SimResult): string {
  return `seed ${r.seed} (${r.workload}) violated ${r.violation}\nreplay: npm run sim -- --seed ${r.seed} --workload ${r.workload} --trace\n${r.lastEvents.join('\n')}`;
}

test(`${seeds} seeds (odd kv, even meta) pass every safety, linearizability and liveness checker`, async () => {
  const total = new Map<WorkloadName, SimStats>(workloadNames.map((w) => [w, { ...emptyStats }]));
  for (let seed = 1; seed <= seeds; seed++) {
    const r = await runSimulation({ seed });
    assert.ok(r.ok, describeFailure(r));
    const sum = total.get(r.workload)!;
    for (const k of Object.keys(sum) as (keyof SimStats)[]) sum[k] += r.stats[k];
  }
  // The run is only worth something if the faults and features happened, under each workload.
  for (const [w, sum] of total) {
    for (const [k, v] of Object.entries(sum)) assert.ok(v > 0, `no ${k} happened in the ${w} seeds of ${seeds}`);
  }
});

test('a seed replays exactly: same trace hash, same outcome, under each workload', async () => {
  const cases: SimOptions[] = [{ seed: 3 }, { seed: 77 }, { seed: 4 }, { seed: 78 }, { seed: 5, workload: 'meta' }];
  for (const opts of cases) {
    const a = await runSimulation(opts);
    const b = await runSimulation(opts);
    assert.equal(a.traceHash, b.traceHash, `seed ${opts.seed}`);
    assert.equal(a.events, b.events);
    assert.deepEqual(a.stats, b.stats);
    assert.equal(a.workload, opts.workload ?? (opts.seed % 2 === 1 ? 'kv' : 'meta'));
  }
  assert.notEqual((await runSimulation({ seed: 3 })).traceHash, (await runSimulation({ seed: 4 })).traceHash);
  assert.notEqual((await runSimulation({ seed: 5, workload: 'kv' })).traceHash, (await runSimulation({ seed: 5, workload: 'meta' })).traceHash);
});

/**
 * A lease counted in ticks alone is wrong only when a stalled leader resumes, still in its lease by
 * its ticks, and a client's read reaches it before any message of the newer term does; the kv
 * workload's reads of a few hot keys see the stale value (seed 143), the namespace workload's have
 * not within 700 seeds, so the bug is held to the kv workload.
 */
const bugWorkloads: Partial<Record<(typeof simBugs)[number], readonly string[]>> = { 'lease-ticks-only': ['kv'] };

for (const workload of workloadNames) {
  for (const bug of simBugs) {
    if (!(bugWorkloads[bug] ?? workloadNames).includes(workload)) continue;
    test(`bug '${bug}' is caught within ${bugSeedsMax} seeds of the ${workload} workload`, async () => {
      for (let seed = 1; seed <= bugSeedsMax; seed++) {
        const r = await runSimulation({ seed, bug, workload });
        if (r.ok) continue;
        assert.doesNotMatch(r.violation ?? '', /^crash:/, `bug ${bug} crashed the simulator instead of tripping a checker`);
        // Only the state hash comparison sees a replica that lost its snapshot before anyone reads the difference.
        if (bug === 'no-snapshot-restore') assert.match(r.violation ?? '', /^state machine safety: .* has state /);
        if (bug === 'lease-ticks-only') assert.match(r.violation ?? '', /^linearizability: /);
        return;
      }
      assert.fail(`bug ${bug} went unnoticed for ${bugSeedsMax} seeds of the ${workload} workload`);
    });
  }
}

test('a namespace model that gets rename wrong fails the linearizability check', async () => {
  // The wrong specification: rename never replaces an existing target.
  const wrongModel: typeof namespaceModel = {
    ...namespaceModel,
    step(state, input, output) {
      if (input.kind !== 'rename' || input.from === input.to || !state.has(input.from) || !state.has(input.to)) {
        return namespaceModel.step(state, input, output);
      }
      return { ok: output === undefined || output.code === 'EEXIST', state };
    },
  };
  for (let seed = 1; seed <= 20; seed++) {
    const r = await runWorkload({ seed }, { ...metaWorkload, model: wrongModel });
    if (r.ok) continue;
    assert.match(r.violation ?? '', /^linearizability: not linearizable/);
    assert.match(r.violation ?? '', /rename\(/);
    return;
  }
  assert.fail('a wrong namespace model went unnoticed for 20 seeds');
});

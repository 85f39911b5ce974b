// The bounded simulation run of `npm test`: many seeds must pass every checker, a seed must replay
// byte for byte, and every named bug must be caught (proving the checkers can fail).
// Longer runs: `npm run sim -- --seeds 2000`. CAIRN_SIM_SEEDS overrides the seed count here.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { emptyStats, runSimulation, simBugs, type SimResult, type SimStats } from '../../src/sim/simulation.ts';

const seeds = Number(process.env.CAIRN_SIM_SEEDS ?? 150);
/** The bound: every bug must be caught within this many seeds. */
const bugSeedsMax = 200;

function describeFailure(r: SimResult): string {
  return `seed ${r.seed} violated ${r.violation}\nreplay: npm run sim -- --seed ${r.seed} --trace\n${r.lastEvents.join('\n')}`;
}

test(`${seeds} seeds pass every safety, linearizability and liveness checker`, () => {
  const total: SimStats = { ...emptyStats };
  for (let seed = 1; seed <= seeds; seed++) {
    const r = runSimulation({ seed });
    assert.ok(r.ok, describeFailure(r));
    for (const k of Object.keys(total) as (keyof SimStats)[]) total[k] += r.stats[k];
  }
  // The run is only worth something if the faults and features happened.
  for (const [k, v] of Object.entries(total)) assert.ok(v > 0, `no ${k} happened in ${seeds} seeds`);
});

test('a seed replays exactly: same trace hash, same outcome', () => {
  for (const seed of [3, 77]) {
    const a = runSimulation({ seed });
    const b = runSimulation({ seed });
    assert.equal(a.traceHash, b.traceHash);
    assert.equal(a.events, b.events);
    assert.deepEqual(a.stats, b.stats);
  }
  assert.notEqual(runSimulation({ seed: 3 }).traceHash, runSimulation({ seed: 4 }).traceHash);
});

for (const bug of simBugs) {
  test(`bug '${bug}' is caught within ${bugSeedsMax} seeds`, () => {
    for (let seed = 1; seed <= bugSeedsMax; seed++) {
      const r = runSimulation({ seed, bug });
      if (!r.ok) {
        assert.doesNotMatch(r.violation ?? '', /^crash:/, `bug ${bug} crashed the simulator instead of tripping a checker`);
        return;
      }
    }
    assert.fail(`bug ${bug} went unnoticed for ${bugSeedsMax} seeds`);
  });
}

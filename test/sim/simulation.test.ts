// The bounded simulation run of `npm test`: many seeds of both workloads (the key-value store and
// the metadata state machine) must pass every checker, a seed must replay byte for byte, and every
// named bug must be caught under each workload on its pinned seed (proving the checkers can fail).
// Longer runs: `npm run sim -- --seeds 2000`. CAIRN_SIM_SEEDS overrides the seed count here.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { metaWorkload } from '../../src/sim/meta-workload.ts';
import { namespaceModel } from '../../src/sim/namespace-model.ts';
import { emptyStats, runSimulation, runWorkload, type SimBug, type SimOptions, type SimResult, type SimStats } from '../../src/sim/simulation.ts';
import { workloadNames, type WorkloadName } from '../../src/sim/workload.ts';

const seeds = Number(process.env.CAIRN_SIM_SEEDS ?? 200);
/** Every bug must be caught within this many seeds. */
const bugSeedsMax = 2000;

function describeFailure(r: SimResult): string {
  return `seed ${r.seed} (${r.workload}) violated ${r.violation}\nreplay: npm run sim -- --seed ${r.seed} --workload ${r.workload} --trace\n${r.lastEvents.join('\n')}`;
}

test(`${seeds} seeds (odd kv, even meta) pass every safety, linearizability and liveness checker`, async () => {
  const total = new Map<WorkloadName, SimStats>((['kv', 'meta'] as const).map((w) => [w, { ...emptyStats }]));
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
 * For each bug and workload, the first seed (of 1..300, for the rarer ones of 1..2000) whose run
 * the bug breaks with the property named, found with `npm run sim -- --seeds 300 --bug NAME
 * --workload W` (`--keep-going` lists every seed and property), and that property. Pinning the
 * seed keeps the test fast; a change to the simulator that moves it makes this test fail with the
 * command that finds the new one. The table's type makes every named bug need an entry.
 */
const catchingSeeds: Record<SimBug, Partial<Record<WorkloadName, number>> & { property: RegExp }> = {
  'commit-old-term': { kv: 20, meta: 46, property: /^committed entry at risk: / },
  // The WAL refuses the second vote's hard state before anyone counts it.
  'vote-twice': { kv: 1, meta: 1, property: /^(journal failed: .*hard state .* goes backwards|election safety: )/ },
  'stale-read': { kv: 3, meta: 6, property: /^linearizability: / },
  'no-fsync': { kv: 1, meta: 1, property: /^commit durability: / },
  'ack-before-fsync': { kv: 1, meta: 1, property: /^commit durability: / },
  'apply-before-commit': { kv: 1, meta: 1, property: /^(state machine safety|leader completeness|liveness|linearizability): / },
  // A node that skips its snapshot also loses the member addresses in it: it stalls, or diverges.
  'no-snapshot-restore': { kv: 2, meta: 2, property: /^(state machine safety: .* has state |liveness: )/ },
  // Kv seed 3 until a leader caught up a follower that lost entries it had acknowledged (there the
  // follower's copy came back before the checker looked).
  'skip-torn-tail-truncate': { kv: 25, meta: 30, property: /^(commit durability|recovery): / },
  // Pages whose fsync failed never reach the disk: a later restart finds the hole and refuses.
  'ignore-fsync-error': { kv: 8, meta: 7, property: /^(commit durability|recovery): / },
  'corrupt-as-torn': { kv: 1, meta: 1, property: /^recovery: / },
  // A probe client reads from a stalled leader (test/unit/driver-lease.test.ts checks the rule directly too).
  'lease-ticks-only': { kv: 27, meta: 68, property: /^linearizability: / },
  // The seeds of the targeted fault families (docs/raft.md, "What the seeds reach").
  // A leader stalled on the minority side of 5 voters with ReadIndex reads confirms a read with its follower.
  'read-quorum-short': { kv: 17, meta: 69, property: /^linearizability: / },
  // A snapshot transfer delivered again late: the WAL refuses the older snapshot (or the commit index going back).
  'install-old-snapshot': { kv: 93, meta: 62, property: /^journal failed: / },
  // Clocks at the edges of ±50%, a slow-clock lease leader cut off; probe clients read from it after a write elsewhere.
  // Meta seed 73 until directory leases came into the metadata state (9f9b954 moved the meta schedules).
  'lease-ignores-drift': { kv: 73, meta: 436, property: /^linearizability: / },
  // The data path's (docs/data-path-sim.md): the data workload only.
  // The head acknowledges before the tail has the version: a read from the tail returns the older
  // one, or (seed 1, since chain members move onto idle workers) the tail never gets it at all.
  'ack-before-tail-commit': { data: 1, property: /^(linearizability|replicas agree): / },
  // A middle member answers with its committed version while the tail already serves the pending one.
  'serve-pending-as-clean': { data: 51, property: /^linearizability: / },
  // A returning target keeps an old version of a chunk and serves it once the resync calls it done.
  // Seed 1 until reads at the last serving member forwarded a pending version to syncing members.
  'resync-skip-stale': { data: 5, property: /^(linearizability|replicas agree): / },
  // A member forwards a version whose pending name is not durable yet, crashes, and returns
  // without it while the tail has served it.
  'forward-unsynced-name': { data: 90, property: /^linearizability: / },
  // A head or middle member cut off mid-write comes back syncing, last on the write path, and takes
  // itself for the tail. Found at data seed 147; when reads stopped waiting for the masters' fsyncs
  // no mixed-fault seed met it any more: seeds ending in 7 run the targeted family that does.
  'demoted-member-commits': { data: 17, property: /^linearizability: / },
  // A target whose fsync failed reports itself offline and goes on serving reads with its old
  // routing, while writes go on without it.
  'read-failed-target': { data: 325, property: /^linearizability: / },
  // A forward that waited for its chunk's lock while its member was cut off and came back syncing
  // is taken as one to the tail, by the chain version it arrived with (found by the family, seed 377).
  // Reached rarely even then (2 of 2,000 family seeds), and by no seed of 1..20,000 since workers
  // record where their targets serve (a write may wait for that record), which moved every
  // schedule. The demoted-member rule catches what the schedules reach, and a member serves again
  // only after a resync, which waits for the same chunk lock: test/unit/replica-write-lock.test.ts
  // pins the rule on a chain change made by hand.
  'no-recheck-after-lock': { property: /^linearizability: / },
};

for (const [bug, pinned] of Object.entries(catchingSeeds) as [SimBug, (typeof catchingSeeds)[keyof typeof catchingSeeds]][]) {
  for (const workload of workloadNames) {
    const seed = pinned[workload];
    if (seed === undefined) continue;
    test(`bug '${bug}' is caught at ${workload} seed ${seed} (within ${bugSeedsMax}), which passes without it`, async () => {
      const refind = `find the new seed with: npm run sim -- --seeds ${bugSeedsMax} --bug ${bug} --workload ${workload}`;
      assert.ok(seed >= 1 && seed <= bugSeedsMax, `seed ${seed} is outside 1..${bugSeedsMax}`);
      const broken = await runSimulation({ seed, bug, workload });
      assert.equal(broken.ok, false, `bug ${bug} went unnoticed at ${workload} seed ${seed}; ${refind}`);
      assert.match(broken.violation ?? '', pinned.property, `bug ${bug} at ${workload} seed ${seed} tripped another property; ${refind}`);
      const fine = await runSimulation({ seed, workload });
      assert.ok(fine.ok, `without the bug, ${describeFailure(fine)}`);
    });
  }
}

/** Seeds that once failed, each for a bug since fixed; a regression shows here even when the range above passes. */
const regressionSeeds: { seed: number; what: string }[] = [
  { seed: 552, what: 'a snapshot from the leader finished twice when recording it hit a full disk (driver retry)' },
  { seed: 894, what: 'the same, in a 7-node cluster' },
  { seed: 769, what: 'a rebuild waited on a membership call held by a deposed leader' },
  { seed: 8647, what: 'a bit flip at rest counted as a lost promise by the durability checker' },
  { seed: 8771, what: 'the recovery checker counted as lost an uncommitted entry that a torn write replaced with a newer leader\'s' },
  { seed: 212, what: 'a node whose newest configuration was a removal that never committed dropped the leader\'s messages as a stranger\'s, and stayed behind for good' },
  { seed: 618, what: 'a node that lagged behind the entry adding the leader dropped its messages as a stranger\'s, and stayed behind for good' },
  { seed: 295, what: 'the same as 618 with 6 nodes (reached once leaders caught up followers that lost acknowledged entries)' },
  { seed: 2538, what: 'with one of 4 members lost, a member that lagged behind the entry adding a candidate dropped its votes as a stranger\'s, and no leader was ever elected' },
];

test('seeds that once failed pass', async () => {
  for (const { seed, what } of regressionSeeds) {
    const r = await runSimulation({ seed });
    assert.ok(r.ok, `${what}: ${describeFailure(r)}`);
  }
});

/** The data workload (data-simulation.ts): seeds 1..dataSeeds, run only with --workload data. */
const dataSeeds = Number(process.env.CAIRN_SIM_DATA_SEEDS ?? 50);
test(`${dataSeeds} data-path seeds pass every checker`, async () => {
  const sum: Record<string, number> = {};
  for (let seed = 1; seed <= dataSeeds; seed++) {
    const r = await runSimulation({ seed, workload: 'data' });
    assert.ok(r.ok, describeFailure(r));
    for (const [k, v] of Object.entries(r.dataStats!)) sum[k] = (sum[k] ?? 0) + v;
  }
  // corruptReadsSeen may stay 0: a returning target's damaged chunks are resent before it serves.
  for (const [k, v] of Object.entries(sum)) assert.ok(v > 0 || k === 'corruptReadsSeen', `no ${k} happened in ${dataSeeds} data seeds`);
});

/** Data seeds that once failed, each for a bug since fixed in the worker. */
const dataRegressionSeeds: { seed: number; what: string }[] = [
  { seed: 32, what: 'a new tail served its committed version while it held a pending one an earlier tail had served' },
  { seed: 19, what: 'a target whose fsync failed stayed on its chain\'s write path and failed every write' },
  { seed: 22, what: 'a resync left a replica with a flipped bit as it was' },
  { seed: 39, what: 'a worker with stale routing claimed a resync it never had (up to date at an old chain version), and its target served without a write the chain had acknowledged' },
  { seed: 12, what: 'a syncing member headed a chain with no serving member and built on a version that lacked an acknowledged write' },
  { seed: 31, what: 'a head that crashed lost the name of a pending version the tail had committed and served; the chain then served the older one' },
  { seed: 359, what: 'a head holding a chunk\'s first version still pending answered "not found" after the tail had served it' },
  { seed: 136, what: 'a move onto a late worker was cancelled when that worker died, dropping the newcomer that had become the chain\'s lastsrv' },
  { seed: 112, what: 'a late worker whose first fsync failed threw a raw EIO from its start' },
  { seed: 38, what: 'a client met stale routing on a worker after a move and backed off past the end of the run' },
  { seed: 42, what: "a worker's supervised restart after a failed fsync came 2 s into the calm, and a client had no time left to complete an operation" },
  { seed: 3910, what: 'the only serving member held a damaged copy, and its resync never asked the returning target, which held that very version, so the chain never served whole again' },
  { seed: 7442, what: 'the same as 3910 on another chunk and target' },
  { seed: 377, what: 'a forward that waited for its chunk\'s lock while its member was cut off and came back syncing went on by the chain version it arrived with, and committed as the tail' },
  { seed: 6945, what: 'the only serving member held a damaged copy, the good one was on a member waiting to sync, and the repair asked only serving members and the syncing one, so the chain never served whole again' },
];

test('data seeds that once failed pass', async () => {
  for (const { seed, what } of dataRegressionSeeds) {
    const r = await runSimulation({ seed, workload: 'data' });
    assert.ok(r.ok, `${what}: ${describeFailure(r)}`);
  }
  const a = await runSimulation({ seed: 7, workload: 'data' });
  const b = await runSimulation({ seed: 7, workload: 'data' });
  assert.equal(a.traceHash, b.traceHash, 'a data seed replays exactly');
  assert.equal(a.events, b.events);
});

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

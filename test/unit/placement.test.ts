// Tests of placement: chain tables keep their rules over many cluster shapes, reach the exact
// designs where they exist, extend without moving a chain; striping maps chunks onto the table.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ErrorCode } from '../../src/errors.ts';
import {
  UnusedReason,
  buildChains,
  chainBalance,
  chainOfChunk,
  chunkRange,
  chunkRangePiecesMax,
  extendChains,
  fileChains,
  formatBalance,
  type ChainPlan,
  type PlacementTarget,
} from '../../src/placement/index.ts';

/** Worker w (id 10 + w) with counts[w] targets, ids w*100 + t + 1, in domain d<domainOf[w]> when given. */
function cluster(counts: readonly number[], domainOf?: readonly number[]): PlacementTarget[] {
  return counts.flatMap((c, w) =>
    Array.from({ length: c }, (_, t) => ({
      targetId: w * 100 + t + 1,
      workerId: 10 + w,
      capacityBytes: 1000 * (1 + ((w + t) % 3)),
      ...(domainOf === undefined ? {} : { domain: `d${domainOf[w]}` }),
    })),
  );
}

const uniform = (workers: number, targets: number): PlacementTarget[] => cluster(Array.from({ length: workers }, () => targets));

interface Lookup {
  worker: Map<number, number>;
  domain: Map<number, string>;
}

function lookup(targets: readonly PlacementTarget[]): Lookup {
  return {
    worker: new Map(targets.map((t) => [t.targetId, t.workerId])),
    domain: new Map(targets.map((t) => [t.targetId, t.domain ?? `worker ${t.workerId}`])),
  };
}

/** The group a chain may hold once: the domain under the domain rule, else the worker. */
function groupOf(plan: ChainPlan, at: Lookup, t: number): string {
  return plan.domainRule ? at.domain.get(t)! : `worker ${at.worker.get(t)}`;
}

/** The largest b with sum over groups of min(free targets, b) >= r b: the most chains the rules allow. */
function mostChains(groupSizes: number[], r: number): number {
  let b = 0;
  while (groupSizes.reduce((s, c) => s + Math.min(c, b + 1), 0) >= r * (b + 1)) b++;
  return b;
}

/** The rules every plan keeps: chain shape, distinct workers and domains, each target once, as many chains as possible. */
function checkRules(plan: ChainPlan, targets: readonly PlacementTarget[], r: number, firstNew = 0): void {
  const at = lookup(targets);
  const domains = new Set(targets.map((t) => at.domain.get(t.targetId)));
  assert.equal(plan.domainRule, domains.size >= r, 'the domain rule holds exactly when there are r domains');
  const seen = new Set<number>();
  for (const chain of plan.chains.slice(firstNew)) {
    assert.equal(chain.length, r);
    assert.equal(new Set(chain.map((t) => at.worker.get(t))).size, r, `chain ${chain} repeats a worker`);
    if (plan.domainRule) assert.equal(new Set(chain.map((t) => at.domain.get(t))).size, r, `chain ${chain} repeats a domain`);
  }
  for (const t of [...plan.chains.flat(), ...plan.unused.map((u) => u.targetId)]) {
    assert.ok(!seen.has(t), `target ${t} is used twice`);
    assert.ok(at.worker.has(t), `unknown target ${t}`);
    seen.add(t);
  }
  assert.equal(seen.size, targets.length, 'every target is in a chain or listed unused');
  const unusedGroups = new Set(plan.unused.map((u) => groupOf(plan, at, u.targetId)));
  assert.ok(unusedGroups.size < r, 'the unused targets cannot make one more chain');
  const sizes = new Map<string, number>();
  for (const t of targets) if (!plan.chains.slice(0, firstNew).flat().includes(t.targetId)) sizes.set(groupOf(plan, at, t.targetId), (sizes.get(groupOf(plan, at, t.targetId)) ?? 0) + 1);
  assert.equal(plan.chains.length - firstNew, mostChains([...sizes.values()], r), 'as many chains as the free targets allow');
}

/** The reasons given for unused targets are true. */
function checkReasons(plan: ChainPlan, targets: readonly PlacementTarget[]): void {
  const at = lookup(targets);
  const workersIn = (w: number) => plan.chains.filter((c) => c.some((t) => at.worker.get(t) === w)).length;
  const domainsIn = (d: string) => plan.chains.filter((c) => c.some((t) => at.domain.get(t) === d)).length;
  for (const u of plan.unused) {
    if (u.reason === UnusedReason.TooFewWorkers) assert.equal(plan.chains.length, 0);
    if (u.reason === UnusedReason.WorkerInEveryChain) assert.equal(workersIn(at.worker.get(u.targetId)!), plan.chains.length);
    if (u.reason === UnusedReason.DomainInEveryChain) assert.equal(domainsIn(at.domain.get(u.targetId)!), plan.chains.length);
  }
}

const shapeArb = fc.record({
  workers: fc.array(fc.record({ targets: fc.integer({ min: 1, max: 8 }), domain: fc.nat(5) }), { minLength: 1, maxLength: 40 }),
  domains: fc.integer({ min: 0, max: 6 }),
  r: fc.integer({ min: 1, max: 4 }),
});
/** A smaller search budget for the properties that check rules, not balance: they run many shapes. */
const quick = { movesMax: 50_000 };
type ShapeArb = { workers: { targets: number; domain: number }[]; domains: number; r: number };
const targetsOf = (s: ShapeArb) =>
  cluster(
    s.workers.map((w) => w.targets),
    s.domains === 0 ? undefined : s.workers.map((w) => w.domain % s.domains),
  );

test('chains keep the rules over many shapes: distinct workers and domains, each target once, as many chains as possible', () => {
  fc.assert(
    fc.property(shapeArb, (s) => {
      const targets = targetsOf(s);
      const plan = buildChains(targets, s.r, quick);
      checkRules(plan, targets, s.r);
      checkReasons(plan, targets);
      const b = chainBalance(plan.chains, targets);
      assert.ok(b.positionSpreadMax <= 1, 'each worker holds each position as often as the others, within 1');
      assert.equal(b.workerViolations + b.domainViolations + b.unknownTargets + b.repeatedTargets, 0);
    }),
    { numRuns: 60, seed: 1 },
  );
});

test('the same targets in any order give the same table', () => {
  fc.assert(
    fc.property(shapeArb, fc.nat(1000), (s, rotate) => {
      const targets = targetsOf(s);
      const k = rotate % targets.length;
      const shuffled = [...targets.slice(k), ...targets.slice(0, k)].reverse();
      assert.deepEqual(buildChains(shuffled, s.r, quick), buildChains(targets, s.r, quick));
    }),
    { numRuns: 30, seed: 2 },
  );
});

test('uniform shapes: pair counts within 1 for r <= 2, and for r = 3 when every worker is in as many chains; within 2 always', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 4 }), (workers, perWorker, r) => {
      const targets = uniform(workers, perWorker);
      const b = chainBalance(buildChains(targets, r).chains, targets);
      const spread = b.pairShares.max - b.pairShares.min;
      const even = b.chainsPerWorker.min === b.chainsPerWorker.max;
      assert.ok(b.chainsPerWorker.max - b.chainsPerWorker.min <= 1);
      assert.ok(spread <= (r <= 2 || (r === 3 && even) ? 1 : 2), `pair spread ${spread}`);
    }),
    { numRuns: 80, seed: 3 },
  );
});

test('uneven shapes: each pair shares within 1 of its fair share n_a n_b (r-1) / (N - max(n_a, n_b))', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: 8 }), { minLength: 1, maxLength: 40 }), fc.integer({ min: 2, max: 4 }), (counts, r) => {
      const targets = cluster(counts);
      const at = lookup(targets);
      const plan = buildChains(targets, r);
      const n = new Map<number, number>();
      const shared = new Map<string, number>();
      for (const chain of plan.chains) {
        const ws = chain.map((t) => at.worker.get(t)!).sort((a, b) => a - b);
        for (const w of ws) n.set(w, (n.get(w) ?? 0) + 1);
        for (let i = 0; i < ws.length; i++) for (let j = i + 1; j < ws.length; j++) shared.set(`${ws[i]} ${ws[j]}`, (shared.get(`${ws[i]} ${ws[j]}`) ?? 0) + 1);
      }
      const total = [...n.values()].reduce((s, x) => s + x, 0);
      const ws = [...n.keys()].sort((a, b) => a - b);
      for (let i = 0; i < ws.length; i++) {
        for (let j = i + 1; j < ws.length; j++) {
          const [na, nb] = [n.get(ws[i])!, n.get(ws[j])!];
          const fair = (na * nb * (r - 1)) / (total - Math.max(na, nb));
          const got = shared.get(`${ws[i]} ${ws[j]}`) ?? 0;
          assert.ok(got >= Math.floor(fair) - 1 && got <= Math.ceil(fair) + 1, `workers ${ws[i]}, ${ws[j]} share ${got}, fair ${fair.toFixed(2)}`);
        }
      }
    }),
    { numRuns: 60, seed: 4 },
  );
});

test('exact designs where they exist: every pair shares the same number of chains, every worker heads equally', () => {
  const designs: [workers: number, perWorker: number, r: number, lambda: number][] = [
    [7, 3, 3, 1], // the Fano plane
    [7, 6, 3, 2],
    [9, 4, 3, 1], // the affine plane of order 3
    [13, 6, 3, 1], // Steiner triple systems
    [15, 7, 3, 1],
    [13, 4, 4, 1], // the projective plane of order 3
    [16, 5, 4, 1], // the affine plane of order 4
    [10, 6, 4, 2],
    [4, 3, 3, 2],
    [6, 5, 2, 1], // round robin
    [12, 11, 2, 1],
    [5, 8, 2, 2],
  ];
  for (const [workers, perWorker, r, lambda] of designs) {
    const targets = uniform(workers, perWorker);
    const plan = buildChains(targets, r);
    const b = chainBalance(plan.chains, targets);
    const name = `${workers} workers x ${perWorker}, r=${r}`;
    assert.equal(plan.unused.length, 0, name);
    assert.deepEqual(b.pairShares, { min: lambda, max: lambda }, name);
    assert.deepEqual(b.chainsPerWorker, { min: perWorker, max: perWorker }, name);
    if (perWorker % r === 0) for (const p of b.positions) assert.deepEqual(p, { min: perWorker / r, max: perWorker / r }, name);
  }
});

test('r = 2 over workers with equal targets pairs them round robin: pair counts within 1', () => {
  for (let workers = 2; workers <= 16; workers++) {
    for (const perWorker of [1, 2, 3, 5, 8]) {
      const targets = uniform(workers, perWorker);
      const b = chainBalance(buildChains(targets, 2).chains, targets);
      assert.ok(b.pairShares.max - b.pairShares.min <= 1, `${workers} x ${perWorker}`);
    }
  }
});

test('the domain rule: chains span distinct domains when there are r of them, and leave what they cannot pair', () => {
  const targets = cluster([2, 2, 2, 2, 2, 2], [0, 0, 1, 1, 2, 2]);
  const plan = buildChains(targets, 3);
  assert.equal(plan.domainRule, true);
  assert.equal(plan.chains.length, 4);
  checkRules(plan, targets, 3);
  const tight = buildChains(cluster([4, 4, 1, 1], [0, 0, 1, 2]), 3);
  assert.equal(tight.chains.length, 1, 'domains 1 and 2 have one target each');
  assert.deepEqual(new Set(tight.unused.map((u) => u.reason)), new Set([UnusedReason.WorkerInEveryChain, UnusedReason.DomainInEveryChain]));
  const twoDomains = buildChains(cluster([2, 2, 2], [0, 0, 1]), 3);
  assert.equal(twoDomains.domainRule, false, 'fewer domains than r: only workers must differ');
  assert.equal(twoDomains.chains.length, 2);
});

test('too few workers: no chains, every target unused with the reason', () => {
  const plan = buildChains(uniform(2, 3), 3);
  assert.deepEqual(plan.chains, []);
  assert.ok(plan.unused.length === 6 && plan.unused.every((u) => u.reason === UnusedReason.TooFewWorkers));
  const lonely = buildChains(cluster([8, 1, 1]), 3);
  assert.equal(lonely.chains.length, 1);
  assert.ok(lonely.unused.every((u) => u.reason === UnusedReason.WorkerInEveryChain));
});

test('larger targets are used first, and a chain is built from targets of like capacity', () => {
  const targets: PlacementTarget[] = [];
  for (let w = 0; w < 3; w++) for (let t = 0; t < 3; t++) targets.push({ targetId: w * 10 + t, workerId: w, capacityBytes: [100, 300, 200][t] });
  targets.push({ targetId: 99, workerId: 0, capacityBytes: 1 });
  const plan = buildChains(targets, 3);
  const capacity = new Map(targets.map((t) => [t.targetId, t.capacityBytes]));
  assert.deepEqual(plan.unused, [{ targetId: 99, reason: UnusedReason.WorkerInEveryChain }]);
  assert.deepEqual(plan.chains.map((c) => new Set(c.map((t) => capacity.get(t))).size), [1, 1, 1]);
  assert.deepEqual(plan.chains.map((c) => capacity.get(c[0])), [300, 200, 100]);
});

test('extendChains adds chains from free targets only and never changes the existing ones', () => {
  fc.assert(
    fc.property(shapeArb, fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 40 }), fc.nat(8), (s, added, newWorkers) => {
      const before = targetsOf(s);
      const existing = buildChains(before, s.r, quick).chains;
      const grown = s.workers.map((w, i) => w.targets + (added[i] ?? 0));
      for (let i = 0; i < newWorkers; i++) grown.push(1 + (i % 8));
      const domainOf = s.domains === 0 ? undefined : [...s.workers.map((w) => w.domain % s.domains), ...Array.from({ length: newWorkers }, (_, i) => i % s.domains)];
      const after = cluster(grown.map((c) => Math.min(c, 8)), domainOf);
      const plan = extendChains(existing, after, s.r, quick);
      assert.deepEqual(plan.chains.slice(0, existing.length), existing);
      checkRules(plan, after, s.r, existing.length);
      assert.deepEqual(extendChains(existing, after, s.r, quick), plan, 'deterministic');
    }),
    { numRuns: 40, seed: 5 },
  );
});

test('extendChains spreads new chains over the pairs the old ones left unused', () => {
  const old = buildChains(uniform(6, 1), 3).chains;
  const targets = cluster([2, 2, 2, 2, 2, 2, 2, 2, 2]);
  const plan = extendChains(old, targets, 3);
  assert.equal(plan.chains.length, 6);
  const b = chainBalance(plan.chains, targets);
  assert.equal(b.pairShares.max, 1, `no pair of workers shares two chains:\n${formatBalance(b)}`);
  assert.throws(() => extendChains([[1, 101], [101, 201]], targets, 3), { code: ErrorCode.InvalidArgument });
});

test('chainBalance counts violations and formatBalance prints a short table', () => {
  const targets = uniform(7, 3);
  const b = chainBalance(buildChains(targets, 3).chains, targets);
  assert.equal(
    formatBalance(b),
    [
      '7 chains of 3 over 7 workers, 7 failure domains (domain rule on)',
      '                          min    max',
      'chains per worker           3      3',
      '  as head                   1      1',
      '  as middle                 1      1',
      '  as tail                   1      1',
      'pair shares (21 pairs)      1      1',
      'position spread per worker (max - min): 0',
    ].join('\n'),
  );
  const bad = chainBalance([[1, 2, 101], [1, 999, 201]], targets);
  assert.equal(bad.workerViolations, 1);
  assert.equal(bad.repeatedTargets, 1);
  assert.equal(bad.unknownTargets, 1);
  assert.match(formatBalance(bad), /1 chains with two targets on one worker/);
});

test('bad input is refused with a code', () => {
  const targets = uniform(3, 1);
  for (const r of [0, 17, 1.5]) assert.throws(() => buildChains(targets, r), { code: ErrorCode.BadOption });
  assert.throws(() => buildChains([...targets, targets[0]], 3), { code: ErrorCode.InvalidArgument });
  assert.throws(() => buildChains([{ targetId: 1, workerId: 1, capacityBytes: -1 }], 1), { code: ErrorCode.InvalidArgument });
  assert.throws(() => buildChains([{ targetId: 1, workerId: 1, capacityBytes: 1, domain: 'a' }, { targetId: 2, workerId: 1, capacityBytes: 1, domain: 'b' }], 1), { code: ErrorCode.InvalidArgument });
  assert.throws(() => buildChains(uniform(1, 257), 1), { code: ErrorCode.InvalidArgument }, 'targets per worker are bounded');
  assert.throws(() => buildChains(targets, 3, { seed: -1 }), { code: ErrorCode.BadOption });
});

test('the seed and move budget are options: no budget still keeps the rules', () => {
  const targets = uniform(10, 8);
  const plan = buildChains(targets, 3, { movesMax: 0 });
  checkRules(plan, targets, 3);
  assert.deepEqual(buildChains(targets, 3, { seed: 9 }), buildChains(targets, 3, { seed: 9 }));
});

test('fileChains: a stripe of distinct chains of the table, the same for the same seed', () => {
  fc.assert(
    fc.property(fc.uniqueArray(fc.integer({ min: 1, max: 1e6 }), { minLength: 1, maxLength: 300 }), fc.integer({ min: 1, max: 400 }), fc.nat(0xffff_ffff), (ids, width, seed) => {
      const stripe = fileChains(ids, width, seed);
      assert.equal(stripe.length, Math.min(width, ids.length));
      assert.equal(new Set(stripe).size, stripe.length);
      assert.ok(stripe.every((c) => ids.includes(c)));
      assert.deepEqual(fileChains(ids, width, seed), stripe);
      for (const chunk of [0, 1, 7, 1e9]) assert.ok(stripe.includes(chainOfChunk(stripe, chunk)));
      assert.equal(chainOfChunk(stripe, stripe.length + 2), stripe[2 % stripe.length]);
    }),
    { numRuns: 200, seed: 6 },
  );
});

test("fileChains spreads files' first chains evenly over the table (chi-square over consecutive seeds)", () => {
  const ids = Array.from({ length: 16 }, (_, i) => i + 1);
  const files = 16_000;
  const counts = new Map<number, number>();
  for (let seed = 0; seed < files; seed++) {
    const first = fileChains(ids, 4, seed)[0];
    counts.set(first, (counts.get(first) ?? 0) + 1);
  }
  const expected = files / ids.length;
  const chi2 = ids.reduce((s, id) => s + ((counts.get(id) ?? 0) - expected) ** 2 / expected, 0);
  assert.ok(chi2 < 37.7, `chi-square ${chi2.toFixed(1)} over 15 degrees of freedom (p = 0.001 at 37.7)`);
});

test('chunkRange pieces cover the byte range exactly, each inside its chunk', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 6 }), fc.nat(1e7), fc.nat(3e6), (shift, offset, length) => {
      const chunkSizeBytes = 65_536 << shift;
      const pieces = chunkRange({ chunkSizeBytes }, offset, length);
      let at = offset;
      for (const p of pieces) {
        assert.equal(p.chunkIndex * chunkSizeBytes + p.offsetInChunk, at, 'contiguous');
        assert.ok(p.length > 0 && p.offsetInChunk + p.length <= chunkSizeBytes);
        at += p.length;
      }
      assert.equal(at, offset + length);
    }),
    { numRuns: 300, seed: 7 },
  );
  assert.deepEqual(chunkRange({ chunkSizeBytes: 10 }, 5, 0), []);
});

test('striping refuses bad input and ranges past its piece limit', () => {
  assert.throws(() => fileChains([], 1, 0), { code: ErrorCode.InvalidArgument });
  assert.throws(() => fileChains([1, 1], 1, 0), { code: ErrorCode.InvalidArgument });
  assert.throws(() => fileChains([1, 2], 0, 0), { code: ErrorCode.BadOption });
  assert.throws(() => fileChains([1, 2], 1, -1), { code: ErrorCode.InvalidArgument });
  assert.throws(() => chainOfChunk([], 0), { code: ErrorCode.InvalidArgument });
  assert.throws(() => chainOfChunk([1], -1), { code: ErrorCode.InvalidArgument });
  assert.throws(() => chunkRange({ chunkSizeBytes: 0 }, 0, 1), { code: ErrorCode.BadOption });
  assert.throws(() => chunkRange({ chunkSizeBytes: 1 }, 0.5, 1), { code: ErrorCode.InvalidArgument });
  assert.throws(() => chunkRange({ chunkSizeBytes: 1 }, Number.MAX_SAFE_INTEGER, 1), { code: ErrorCode.InvalidArgument });
  assert.equal(chunkRange({ chunkSizeBytes: 1 }, 0, chunkRangePiecesMax).length, chunkRangePiecesMax);
  assert.throws(() => chunkRange({ chunkSizeBytes: 1 }, 0, chunkRangePiecesMax + 1), { code: ErrorCode.InvalidArgument });
});
